"""Where events go: the JSON-lines log and the console (webhooks: ``outbox``)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Protocol, TextIO

from streamer.events import CameraStatus, Event, Phase

logger = logging.getLogger(__name__)


class Sink(Protocol):
    """Receives every event; ``send`` may block briefly and runs in a thread."""

    def send(self, event: Event) -> None:
        """Deliver one plate event or camera status."""
        ...


class FanOut:
    """Hands every event to each of ``sinks`` in order; one that fails is logged (naming
    ``where`` the event came from) and the others still get it.

    Example:
        >>> FanOut([outbox_sink, rules, history], "camera gate-1").send(event)
    """

    def __init__(self, sinks: Sequence[Sink], where: str) -> None:
        self.sinks = list(sinks)
        self.where = where

    def send(self, event: Event) -> None:
        """Deliver ``event`` to every sink."""
        for sink in self.sinks:
            try:
                sink.send(event)
            except Exception:
                logger.exception("%s: sink %s failed", self.where, type(sink).__name__)


class ConsoleSink:
    """One readable line per vehicle on a terminal stream (the CLI's ``run`` and ``demo``):
    its first event (early, or final when there was no early one), and its final event
    again only where that changed the plate or the dues."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        # The plate and dues each early event printed, until its final event comes.
        self._early: dict[str, tuple[str | None, bool]] = {}

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
                note = f" (final; early read {early[0] or 'none'})"
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
        valid = "" if event.format_valid or not event.has_plate else " [format?]"
        plate = event.plate_number or f"[{event.reason}]"
        with self._lock:
            print(
                f"{event.camera:<10} {where} {plate:<12}{valid} "
                f"conf={event.confidence:.2f} {status}{note}",
                file=self.stream,
                flush=True,
            )
