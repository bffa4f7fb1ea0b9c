"""The ``streamer`` command line: run, replay, process, dues, check-config, model, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from streamer import __version__
from streamer.config import Config, ConfigError, load_config
from streamer.dues import DuesError, SqliteDues
from streamer.models import ModelError, fetch_default_weights
from streamer.outbox import OutboxError
from streamer.pipeline import CameraStats
from streamer.service import Service, StartupError
from streamer.sinks import ConsoleSink
from streamer.sources import Frame

logger = logging.getLogger("streamer")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"streamer: {message}", file=sys.stderr)
    return code


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    logging.getLogger().setLevel(config.log_level)
    return config


def _summary(stats: dict[str, CameraStats], seconds: float) -> str:
    frames = sum(s.frames for s in stats.values())
    events = sum(s.events for s in stats.values())
    fps = frames / seconds if seconds > 0 else 0.0
    detected = sum(s.detected for s in stats.values())
    return (
        f"{frames} frames in {seconds:.1f} s ({fps:.1f} frames/s), {events} events, "
        f"{detected} frames detected, "
        f"{sum(s.merged for s in stats.values())} merged repeats, "
        f"{sum(s.unread for s in stats.values())} unreadable tracks"
    )


class Progress:
    """A one-line progress display on a terminal; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.decoded: dict[str, int] = {}
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, frame: Frame) -> None:
        self.decoded[frame.camera] = frame.index + 1
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.25:
            self.last = now
            frames = sum(self.decoded.values())
            fps = frames / max(now - self.started, 1e-6)
            media = f" at {frame.media_time_s:6.1f} s" if frame.media_time_s is not None else ""
            print(
                f"\r{frame.camera}{media}: {frames} frames, {fps:5.1f} frames/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def _run_service(
    config: Config, events_out: Path | None = None, progress: Progress | None = None
) -> tuple[dict[str, CameraStats], float]:
    service = Service(config, events_log=events_out, extra_sinks=[ConsoleSink()], on_frame=progress)
    try:
        stats = asyncio.run(service.run())
    finally:
        if progress is not None:
            progress.close()
    return stats, service.processing_seconds


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    service = Service(config, serve_only=True)
    asyncio.run(service.run())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    stats, seconds = _run_service(config)
    print(_summary(stats, seconds), file=sys.stderr)
    return EXIT_FAILED if any(s.error for s in stats.values()) else EXIT_OK


def camera_names(files: Sequence[Path]) -> list[str]:
    """Unique, config-valid camera names from file names (``cars.mp4`` → ``cars``)."""
    names: list[str] = []
    for path in files:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).strip("._-")[:56] or "file"
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}-{suffix}", suffix + 1
        names.append(name)
    return names


def cmd_replay(args: argparse.Namespace) -> int:
    config = _config(args)
    template = config.cameras[0]
    cameras = [
        template.model_copy(update={"name": name, "source": str(path), "enabled": True})
        for name, path in zip(camera_names(args.files), args.files, strict=True)
    ]
    # A batch job: no HTTP server.
    http = config.http.model_copy(update={"enabled": False})
    config = config.model_copy(update={"cameras": cameras, "http": http})
    stats, seconds = _run_service(config, args.events_out, Progress())
    print(_summary(stats, seconds))
    failed = [name for name, s in stats.items() if s.error]
    if failed:
        return _fail(
            f"{len(failed)} of {len(stats)} files could not be processed: "
            + ", ".join(stats[name].error or name for name in failed)
        )
    return EXIT_OK


def cmd_process(args: argparse.Namespace) -> int:
    from streamer.images import ImageError, ImageProcessor, decode_image
    from streamer.service import build_detector, build_engine

    config = _config(args)
    processor = ImageProcessor(
        build_detector(config),
        build_engine(config),
        SqliteDues(config.dues.database),
        config.cameras[0],
    )
    status = EXIT_OK
    for path in args.images:
        result: dict[str, object]
        try:
            result = processor.process(decode_image(path.read_bytes()))
        except (OSError, ImageError) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            result = {
                "success": False,
                "plate_number": None,
                "detector_confidence": 0.0,
                "bbox": None,
                "dues_result": None,
                "error": f"{path}: {reason}",
            }
            status = EXIT_FAILED
        print(json.dumps({"image": str(path), **result}), flush=True)
    return status


def cmd_dues(args: argparse.Namespace) -> int:
    config = _config(args)
    dues = SqliteDues(config.dues.database)
    if args.dues_command == "import":
        count = dues.import_csv(args.csv)
        print(f"imported {count} plates into {config.dues.database}")
    elif args.dues_command == "set":
        dues.set(args.plate, args.amount, args.message)
        print(json.dumps({"plate_number": args.plate, **dues.lookup(args.plate).to_json()}))
    elif args.dues_command == "clear":
        if not dues.clear(args.plate):
            return _fail(f"{args.plate}: not in the dues database")
        print(f"cleared {args.plate}")
    else:
        for record in dues.records():
            print(
                f"{record.plate:<12} {record.amount:>10.2f}  {record.updated_at}  {record.message}"
            )
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from streamer.outbox import DEAD, Outbox

    config = _config(args)
    outbox = Outbox(config.outbox, config.webhooks)
    if args.outbox_command == "list":
        for d in outbox.list(args.state, args.limit):
            when = datetime.fromtimestamp(d.created_at, UTC).isoformat(timespec="seconds")
            plate = d.payload.get("plate_number") or d.payload.get("status") or ""
            print(
                f"{d.id:>7} {d.state:<9} {d.target:<16} {d.attempts:>3} {when} "
                f"{d.event_id} {plate}  {d.last_error or ''}".rstrip()
            )
    elif args.outbox_command == "retry":
        if args.id is None and not args.all:
            return _fail("outbox retry: give a delivery ID or --all")
        count = outbox.retry(None if args.all else args.id)
        print(f"{count} deliveries pending again; the running daemon sends them")
    else:
        print(f"purged {outbox.purge(DEAD)} dead deliveries")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from streamer.evaluate import EvalError
    from streamer.evaluate import run as evaluate
    from streamer.ocr import OcrError

    config = _config(args)
    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1", EXIT_CONFIG)
    engines = args.engine or [config.reader.engine]
    started = time.monotonic()
    try:
        table = evaluate(args.paths, engines, config, args.out, args.limit)
    except (EvalError, OcrError) as error:
        return _fail(str(error))
    print(table)
    where = f"; figures and misreads in {args.out}" if args.out else ""
    print(f"evaluated in {time.monotonic() - started:.1f} s{where}", file=sys.stderr)
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    enabled = [c for c in config.cameras if c.enabled]
    print(
        f"config OK: {len(enabled)} camera(s) enabled: "
        + ", ".join(f"{c.name} ({c.source})" for c in enabled)
    )
    return EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    from streamer.detect import YoloDetector

    path = fetch_default_weights(force=args.force)
    print(f"plate model: {path}")
    config = _config(args)
    detector = YoloDetector(config.model)
    print(f"detector ready on {detector.backend}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from streamer.demo import DEMO_VEHICLES, render_video

    config = Config()
    config = config.model_copy(update={"http": config.http.model_copy(update={"enabled": False})})
    video = Path(config.cameras[0].source)
    if not video.exists():
        print(f"rendering the demo recording {video} ...", file=sys.stderr)
        render_video(video)
    seed_demo_dues(SqliteDues(config.dues.database))
    print(f"processing {video} with the default config; events go to {config.events_log}")
    stats, seconds = _run_service(config, progress=Progress())
    print(_summary(stats, seconds))
    expected = {vehicle.plate for vehicle in DEMO_VEHICLES}
    read = {event.plate_number for s in stats.values() for event in s.events_list}
    print(f"demo plates read: {len(expected & read)} of {len(expected)}")
    return EXIT_FAILED if any(s.error for s in stats.values()) else EXIT_OK


def seed_demo_dues(dues: SqliteDues) -> None:
    """Put the demo vehicles' dues in the database: some pending, one paid, one unknown."""
    from streamer.demo import DEMO_VEHICLES

    cleared = False
    for vehicle in DEMO_VEHICLES:
        if vehicle.dues_amount > 0:
            dues.set(vehicle.plate, vehicle.dues_amount, vehicle.dues_message)
        elif not cleared:
            dues.set(vehicle.plate, 0.0, "Paid")
            cleared = True


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="streamer", description="Real-time ANPR: one event per vehicle, with its dues."
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    config_parent = argparse.ArgumentParser(add_help=False)
    config_parent.add_argument(
        "--config", type=Path, default=None, help="YAML config (default: the embedded defaults)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", parents=[config_parent], help="run the daemon on the configured cameras")
    sub.add_parser(
        "serve",
        parents=[config_parent],
        help="serve the HTTP API and dashboard only, without cameras",
    )
    replay = sub.add_parser(
        "replay",
        parents=[config_parent],
        help="process recorded files, every frame, as fast as possible",
    )
    replay.add_argument("files", type=Path, nargs="+")
    replay.add_argument(
        "--events-out",
        type=Path,
        default=None,
        help="write events here (default: the configured events_log)",
    )
    process = sub.add_parser(
        "process", parents=[config_parent], help="read the plate in images; one JSON line per image"
    )
    process.add_argument("images", type=Path, nargs="+")

    dues = sub.add_parser("dues", help="manage the dues database")
    dues_sub = dues.add_subparsers(dest="dues_command", required=True)
    dues_import = dues_sub.add_parser(
        "import", parents=[config_parent], help="upsert plates from a CSV: plate,amount[,message]"
    )
    dues_import.add_argument("csv", type=Path)
    dues_set = dues_sub.add_parser("set", parents=[config_parent], help="set a plate's dues")
    dues_set.add_argument("plate")
    dues_set.add_argument("--amount", type=float, required=True)
    dues_set.add_argument("--message", default="")
    dues_clear = dues_sub.add_parser("clear", parents=[config_parent], help="remove a plate")
    dues_clear.add_argument("plate")
    dues_sub.add_parser("list", parents=[config_parent], help="list every plate")

    outbox = sub.add_parser("outbox", help="inspect and retry webhook deliveries")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    outbox_list = outbox_sub.add_parser(
        "list", parents=[config_parent], help="deliveries, newest first"
    )
    outbox_list.add_argument("--state", choices=["pending", "delivered", "dead"])
    outbox_list.add_argument("--limit", type=int, default=50)
    outbox_retry = outbox_sub.add_parser(
        "retry", parents=[config_parent], help="send dead deliveries again"
    )
    outbox_retry.add_argument("id", type=int, nargs="?")
    outbox_retry.add_argument("--all", action="store_true", help="every dead delivery")
    outbox_purge = outbox_sub.add_parser(
        "purge", parents=[config_parent], help="delete dead deliveries"
    )
    outbox_purge.add_argument("--dead", action="store_true", required=True)

    evaluate = sub.add_parser(
        "eval",
        parents=[config_parent],
        help="measure accuracy on labelled photos, plate crops or videos; prints a table",
    )
    evaluate.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="labels.json or an image CSV (image,plate[,x,y,w,h]), a crops CSV "
        "(file,state,plate), a videos events.csv, or a folder holding one of them",
    )
    evaluate.add_argument(
        "--engine",
        nargs="+",
        choices=["paddle", "tesseract"],
        default=None,
        help="OCR engines to compare (default: the configured reader.engine)",
    )
    evaluate.add_argument(
        "--out", type=Path, default=None, help="also write every figure and misread as JSON"
    )
    evaluate.add_argument(
        "--limit", type=int, default=None, help="at most N photos or crops per set (videos: all)"
    )

    sub.add_parser("check-config", parents=[config_parent], help="validate a config and exit")
    model = sub.add_parser(
        "model",
        parents=[config_parent],
        help="fetch the default plate model and prepare its OpenVINO export",
    )
    model.add_argument("action", choices=["fetch"])
    model.add_argument("--force", action="store_true", help="download again")
    sub.add_parser("demo", help="make the demo recording and process it with the defaults")
    return parser


COMMANDS = {
    "run": cmd_run,
    "serve": cmd_serve,
    "replay": cmd_replay,
    "process": cmd_process,
    "dues": cmd_dues,
    "outbox": cmd_outbox,
    "eval": cmd_eval,
    "check-config": cmd_check_config,
    "model": cmd_model,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamer`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        return _fail(f"invalid config:\n{error}", EXIT_CONFIG)
    except (StartupError, ModelError, DuesError, OutboxError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
