"""What the daemon reports: one :class:`PlateEvent` per vehicle, and each camera's
:class:`CameraStatus` changes (see :mod:`streamer.reporter` for how a track becomes an
event)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from streamer.stores.dues import DuesResult


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CameraState(StrEnum):
    """Where a camera stands. A live camera is ``online``, ``offline`` or ``reconnecting``
    (the states its :class:`CameraStatus` events report); a recorded file is ``file``
    while it is read, then ``finished``, or ``failed`` when it could not be read."""

    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"
    RECONNECTING = "reconnecting"
    FILE = "file"
    FINISHED = "finished"
    FAILED = "failed"


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
    status: CameraState
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
