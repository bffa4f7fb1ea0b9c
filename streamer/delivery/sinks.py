"""Where events go: the JSON-lines log and the console (webhooks: ``outbox``)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any, Protocol, TextIO

from streamer.events import CameraStatus, Event, Phase, compact_json

logger = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives every event; ``send`` may block briefly and runs in a thread."""

    def send(self, event: Event) -> None:
        """Deliver one plate event or camera status."""
        ...


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


class ConsoleSink:
    """One readable line per vehicle on a terminal stream (the CLI's ``run`` and ``demo``):
    its first event (early, or final when there was no early one), and its final event
    again only where that changed the plate or the dues."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        # The plate and dues each early event printed, until its final event comes.
        self._early: dict[str, tuple[str, bool]] = {}

    def send(self, event: Event) -> None:
        """Print ``event`` as one line: time, camera, plate, confidence, dues; or a status."""
        if isinstance(event, CameraStatus):
            reason = f" ({event.reason})" if event.reason else ""
            with self._lock:
                print(
                    f"{event.camera:<10} camera {event.status}{reason}",
                    file=self.stream,
                    flush=True,
                )
            return
        dues = event.dues_result
        shown = (event.plate_number, dues.dues_pending)
        note = ""
        with self._lock:
            if event.phase == Phase.EARLY:
                self._early[event.event_id] = shown
            elif (early := self._early.pop(event.event_id, None)) is not None:
                if early == shown:
                    return
                note = f" (final; early read {early[0]})"
        if dues.dues_pending:
            status = f"DUES PENDING {dues.amount:.2f} ({dues.message})"
        elif dues.found:
            status = "no dues"
        else:
            status = "not in dues database"
        where = (
            f"t={event.media_time_s:7.2f}s"
            if event.media_time_s is not None
            else event.last_seen.strftime("%H:%M:%S")
        )
        valid = "" if event.format_valid else " [format?]"
        with self._lock:
            print(
                f"{event.camera:<10} {where} {event.plate_number:<12}{valid} "
                f"conf={event.confidence:.2f} {status}{note}",
                file=self.stream,
                flush=True,
            )
