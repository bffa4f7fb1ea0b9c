"""What every command shares: exit statuses, the one-line error, loading the config."""

from __future__ import annotations

import argparse
import logging
import sys

from streamer.config import Config, load_config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def fail(message: str, code: int = EXIT_FAILED) -> int:
    """Print ``streamer: message`` on stderr; returns ``code``."""
    print(f"streamer: {message}", file=sys.stderr)
    return code


def load(args: argparse.Namespace) -> Config:
    """The config named by ``--config`` (the embedded defaults without it), with its log
    level applied."""
    config = load_config(args.config)
    logging.getLogger().setLevel(config.log_level)
    return config
