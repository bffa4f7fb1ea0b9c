"""The ``streamer`` command line: run, replay, process, dues, lists, outbox, eval,
check-config, model, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from streamer import __version__
from streamer.cli.common import EXIT_CONFIG, fail
from streamer.cli.daemon import (
    cmd_check_config,
    cmd_demo,
    cmd_process,
    cmd_replay,
    cmd_run,
    cmd_serve,
)
from streamer.cli.manage import cmd_dues, cmd_eval, cmd_lists, cmd_model, cmd_outbox
from streamer.config import ConfigError
from streamer.delivery.outbox import OutboxError
from streamer.node import StartupError
from streamer.stores.records import StoreError
from streamer.vision.models import ModelError

logger = logging.getLogger("streamer")


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

    lists = sub.add_parser("lists", help="manage the plate lists (residents, banned, ...)")
    lists_sub = lists.add_subparsers(dest="lists_command", required=True)
    lists_show = lists_sub.add_parser(
        "show", parents=[config_parent], help="every list, or one list's entries"
    )
    lists_show.add_argument("name", nargs="?")
    lists_add = lists_sub.add_parser(
        "add", parents=[config_parent], help="put a plate on a list (or change its entry)"
    )
    lists_add.add_argument("name")
    lists_add.add_argument("plate")
    lists_add.add_argument("--note", default="")
    lists_add.add_argument(
        "--expires",
        default=None,
        help="YYYY-MM-DD (through that day; 9999-12-31: never) or an ISO date and time",
    )
    lists_remove = lists_sub.add_parser(
        "remove", parents=[config_parent], help="take a plate off a list"
    )
    lists_remove.add_argument("name")
    lists_remove.add_argument("plate")
    lists_import = lists_sub.add_parser(
        "import", parents=[config_parent], help="add plates from a CSV: plate[,note][,expires]"
    )
    lists_import.add_argument("name")
    lists_import.add_argument("csv", type=Path)

    outbox = sub.add_parser("outbox", help="inspect and retry webhook and MQTT deliveries")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    outbox_parent = argparse.ArgumentParser(add_help=False, parents=[config_parent])
    outbox_parent.add_argument(
        "--local",
        action="store_true",
        help="with cluster.database: this node's outbox file (MQTT, and webhook deliveries "
        "not yet in the cluster's outbox) instead of the cluster's webhook deliveries",
    )
    outbox_list = outbox_sub.add_parser(
        "list", parents=[outbox_parent], help="deliveries, newest first"
    )
    outbox_list.add_argument("--state", choices=["pending", "delivered", "dead"])
    outbox_list.add_argument("--limit", type=int, default=50)
    outbox_retry = outbox_sub.add_parser(
        "retry", parents=[outbox_parent], help="send dead deliveries again"
    )
    outbox_retry.add_argument("id", type=int, nargs="?")
    outbox_retry.add_argument("--all", action="store_true", help="every dead delivery")
    outbox_purge = outbox_sub.add_parser(
        "purge", parents=[outbox_parent], help="delete dead deliveries"
    )
    outbox_purge.add_argument("--dead", action="store_true", required=True)

    evaluate = sub.add_parser(
        "eval",
        parents=[config_parent],
        help="measure accuracy on labelled photos, plate crops or videos; prints the figures, "
        "the misses by cause and the figures by plate format",
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
        choices=["plate", "paddle", "fused", "tesseract"],
        default=None,
        help="OCR engines to compare side by side (default: the configured reader.engine)",
    )
    evaluate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write every figure, misread and its cause as JSON",
    )
    evaluate.add_argument(
        "--limit", type=int, default=None, help="at most N photos or crops per set (videos: all)"
    )

    sub.add_parser("check-config", parents=[config_parent], help="validate a config and exit")
    model = sub.add_parser(
        "model",
        parents=[config_parent],
        help="fetch: the plate and vehicle models, the plate model's OpenVINO models and the "
        "precision for this machine; "
        "info: which precision was chosen, why, and each candidate's speed and agreement",
    )
    model.add_argument("action", choices=["fetch", "info"])
    model.add_argument("--force", action="store_true", help="fetch: download the weights again")
    model.add_argument(
        "--measure", action="store_true", help="info: measure again instead of the cached choice"
    )
    sub.add_parser("demo", help="make the demo recording and process it with the defaults")
    return parser


COMMANDS = {
    "run": cmd_run,
    "serve": cmd_serve,
    "replay": cmd_replay,
    "process": cmd_process,
    "dues": cmd_dues,
    "lists": cmd_lists,
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
        return fail(f"invalid config:\n{error}", EXIT_CONFIG)
    except (StartupError, ModelError, StoreError, OutboxError) as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
