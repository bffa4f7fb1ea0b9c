"""Reading the files a user names: regular files only, and within a bound."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from streamer.files import read_regular

from support.fuzz import bounded


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"plate\nKA01AB1234\n")
    assert read_regular(path, 100) == b"plate\nKA01AB1234\n"
    assert read_regular(path, 18) == b"plate\nKA01AB1234\n"  # exactly at the bound
    (tmp_path / "link.csv").symlink_to(path)
    assert read_regular(tmp_path / "link.csv", 100) == b"plate\nKA01AB1234\n"


def test_special_and_oversize_files_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)  # no writer: opening it for reading would block
    (tmp_path / "to-fifo.csv").symlink_to(fifo)
    sparse = tmp_path / "sparse.csv"
    with sparse.open("wb") as file:
        file.truncate(10**10)  # 10 GB that take no disk
    for path, reason in [
        (fifo, "a FIFO, not a regular file"),
        (tmp_path / "to-fifo.csv", "a FIFO, not a regular file"),
        (Path("/dev/zero"), "a character device, not a regular file"),
        (Path("/dev/null"), "a character device, not a regular file"),
        (tmp_path, "a directory, not a regular file"),
        (sparse, "larger than 1 MB"),
    ]:
        with bounded(2.0, 50.0), pytest.raises(OSError, match=re.escape(reason)) as error:
            read_regular(path, 1_000_000)
        assert error.value.strerror == reason, path
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing.csv", 100)
