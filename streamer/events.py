"""Plate events: what the daemon reports once per vehicle, and merging repeats.

A :class:`PlateEvent` is built when a finished track has been read and its dues checked.
The :class:`Deduplicator` of a camera merges a repeat of the same plate seen within the
configured window into the first event, so a vehicle that stops, is hidden and reappears
gives one event, not two.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from streamer.config import DedupConfig
from streamer.dues import DuesResult


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PlateEvent:
    """One vehicle's plate, read and checked. ``to_json()`` is the documented event shape."""

    camera: str
    plate_number: str
    confidence: float
    detector_confidence: float
    bbox: tuple[int, int, int, int]
    first_seen: datetime
    last_seen: datetime
    media_time_s: float | None
    frames: int
    format_valid: bool
    dues_result: DuesResult
    crop_path: str | None = None
    snapshot_path: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    type: str = "plate"

    def with_evidence(self, crop_path: str | None, snapshot_path: str | None) -> PlateEvent:
        """A copy with the evidence file paths filled in."""
        return replace(self, crop_path=crop_path, snapshot_path=snapshot_path)

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (one line of the events log)."""
        return {
            "type": self.type,
            "event_id": self.event_id,
            "camera": self.camera,
            "plate_number": self.plate_number,
            "confidence": round(self.confidence, 3),
            "detector_confidence": round(self.detector_confidence, 3),
            "bbox": list(self.bbox),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "media_time_s": None if self.media_time_s is None else round(self.media_time_s, 3),
            "frames": self.frames,
            "format_valid": self.format_valid,
            "dues_result": self.dues_result.to_json(),
            "crop_path": self.crop_path,
            "snapshot_path": self.snapshot_path,
        }


@dataclass(frozen=True)
class CameraStatus:
    """A camera went online, offline (with the reason) or is reconnecting."""

    camera: str
    status: str
    reason: str | None
    at: datetime
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    type: str = "camera_status"

    def to_json(self) -> dict[str, Any]:
        """The status as a JSON-ready dict (one line of the events log)."""
        return {
            "type": self.type,
            "event_id": self.event_id,
            "camera": self.camera,
            "status": self.status,
            "reason": self.reason,
            "at": iso(self.at),
        }


#: Everything the sinks receive.
Event = PlateEvent | CameraStatus


class Deduplicator:
    """Merges repeats of one plate on one camera within ``window_s`` of its last sighting."""

    def __init__(self, config: DedupConfig) -> None:
        self.window = timedelta(seconds=config.window_s)
        self._last_seen: dict[str, datetime] = {}
        self.merged = 0

    def admit(self, plate: str, first_seen: datetime, last_seen: datetime) -> bool:
        """``True`` when this sighting is a new event; ``False`` when it merges into one."""
        previous = self._last_seen.get(plate)
        self._last_seen[plate] = max(last_seen, previous) if previous else last_seen
        if previous is not None and first_seen - previous <= self.window:
            self.merged += 1
            return False
        cutoff = last_seen - self.window
        if len(self._last_seen) > 1024:
            self._last_seen = {p: t for p, t in self._last_seen.items() if t >= cutoff}
        return True
