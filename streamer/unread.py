"""Vehicles whose plate was not read: their events, with ``plate_number`` ``None``.

Two kinds (``reason``):

- ``unreadable``: a plate track whose reads agree on no plate, though its plate was big
  enough to read (:data:`READABLE_HEIGHT`) and seen in ``tracker.min_frames`` frames: a
  dirty, bent or half-covered plate. Reported early once the track is overdue
  (``events.max_event_delay_s`` in view), or when it ends.
- ``no plate``: a vehicle the vehicle model found with no plate box in it
  (:class:`~streamer.vision.watch.VehicleWatch` says when), its crop the vehicle's.

A camera's ``events.unreadable`` turns both off. Such a vehicle is on no list and owes
nothing known (:data:`~streamer.events.NOT_READ`); a plate track that breaks in two at a
barrier is one vehicle, so a track that starts within :data:`REPEAT_S` where such a
vehicle was last seen is merged into it (the next vehicle comes from further away).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from streamer.config import CameraConfig
from streamer.delivery.recordings import EvidenceWriter
from streamer.events import NO_PLATE, NOT_READ, UNREADABLE, Phase, PlateEvent
from streamer.sources.frame import Frame
from streamer.vision.direction import Box, Direction
from streamer.vision.track import PlateCrop, Track
from streamer.vision.vehicles import Vehicle, VehicleDetector, coloured, iou
from streamer.vision.watch import VehicleWatch, Watched

logger = logging.getLogger(__name__)


class StageTimer(Protocol):
    """Where a stage's time goes (the metrics' histograms)."""

    def observe(self, stage: str, camera: str, seconds: float) -> None:
        """Record that ``stage`` took ``seconds`` for one item of ``camera``."""
        ...


#: A plate box at least this many pixels tall is big enough to read: a smaller one is far
#: away, and its track is not reported as unreadable.
READABLE_HEIGHT = 16
#: A vehicle without a read plate first seen within this many seconds where one was last
#: seen (its box overlapping by :data:`REPEAT_IOU`) is the same vehicle.
REPEAT_S, REPEAT_IOU = 10.0, 0.3

#: An event id for a vehicle first seen at a moment on the source's clock: ``(clock, what)``.
Identify = Callable[[float, str], str]


@dataclass(frozen=True)
class VehicleProbe:
    """A detected frame for the vehicle model to look at, with the plate boxes the plate
    detector found in it."""

    frame: Frame
    plates: tuple[Box, ...]


def random_id(clock: float, what: str) -> str:
    """A random event id (a live source's)."""
    return str(uuid.uuid4())


class Unread:
    """One camera's events of vehicles whose plate was not read (see the module).

    Example:
        >>> unread = Unread(camera, vehicles, evidence)
        >>> if unread.reportable(track): event = unread.unreadable(track, vehicle)
        >>> events = unread.look(VehicleProbe(frame, plate_boxes))
    """

    def __init__(
        self,
        camera: CameraConfig,
        vehicles: VehicleDetector,
        evidence: EvidenceWriter | None,
        identify: Identify = random_id,
        timer: StageTimer | None = None,
    ) -> None:
        self.camera = camera
        self.vehicles = vehicles
        self.evidence = evidence
        self.identify = identify
        self.timer = timer
        self.watch = VehicleWatch(camera.vehicles, camera.events.max_event_delay_s)
        self._recent: list[tuple[datetime, Box]] = []
        self._watched: dict[int, PlateEvent] = {}

    def reportable(self, track: Track) -> bool:
        """Whether an unread track is reported: ``events.unreadable`` is on, and its plate
        was seen often enough and big enough to read."""
        _, y1, _, y2 = track.best.bbox
        return (
            self.camera.events.unreadable
            and track.frames >= self.camera.tracker.min_frames
            and y2 - y1 >= READABLE_HEIGHT
        )

    def unreadable(
        self, track: Track, vehicle: Vehicle | None, phase: Phase = Phase.EARLY
    ) -> PlateEvent | None:
        """The ``unreadable`` event of ``track``, whose ``vehicle`` holds its plate;
        ``None`` when it repeats a vehicle just reported."""
        crop = track.best
        path = track.path or (crop.bbox,)
        if self._repeat(track.first_seen, path[0], track.last_seen, path[-1]):
            logger.info("camera %s: unreadable plate seen again, merged", self.camera.name)
            return None
        event = self._event(
            track.first_seen,
            track.last_seen,
            crop.frame.media_time_s,
            track.frames,
            crop.bbox,
            crop.confidence,
            UNREADABLE,
            vehicle,
            track.direction,
            self.identify(track.first_clock_s, str(track.track_id)),
            phase,
        )
        return self._saved(event, crop, vehicle, crop.frame)

    def look(self, probe: VehicleProbe) -> list[PlateEvent]:
        """Run the vehicle model on the probe's frame; the events of the vehicles without
        a plate box now due (early) or gone (final)."""
        started = time.perf_counter()
        found = self.vehicles.vehicles(probe.frame.image)
        if self.timer is not None:
            self.timer.observe("vehicle", self.camera.name, time.perf_counter() - started)
        due, gone = self.watch.look(probe.frame, found, probe.plates)
        events = [event for watched in due if (event := self._no_plate(watched)) is not None]
        return events + [self._gone(watched) for watched in gone]

    def finish(self) -> list[PlateEvent]:
        """The final events of the vehicles without a plate box still in view."""
        return [self._gone(watched) for watched in self.watch.finish_all()]

    def _no_plate(self, watched: Watched) -> PlateEvent | None:
        assert watched.best is not None
        frame, vehicle = watched.best
        if not self.camera.events.unreadable:
            return None
        if self._repeat(watched.first_seen, watched.boxes[0], watched.last_seen, watched.boxes[-1]):
            return None
        vehicle = coloured(frame.image, vehicle)
        event = self._event(
            watched.first_seen,
            watched.last_seen,
            frame.media_time_s,
            watched.looks,
            vehicle.box,
            vehicle.confidence,
            NO_PLATE,
            vehicle,
            watched.direction,
            self.identify(watched.first_clock, f"vehicle-{watched.watch_id}"),
            Phase.EARLY,
        )
        event = self._saved(event, None, vehicle, frame)
        self._watched[watched.watch_id] = event
        return event

    def remember(self, last_seen: datetime, box: Box) -> None:
        """A vehicle without a read plate was last seen at ``last_seen`` in ``box`` (its
        track ended there)."""
        self._recent.append((last_seen, box))

    def _gone(self, watched: Watched) -> PlateEvent:
        early = self._watched.pop(watched.watch_id)
        self.remember(watched.last_seen, watched.boxes[-1])
        direction = watched.direction or early.direction
        return replace(
            early,
            phase=Phase.FINAL,
            last_seen=watched.last_seen,
            frames=watched.looks,
            direction=direction,
            direction_name=self._name(direction),
        )

    def _repeat(self, first_seen: datetime, first: Box, last_seen: datetime, last: Box) -> bool:
        """Whether a vehicle first seen at ``first_seen`` in box ``first`` repeats one last
        seen there just before (and remember where this one is, either way)."""
        window = timedelta(seconds=REPEAT_S)
        self._recent = [(seen, b) for seen, b in self._recent if last_seen - seen <= window]
        repeat = any(
            first_seen - seen <= window and iou(first, b) >= REPEAT_IOU for seen, b in self._recent
        )
        self.remember(last_seen, last)
        return repeat

    def _name(self, direction: Direction | None) -> str | None:
        if direction is None:
            return None
        return self.camera.direction.get(direction.travel)  # type: ignore[call-overload,no-any-return]

    def _event(
        self,
        first_seen: datetime,
        last_seen: datetime,
        media_time_s: float | None,
        frames: int,
        bbox: Box,
        confidence: float,
        reason: str,
        vehicle: Vehicle | None,
        direction: Direction | None,
        event_id: str,
        phase: Phase,
    ) -> PlateEvent:
        return PlateEvent(
            camera=self.camera.name,
            plate_number=None,
            confidence=0.0,
            detector_confidence=confidence,
            bbox=bbox,
            first_seen=first_seen,
            last_seen=last_seen,
            media_time_s=media_time_s,
            frames=frames,
            format_valid=False,
            dues_result=NOT_READ,
            event_id=event_id,
            phase=phase,
            reason=reason,
            vehicle=vehicle,
            direction=direction,
            direction_name=self._name(direction),
        )

    def _saved(
        self, event: PlateEvent, crop: PlateCrop | None, vehicle: Vehicle | None, frame: Frame
    ) -> PlateEvent:
        if self.evidence is None:
            return event
        saved = self.evidence.save(event, crop, vehicle, frame)
        return event if saved is None else event.with_evidence(*saved)
