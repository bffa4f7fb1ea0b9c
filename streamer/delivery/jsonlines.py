"""The events log's file: one JSON line per event, whole lines only (:class:`JsonLinesSink`),
and the reading back of such files (:func:`records`, :func:`event_of`)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from streamer.events import CameraStatus, Event, PlateEvent, compact_json


class JsonLinesSink:
    """Appends each event as one JSON line, straight to the file, so a crash loses no
    written event.

    A line is written whole or not at all: when the disk is full, what part of it fitted
    is cut off again and :class:`OSError` says why, so that the next line does not run
    into a torn one. A line a crash cut short is ended when the file is opened.

    When the file would pass ``max_bytes`` it is rotated first: ``events.jsonl`` becomes
    ``events.jsonl.1``, ``.1`` becomes ``.2`` and so on, keeping ``backups`` old files.
    """

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        #: The file ends in a line a crash cut short: the next write ends it first.
        self._torn = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as error:
            raise OSError(f"events_log: cannot write {path} ({error.strerror})") from None

    def send(self, event: Event) -> None:
        """Append ``event`` as one line.

        Raises:
            OSError: when the line cannot be written (a full or read-only disk).
        """
        self.write(event.to_json())

    def write(self, record: dict[str, Any]) -> None:
        """Append an event already in its JSON form (see :meth:`send`)."""
        # A lone surrogate becomes its JSON escape: the line stays valid UTF-8 and JSON.
        line = (compact_json(record) + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            file = self._file or self._open()
            if self.max_bytes and os.fstat(file.fileno()).st_size + len(line) > self.max_bytes:
                file = self._rotate()
            _append(file, b"\n" + line if self._torn else line)
            self._torn = False

    def _open(self) -> IO[bytes]:
        file = self.path.open("ab", buffering=0)
        size = os.fstat(file.fileno()).st_size
        self._torn = False
        if size:
            with self.path.open("rb") as reader:
                reader.seek(size - 1)
                self._torn = reader.read(1) != b"\n"
        self._file = file
        return file

    def _rotate(self) -> IO[bytes]:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        return self._open()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _append(file: IO[bytes], data: bytes) -> None:
    """Write ``data`` at the end of ``file``, all of it or (cut off again) none."""
    descriptor = file.fileno()
    start = os.fstat(descriptor).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(descriptor, view) :]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, start)
        raise


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the JSON-lines file ``path``, whole or not at all.

    Raises:
        OSError: when it cannot be written.
    """
    with path.open("ab", buffering=0) as file:
        _append(file, (compact_json(record) + "\n").encode("utf-8", "backslashreplace"))


def records(data: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of the lines of ``data``; lines are ended by ``\\n`` only (a
    message may hold U+2028 or other Unicode line separators), and a torn or damaged line
    is skipped."""
    for line in data.split(b"\n"):
        with contextlib.suppress(ValueError, RecursionError):
            record = json.loads(line)
            if isinstance(record, dict):
                yield record


def tail(path: Path, size: int) -> bytes:
    """The last ``size`` bytes of ``path`` (all of it, if smaller); none if unreadable."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - size))
            return file.read()
    except OSError:
        return b""


def key_of(record: dict[str, Any]) -> str | None:
    """The :attr:`~streamer.events.PlateEvent.key` of a line of the events log."""
    if "event_id" not in record:
        return None
    phase = record.get("phase")
    return f"{record['event_id']}:{phase}" if phase else str(record["event_id"])


def event_of(record: dict[str, Any]) -> Event:
    """The event of a line of the events log.

    Raises:
        KeyError, TypeError, ValueError: when it is not a plate event or a camera status.
    """
    if record.get("type") == "camera_status":
        return CameraStatus.from_json(record)
    return PlateEvent.from_json(record)
