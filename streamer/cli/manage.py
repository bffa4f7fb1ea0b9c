"""The commands that manage the daemon's data and model: dues, lists, outbox, eval, model."""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import closing
from datetime import UTC, datetime

from streamer.cli.common import EXIT_CONFIG, EXIT_OK, fail, load
from streamer.cluster.deployment import open_deployment
from streamer.config import Config, mask_url
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import DeliveryQueue, DeliveryState
from streamer.node import open_stores
from streamer.stores.dues import SqlDues
from streamer.stores.lists import ListError, SqlLists
from streamer.vision.models import fetch_default_weights, fetch_vehicle_weights


def cmd_dues(args: argparse.Namespace) -> int:
    config = load(args)
    with closing(open_deployment(config)) as deployment:
        return _dues(args, config, open_stores(config, deployment).dues)


def _dues(args: argparse.Namespace, config: Config, dues: SqlDues) -> int:
    if args.dues_command == "import":
        count = dues.import_csv(args.csv)
        print(f"imported {count} plates into {config.dues.database}")
    elif args.dues_command == "set":
        dues.set(args.plate, args.amount, args.message)
        print(json.dumps({"plate_number": args.plate, **dues.lookup(args.plate).to_json()}))
    elif args.dues_command == "clear":
        if not dues.clear(args.plate):
            return fail(f"{args.plate}: not in the dues database")
        print(f"cleared {args.plate}")
    else:
        for record in dues.records():
            print(
                f"{record.plate:<12} {record.amount:>10.2f}  {record.updated_at}  {record.message}"
            )
    return EXIT_OK


def cmd_lists(args: argparse.Namespace) -> int:
    config = load(args)
    with closing(open_deployment(config)) as deployment:
        return _lists(args, config, open_stores(config, deployment).lists)


def _lists(args: argparse.Namespace, config: Config, lists: SqlLists) -> int:
    command = args.lists_command
    if command == "import":
        count = lists.import_csv(args.name, args.csv)
        print(f"imported {count} plates into list {args.name}")
    elif command == "add":
        try:
            entry = lists.add(args.name, args.plate, args.note, args.expires)
        except ListError as error:  # an argument refused: nothing was stored
            return fail(str(error), EXIT_CONFIG)
        print(json.dumps(entry.to_json(), ensure_ascii=False))
    elif command == "remove":
        if not lists.remove(args.name, args.plate):
            return fail(f"{args.plate}: not on list {args.name}")
        print(f"removed {args.plate} from list {args.name}")
    elif args.name is None:
        lists.load_files()  # as the daemon does at its start
        counts = lists.counts()
        for name, declared in config.lists.items():
            source = f"file {declared.file}" if declared.file else "managed here"
            line = f"{name:<16} {counts[name]:>6} plates  {source}  {declared.description}"
            print(line.rstrip())
    else:
        lists.load_files()
        for item in lists.entries(args.name):
            expires = item.to_json()["expires"] or "never"
            mark = " (expired)" if item.expired else ""
            print(f"{item.plate:<12} expires {expires}{mark}  {item.note}".rstrip())
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    config = load(args)
    # Never made here: a missing file is said (OutboxError) when it is the one used.
    file = Outbox(config.outbox, config.delivery_targets, create=False)
    with closing(file), closing(open_deployment(config)) as deployment:
        # In a cluster, the webhook deliveries of every node, unless --local.
        return _outbox(args, file if args.local else deployment.webhook_queue(file))


def _outbox(args: argparse.Namespace, outbox: DeliveryQueue) -> int:
    if args.outbox_command == "list":
        for d in outbox.list(args.state and DeliveryState(args.state), args.limit):
            when = _moment(d.created_at)
            plate = d.payload.get("plate_number") or d.payload.get("status") or ""
            notes = "; ".join(dict.fromkeys(filter(None, [d.last_error, d.unreadable])))
            print(
                f"{d.id:>7} {d.state:<9} {d.target:<16} {d.attempts:>3} {when} "
                f"{d.key} {plate}  {mask_url(notes)}".rstrip()
            )
    elif args.outbox_command == "retry":
        if args.id is None and not args.all:
            return fail("outbox retry: give a delivery ID or --all")
        count = outbox.retry(None if args.all else args.id)
        print(f"{count} deliveries pending again; the running daemon sends them")
    else:
        print(f"purged {outbox.purge(DeliveryState.DEAD)} dead deliveries")
    return EXIT_OK


def _moment(timestamp: float) -> str:
    """A Unix time as ISO 8601 in UTC (``?`` for one a damaged row cannot show)."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "?"


def cmd_eval(args: argparse.Namespace) -> int:
    from streamer.evaluation.evaluate import run as evaluate
    from streamer.evaluation.labels import EvalError
    from streamer.reading.ocr import OcrError

    config = load(args)
    if args.limit is not None and args.limit < 1:
        return fail("--limit must be at least 1", EXIT_CONFIG)
    engines = args.engine or [config.reader.engine]
    started = time.monotonic()
    try:
        table = evaluate(args.paths, engines, config, args.out, args.limit)
    except (EvalError, OcrError) as error:
        return fail(str(error))
    print(table)
    where = f"; figures, misreads and their causes in {args.out}" if args.out else ""
    print(f"evaluated in {time.monotonic() - started:.1f} s{where}", file=sys.stderr)
    return EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    """``model fetch``: the plate and vehicle models, the plate model's OpenVINO models, the
    precision for this machine;
    ``model info``: what was chosen, why, and every candidate's figures."""
    from streamer.vision.detect import YoloDetector
    from streamer.vision.hardware import this_machine
    from streamer.vision.models import resolve_weights
    from streamer.vision.precision import choose

    config = load(args)
    if args.action == "fetch":
        if config.model.weights is None:
            print(f"plate model: {fetch_default_weights(force=args.force)}")
        print(f"vehicle model: {fetch_vehicle_weights(force=args.force)}")
        detector = YoloDetector(config.model)
        print(f"detector ready on {detector.backend} {detector.precision}")
        return EXIT_OK
    weights = resolve_weights(config.model.weights)
    choice = choose(weights, config.model.image_size, remeasure=args.measure)
    pinned = config.model.precision
    print(f"machine: {this_machine().describe()}")
    print(f"weights: {weights}")
    print(f"model.precision: {pinned}" + ("" if pinned == "auto" else " (pinned by the config)"))
    print(f"chosen: {choice.precision}: {choice.reason} (measured {choice.measured_at})")
    print()
    print(choice.table())
    return EXIT_OK
