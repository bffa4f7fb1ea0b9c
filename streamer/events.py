"""What the daemon reports: one :class:`PlateEvent` per vehicle, and each camera's
:class:`CameraStatus` changes (see :mod:`streamer.reporter` for how a track becomes an
event)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from streamer.sources.frame import CameraState
from streamer.vision.direction import Direction
from streamer.vision.vehicles import Vehicle


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact_json(record: Mapping[str, Any]) -> str:
    """``record`` as one line of JSON, as the events log, the outbox and the payloads
    write it: no spaces, non-ASCII text kept as it is."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _parse(text: str) -> datetime:
    """The moment :func:`iso` wrote."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class DuesResult:
    """The answer for one plate, in the seed's ``/check_dues`` shape."""

    found: bool
    dues_pending: bool
    amount: float
    message: str
    possible_match: str | None = None

    def to_json(self) -> dict[str, object]:
        """The seed's JSON object: ``found``, ``dues_pending``, ``amount``, ``message``;
        plus ``possible_match`` when an unknown plate is one slip from a known one."""
        data = asdict(self)
        if self.possible_match is None:
            del data["possible_match"]
        return data


NOT_FOUND = DuesResult(found=False, dues_pending=False, amount=0.0, message="No record found")


@dataclass(frozen=True)
class ListMatch:
    """The lists a plate is on (``lists``), and those it is one slip from (``possible``:
    ``(list, listed plate)`` pairs)."""

    lists: tuple[str, ...] = ()
    possible: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """``{"lists": [...], "possible_lists": [{"list", "plate"}, ...]}``, as events carry it."""
        return {
            "lists": list(self.lists),
            "possible_lists": [{"list": name, "plate": plate} for name, plate in self.possible],
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ListMatch:
        """The match an event's JSON carries (none, for events logged before lists)."""
        return cls(
            tuple(str(name) for name in record.get("lists") or ()),
            tuple((str(p["list"]), str(p["plate"])) for p in record.get("possible_lists") or ()),
        )


NO_LISTS = ListMatch()

#: Why an event has no plate number: its plate box was seen but no read agreed on it, or
#: its vehicle showed no plate box at all.
UNREADABLE = "unreadable"
NO_PLATE = "no plate"
#: The dues of a vehicle whose plate was not read: none known.
NOT_READ = DuesResult(found=False, dues_pending=False, amount=0.0, message="No plate read")


class Phase(StrEnum):
    """Which of a vehicle's plate events this is: ``early`` while it is still in view, as
    soon as its reads agree; ``final`` when its track has ended, with the vote over its
    best crops. Both carry the vehicle's one ``event_id``."""

    EARLY = "early"
    FINAL = "final"


@dataclass(frozen=True)
class PlateEvent:
    """One vehicle's plate, read and checked. ``to_json()`` is the documented event shape.

    ``previous_plate_number`` is set on a final event whose plate differs from its early
    event's. ``format`` names the configured plate format the plate matched (``None``: none
    did, or an events log written before formats were named).

    A vehicle whose plate was not read has ``plate_number`` ``None`` and a ``reason``
    (:data:`UNREADABLE`, :data:`NO_PLATE`); without a plate box, ``bbox`` is its vehicle's.
    ``vehicle`` is the vehicle holding the plate (``None`` when no vehicle box does), and
    ``direction`` the way it moved; ``direction_name`` what the camera calls that way.
    """

    camera: str
    plate_number: str | None
    confidence: float
    detector_confidence: float
    bbox: tuple[int, int, int, int]
    first_seen: datetime
    last_seen: datetime
    media_time_s: float | None
    frames: int
    format_valid: bool
    dues_result: DuesResult
    format: str | None = None
    lists: ListMatch = NO_LISTS
    crop_path: str | None = None
    snapshot_path: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: Phase = Phase.FINAL
    previous_plate_number: str | None = None
    type: str = "plate"
    reason: str | None = None
    vehicle: Vehicle | None = None
    direction: Direction | None = None
    direction_name: str | None = None
    vehicle_crop_path: str | None = None

    @property
    def has_plate(self) -> bool:
        """Whether the plate was read."""
        return self.plate_number is not None

    @property
    def directions(self) -> tuple[str, ...]:
        """The way it moved and the camera's name for it, as ``when: {direction}`` sees them."""
        if self.direction is None:
            return ()
        named = (self.direction_name,) if self.direction_name else ()
        return (self.direction.travel, *named)

    @property
    def key(self) -> str:
        """Unique per event and phase: ``<event_id>:<phase>`` (the webhooks' Idempotency-Key)."""
        return f"{self.event_id}:{self.phase}"

    def with_evidence(
        self, crop_path: str | None, snapshot_path: str | None, vehicle_crop_path: str | None = None
    ) -> PlateEvent:
        """A copy with the evidence file paths filled in."""
        return replace(
            self,
            crop_path=crop_path,
            snapshot_path=snapshot_path,
            vehicle_crop_path=vehicle_crop_path,
        )

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (one line of the events log)."""
        record: dict[str, Any] = {
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
            "format": self.format,
            "dues_result": self.dues_result.to_json(),
            **self.lists.to_json(),
            "crop_path": self.crop_path,
            "snapshot_path": self.snapshot_path,
            "vehicle_crop_path": self.vehicle_crop_path,
            "phase": self.phase,
            "reason": self.reason,
            "vehicle": None if self.vehicle is None else self.vehicle.to_json(),
            "direction": None if self.direction is None else self.direction.travel,
            "direction_angle": None if self.direction is None else self.direction.angle,
            "direction_name": self.direction_name,
        }
        if self.previous_plate_number:
            record["previous_plate_number"] = self.previous_plate_number
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> PlateEvent:
        """The event of one line of the events log (the inverse of :meth:`to_json`).

        Raises:
            KeyError, TypeError, ValueError: when ``record`` is not a plate event.
        """
        dues = record["dues_result"]
        return cls(
            camera=str(record["camera"]),
            plate_number=None if record["plate_number"] is None else str(record["plate_number"]),
            confidence=float(record["confidence"]),
            detector_confidence=float(record["detector_confidence"]),
            bbox=tuple(int(v) for v in record["bbox"]),  # type: ignore[arg-type]
            first_seen=_parse(record["first_seen"]),
            last_seen=_parse(record["last_seen"]),
            media_time_s=None if record["media_time_s"] is None else float(record["media_time_s"]),
            frames=int(record["frames"]),
            format_valid=bool(record["format_valid"]),
            dues_result=DuesResult(
                bool(dues["found"]),
                bool(dues["dues_pending"]),
                float(dues["amount"]),
                str(dues["message"]),
                dues.get("possible_match"),
            ),
            format=record.get("format"),
            lists=ListMatch.from_json(record),
            crop_path=record.get("crop_path"),
            snapshot_path=record.get("snapshot_path"),
            event_id=str(record["event_id"]),
            phase=Phase(record.get("phase", Phase.FINAL)),
            previous_plate_number=record.get("previous_plate_number"),
            reason=record.get("reason"),
            vehicle=Vehicle.from_json(record.get("vehicle")),
            direction=_direction(record),
            direction_name=record.get("direction_name"),
            vehicle_crop_path=record.get("vehicle_crop_path"),
        )


def _direction(record: Mapping[str, Any]) -> Direction | None:
    """The direction an event's JSON carries (none, for events logged before directions)."""
    travel, angle = record.get("direction"), record.get("direction_angle")
    if travel is None or angle is None:
        return None
    return Direction(str(travel), float(angle))


@dataclass(frozen=True)
class CameraStatus:
    """A camera went online, offline (with the reason) or is reconnecting."""

    camera: str
    status: CameraState
    reason: str | None
    at: datetime
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    type: str = "camera_status"

    @property
    def key(self) -> str:
        """Unique per event: its ``event_id``."""
        return self.event_id

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

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> CameraStatus:
        """The status of one line of the events log (the inverse of :meth:`to_json`).

        Raises:
            KeyError, TypeError, ValueError: when ``record`` is not a camera status.
        """
        reason = record["reason"]
        return cls(
            camera=str(record["camera"]),
            status=CameraState(record["status"]),
            reason=None if reason is None else str(reason),
            at=_parse(record["at"]),
            event_id=str(record["event_id"]),
        )


@dataclass(frozen=True)
class CameraSnapshot:
    """One camera as metrics, ``/health``, ``/api/cameras``, MQTT and the cluster's leases
    see it: read-only, so they cannot disagree."""

    name: str
    source: str
    state: CameraState
    fps: float
    frames: int
    detected: int
    still: int
    skipped: int
    events: int
    dues_events: int
    last_frame_at: datetime | None
    error: str | None

    @property
    def up(self) -> bool:
        """Whether frames are flowing: a live camera online, or a file being read."""
        return self.state in {CameraState.ONLINE, CameraState.FILE}


#: Everything the sinks receive.
Event = PlateEvent | CameraStatus
