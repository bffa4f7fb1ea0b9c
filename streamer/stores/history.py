"""Recent events, for ``/api/events``, the live stream and the dashboard.

An in-memory window over the newest events, seeded from the events log at start, fed by
the pipelines as a sink, and pushed to live subscribers (server-sent events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from streamer.events import Event

#: Records a live subscriber may fall behind by before its oldest are dropped.
SUBSCRIBER_BACKLOG = 256


def evidence_url(path: str | None, directory: Path) -> str | None:
    """The ``/evidence/...`` URL of an evidence file, or ``None`` outside the folder."""
    if not path:
        return None
    try:
        relative = Path(path).resolve().relative_to(directory.resolve())
    except ValueError:
        return None
    return "/evidence/" + relative.as_posix()


class EventQuery(Protocol):
    """Where ``/api/events`` reads: this daemon's recent events (:class:`EventHistory`), or
    a cluster's (:class:`~streamer.cluster.history.ClusterHistory`)."""

    def query(
        self,
        plate: str | None,
        camera: str | None,
        dues_pending: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Plate events newest first, filtered (one record per vehicle: its latest phase);
        the page and the total that matched.

        Raises:
            StoreError: when the events cannot be read (a cluster's database is away).
        """
        ...


@dataclass
class EventHistory:
    """Recent events for ``/api/events`` and the live stream; a sink of the pipeline.

    One record per vehicle: a final plate event takes the place of its early one (same
    ``event_id``). ``send`` is called from pipeline threads; subscribers are asyncio
    queues on ``loop``, and get every phase (none without a loop).
    """

    size: int
    evidence: Path
    events: deque[dict[str, Any]] = field(init=False)
    subscribers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: The kept record of each plate event's ``event_id`` (updated in place).
    _vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.events = deque(maxlen=self.size)

    def load(self, log: Path) -> None:
        """Seed the history from the end of an events log (after a restart)."""
        try:
            with log.open(encoding="utf-8") as stream:
                lines = deque(stream, maxlen=self.size)
        except OSError:
            return
        for line in lines:
            with contextlib.suppress(ValueError):
                self._remember(json.loads(line))

    def _remember(self, record: dict[str, Any]) -> dict[str, Any]:
        if record.get("type") != "plate":
            with self._lock:
                self.events.append(record)
            return record
        record["crop_url"] = evidence_url(record.get("crop_path"), self.evidence)
        record["snapshot_url"] = evidence_url(record.get("snapshot_path"), self.evidence)
        record["vehicle_crop_url"] = evidence_url(record.get("vehicle_crop_path"), self.evidence)
        with self._lock:
            kept = self._vehicles.get(str(record.get("event_id")))
            if kept is not None:  # the vehicle's final event: its row changes in place
                kept.clear()
                kept.update(record)
                return record
            self.events.append(record)
            self._vehicles[str(record.get("event_id"))] = record
            if len(self._vehicles) > 2 * self.size:  # forget what the window dropped
                self._vehicles = {
                    str(r.get("event_id")): r for r in self.events if r.get("type") == "plate"
                }
        return record

    def send(self, event: Event) -> None:
        """Keep ``event`` and push it to every live subscriber."""
        self.receive(event.to_json())

    def receive(self, record: dict[str, Any]) -> None:
        """Keep an event's record and push it to every live subscriber (from any thread;
        in a cluster, also the events other nodes wrote)."""
        record = self._remember(record)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._publish, record)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every new record (on the loop); an empty record means
        the history is closing."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop feeding ``queue``."""
        self.subscribers.discard(queue)

    def close(self) -> None:
        """Tell every subscriber that no more records come (on the loop)."""
        self._publish({})

    def _publish(self, record: dict[str, Any]) -> None:
        for queue in list(self.subscribers):
            if queue.full():  # a stalled browser tab: drop its oldest, keep it live
                queue.get_nowait()
            queue.put_nowait(record)

    def query(
        self,
        plate: str | None,
        camera: str | None,
        dues_pending: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Plate events newest first, filtered; the page and the total that matched."""
        with self._lock:
            records = [dict(record) for record in self.events]
        matches = [
            r
            for r in reversed(records)
            if r.get("type") == "plate"
            and (plate is None or plate in str(r.get("plate_number") or ""))
            and (camera is None or r.get("camera") == camera)
            and (
                dues_pending is None
                or bool(r.get("dues_result", {}).get("dues_pending")) == dues_pending
            )
        ]
        return matches[offset : offset + limit], len(matches)
