"""What the stores share: the reading of their CSV files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamer.stores.records import StoreError, read_csv

from support.daemon import streamer, write_config
from support.fuzz import bounded


def test_a_csv_that_is_no_regular_file_is_one_line_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "banned.csv"
    os.mkfifo(fifo)
    for path, reason in [
        (fifo, "a FIFO, not a regular file"),
        (Path("/dev/zero"), "a character device, not a regular file"),
    ]:
        with bounded(2.0, 100.0), pytest.raises(StoreError) as error:
            read_csv(path, ("plate",), dict)
        assert str(error.value) == f"{path}: cannot read ({reason})"


def test_a_list_file_that_is_a_fifo_stops_the_cli_in_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "banned.csv"
    os.mkfifo(fifo)
    config = write_config(
        tmp_path, [{"name": "gate", "source": "unused.mp4"}], lists={"banned": {"file": str(fifo)}}
    )
    result = streamer("lists", "show", "--config", config)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"streamer: {fifo}: cannot read (a FIFO, not a regular file)"
    ]
