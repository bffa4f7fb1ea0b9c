"""The events log: one JSON line per event (:class:`JsonLinesSink`), each written after
the outbox has committed the event (:class:`OutboxSink`), so nothing logged can miss its
webhooks or the broker after a crash; and, at the next start, the events a crash kept out
of the log written to it (:meth:`OutboxSink.recover`)."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamer.delivery.outbox import Outbox
from streamer.events import Event, compact_json

logger = logging.getLogger(__name__)

#: Called, from the thread that committed an event, with the targets it was queued for.
WakeCallback = Callable[[Sequence[str]], None]


class JsonLinesSink:
    """Appends each event as one JSON line and flushes, so a crash loses no written event.

    When the file would pass ``max_bytes`` it is rotated first: ``events.jsonl`` becomes
    ``events.jsonl.1``, ``.1`` becomes ``.2`` and so on, keeping ``backups`` old files.
    """

    def __init__(self, path: Path, max_bytes: int = 0, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = path.open("a", encoding="utf-8")
        except OSError as error:
            raise OSError(f"events_log: cannot write {path} ({error.strerror})") from None
        self._lock = threading.Lock()

    def send(self, event: Event) -> None:
        """Append ``event`` as one line."""
        self.write(event.to_json())

    def write(self, record: dict[str, Any]) -> None:
        """Append an event already in its JSON form."""
        line = compact_json(record) + "\n"
        with self._lock:
            if self.max_bytes and self._stream.tell() + len(line.encode()) > self.max_bytes:
                self._rotate()
            self._stream.write(line)
            self._stream.flush()

    def _rotate(self) -> None:
        self._stream.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._stream = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._stream.close()


class OutboxSink:
    """The events log guarded by the outbox: commit each event, log it, wake the senders.

    An event is committed to the outbox before it is logged, so nothing logged can miss
    its webhooks or the broker after a crash; once logged, it is marked so. A crash
    between the two leaves it unmarked, and :meth:`recover` logs it on the next start.
    """

    def __init__(
        self, outbox: Outbox, log: JsonLinesSink, wake: WakeCallback | None = None
    ) -> None:
        self.outbox = outbox
        self.log = log
        self.wake = wake

    def send(self, event: Event) -> None:
        """Commit, log and mark ``event`` (blocking, in the pipeline's worker thread)."""
        targets = self.outbox.add(event)
        if targets and self.wake is not None:
            self.wake(targets)  # delivery need not wait for the log
        self.log.send(event)
        self.outbox.logged([event.key])

    def recover(self) -> int:
        """Log the events a crash committed but kept out of the log; returns how many."""
        records = self.outbox.unlogged()
        if not records:
            return 0
        # A crash between writing a line and marking it leaves it unmarked but logged.
        logged = _logged_keys(self.log.path)
        missing = [record for key, record in records if key not in logged]
        for record in missing:
            self.log.write(record)
        self.outbox.logged([key for key, _ in records])
        if missing:
            logger.warning(
                "events log: added %d event(s) that a crash kept out of it", len(missing)
            )
        return len(missing)


#: Bytes at the end of the events log searched for events a crash left unmarked.
LOG_TAIL_BYTES = 1 << 20


def _logged_keys(path: Path) -> set[str]:
    """The ``<event_id>:<phase>`` keys of the plate events in the last
    :data:`LOG_TAIL_BYTES` of the events log (the lines a crash could leave unmarked)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, 2) - LOG_TAIL_BYTES))
            lines = file.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return set()
    keys = set()
    for line in lines:
        with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
            record = json.loads(line)
            phase = record.get("phase")
            keys.add(f"{record['event_id']}:{phase}" if phase else str(record["event_id"]))
    return keys
