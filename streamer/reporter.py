"""From a track to its vehicle's events: read the plate, merge repeats, look up the dues,
find the vehicle and its direction, save the evidence; early while the vehicle is in view,
final when its track ends.

A camera's :class:`TrackReporter` runs in its reading task, apart from detection. Its
:class:`Deduplicator` merges a repeat of the same plate seen within the configured window
into the first event, so a vehicle that stops, is hidden and reappears gives one event,
not two. The vehicle model runs on the frame of the track's best crop for its first event,
and again for its final event if the best crop changed. A track whose plate no read agrees
on is reported as ``unreadable`` once it is overdue (or when it ends), and a vehicle the
watch found without a plate box as ``no plate`` (:mod:`streamer.unread`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from streamer.config import CameraConfig, DedupConfig
from streamer.delivery.recordings import EvidenceWriter
from streamer.events import Phase, PlateEvent
from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.read import PlateRead, PlateReader
from streamer.stores.checks import PlateChecks
from streamer.unread import StageTimer, Unread, VehicleProbe
from streamer.vision.track import FinishedTrack, OpenTrack, PlateCrop, Track
from streamer.vision.vehicles import NoVehicles, Vehicle, VehicleDetector, vehicle_of

logger = logging.getLogger(__name__)

#: Plates a deduplicator remembers before it forgets those outside its window.
DEDUP_MEMORY = 1024

#: The namespace of the event ids derived from a file (see :meth:`TrackReporter.event_id`).
FILE_EVENTS = uuid.UUID("0f4d5a52-8c1e-5b7e-9a43-2b6c1d3e4f50")


class Deduplicator:
    """Merges repeats of one plate on one camera within ``window_s`` of its last sighting.

    ``seen``: plates another reader of this camera saw, and when (a cluster's node that
    had it before), so that a vehicle still in view when the camera moved is not a new one.
    """

    def __init__(self, config: DedupConfig, seen: Mapping[str, datetime] | None = None) -> None:
        self.window = timedelta(seconds=config.window_s)
        self._last_seen: dict[str, datetime] = dict(seen or {})

    def admit(self, plate: str, first_seen: datetime, last_seen: datetime) -> bool:
        """``True`` when this sighting is a new event; ``False`` when it merges into one."""
        previous = self._last_seen.get(plate)
        self._last_seen[plate] = max(last_seen, previous) if previous else last_seen
        if previous is not None and first_seen - previous <= self.window:
            return False
        if len(self._last_seen) > DEDUP_MEMORY:
            cutoff = last_seen - self.window
            self._last_seen = {p: t for p, t in self._last_seen.items() if t >= cutoff}
        return True


def finals_of(earlies: Sequence[dict[str, Any]], checks: PlateChecks) -> list[PlateEvent]:
    """The final events of early events whose tracks a crash ended (as the events log has
    them): their plate as the early read had it, with the dues and lists looked up again."""
    finals = []
    for record in earlies:
        try:
            early = PlateEvent.from_json(record)
        except (KeyError, TypeError, ValueError) as error:
            logger.error("early event %s cannot be finalised: %r", record.get("event_id"), error)
            continue
        if early.plate_number is None:  # a vehicle whose plate was not read
            finals.append(replace(early, phase=Phase.FINAL))
            continue
        checked = checks.check(early.plate_number)
        finals.append(
            replace(early, phase=Phase.FINAL, dues_result=checked.dues_result, lists=checked.lists)
        )
    if finals:
        logger.warning("finalising %d early event(s) whose track a restart ended", len(finals))
    return finals


class Skipped(StrEnum):
    """Why a finished track gave no event."""

    UNREADABLE = "unreadable"
    SHORT = "short"  # fewer than tracker.min_frames sightings, and no early event
    MERGED = "merged"


@dataclass
class _Vehicle:
    """What the reporter knows of an open track: each crop's read (each crop is read once),
    its early event, whether its plate was a repeat of a recent vehicle, and the vehicle
    holding it and the crop it was looked for on."""

    reads: dict[PlateCrop, TextRead] = field(default_factory=dict)
    early: PlateEvent | None = None
    merged: bool = False
    looked: PlateCrop | None = None
    vehicle: Vehicle | None = None


class TrackReporter:
    """Turns one camera's tracks into plate events: an early event as soon as an open
    track's reads agree (:meth:`progress`), and a final one when it ends (:meth:`report`).

    The early rule: ``events.early_reads`` reads of the track's best ``reader.crops`` crops
    give the same plate and their vote's confidence is at least ``events.early_confidence``
    or, once the track is overdue (in view ``events.max_event_delay_s``), any plate the
    reads agree on. The final event votes over the best crops of the whole track (reads
    already made are not made again) and keeps the early event's ``event_id``.

    Example:
        >>> reporter = TrackReporter(camera, engine, PlateChecks(dues), evidence)
        >>> reporter.progress(open_track)   # an early PlateEvent, or None (not yet)
        >>> reporter.report(finished)       # the final PlateEvent, or why there is none
    """

    def __init__(
        self,
        camera: CameraConfig,
        engine: OcrEngine,
        checks: PlateChecks,
        evidence: EvidenceWriter | None,
        timer: StageTimer | None = None,
        seen: Mapping[str, datetime] | None = None,
        vehicles: VehicleDetector | None = None,
    ) -> None:
        self.camera = camera.name
        self.config = camera
        self.events = camera.events
        self.vehicles: VehicleDetector = vehicles or NoVehicles()
        self.unread = Unread(camera, self.vehicles, evidence, self.identify, timer)
        self.reader = PlateReader(engine, camera.reader, camera.plates)
        self.dedup = Deduplicator(camera.dedup, seen)
        self.checks = checks
        self.evidence = evidence
        self.timer = timer
        self.min_frames = camera.tracker.min_frames
        #: For a recorded file: its :func:`~streamer.sources.files.file_identity`, from
        #: which event ids are derived; ``None`` (random ids) for live sources.
        self.file_identity: str | None = None
        self._vehicles: dict[int, _Vehicle] = {}

    def event_id(self, track: Track) -> str:
        """A new vehicle's ``event_id``. Random for a live source; for a file, derived from
        the camera, the file's content and where the track starts, so that the file read
        again (after a crash) gives its vehicles the same ids: the outbox then does not
        send them again, and a receiver can recognise any it gets twice."""
        return self.identify(track.first_clock_s, str(track.track_id))

    def identify(self, clock: float, what: str) -> str:
        """The ``event_id`` of a vehicle first seen at ``clock`` on the source's clock, as
        ``what`` (its track) (see :meth:`event_id`)."""
        if self.file_identity is None:
            return str(uuid.uuid4())
        name = f"{self.camera}:{self.file_identity}:{clock:.3f}:{what}"
        return str(uuid.uuid5(FILE_EVENTS, name))

    def progress(self, track: OpenTrack) -> PlateEvent | Skipped | None:
        """The early event of an open track whose reads now agree; ``Skipped.MERGED`` when
        its plate repeats a recent vehicle's; ``None`` while they do not agree yet
        (blocking; runs in a worker thread)."""
        vehicle = self._vehicles.setdefault(track.track_id, _Vehicle())
        if vehicle.early is not None or vehicle.merged:
            return None
        read = self._read(vehicle, track)
        if read is None:
            if not (track.overdue and self.unread.reportable(track)):
                return None
            vehicle.early = self.unread.unreadable(track, self._vehicle(vehicle, track))
            vehicle.merged = vehicle.early is None
            return vehicle.early or Skipped.MERGED
        agreeing = sum(vote == read.text for vote in read.votes)
        confident = (
            agreeing >= self.events.early_reads and read.confidence >= self.events.early_confidence
        )
        if not (confident or track.overdue):
            return None
        if not self.dedup.admit(read.text, track.first_seen, track.last_seen):
            vehicle.merged = True
            logger.info("camera %s: %s seen again, merged", self.camera, read.text)
            return Skipped.MERGED
        vehicle.early = self._event(track, read, Phase.EARLY, vehicle)
        return vehicle.early

    def report(self, track: FinishedTrack) -> PlateEvent | Skipped:
        """The final event of a finished track: its early event's, with the vote over the
        whole track, or a new one (blocking; runs in a worker thread)."""
        vehicle = self._vehicles.pop(track.track_id, None) or _Vehicle()
        early = vehicle.early
        if early is None and not vehicle.merged and track.frames < self.min_frames:
            return Skipped.SHORT  # read early, but not yet with confidence
        read = self._read(vehicle, track)
        if early is not None:
            if read is not None:
                self.dedup.admit(read.text, track.first_seen, track.last_seen)
                return self._event(track, read, Phase.FINAL, vehicle, early)
            final = replace(
                early, phase=Phase.FINAL, last_seen=track.last_seen, frames=track.frames
            )
            if early.plate_number is None:  # still unread: its final event says so again
                self.unread.remember(track.last_seen, (track.path or (track.best.bbox,))[-1])
                return final
            # The best crops no longer agree: the early read stands.
            checked = self.checks.check(early.plate_number)
            return replace(final, dues_result=checked.dues_result, lists=checked.lists)
        if read is None:
            logger.debug("camera %s: track %d unreadable", self.camera, track.track_id)
            if not self.unread.reportable(track):
                return Skipped.UNREADABLE
            unread = self.unread.unreadable(track, self._vehicle(vehicle, track), Phase.FINAL)
            return unread or Skipped.MERGED
        if not self.dedup.admit(read.text, track.first_seen, track.last_seen):
            logger.info("camera %s: %s seen again, merged", self.camera, read.text)
            return Skipped.MERGED
        return self._event(track, read, Phase.FINAL, vehicle)

    def _read(self, vehicle: _Vehicle, track: Track) -> PlateRead | None:
        """The vote over the track's best ``reader.crops`` crops, reading those not read."""
        chosen = track.crops[: self.reader.reader.crops]
        vehicle.reads = {crop: vehicle.reads[crop] for crop in chosen if crop in vehicle.reads}
        unread = [crop for crop in chosen if crop not in vehicle.reads]
        if unread:
            started = time.perf_counter()
            for crop in unread:
                vehicle.reads[crop] = self.reader.read_crop(crop.image)
            if self.timer is not None:
                self.timer.observe("ocr", self.camera, time.perf_counter() - started)
        return self.reader.agree(chosen, [vehicle.reads[crop] for crop in chosen])

    def look(self, probe: VehicleProbe) -> list[PlateEvent]:
        """The events of vehicles without a plate box that a look of the vehicle model
        found (blocking; runs in a worker thread)."""
        return self.unread.look(probe)

    def finish(self) -> list[PlateEvent]:
        """The final events of the vehicles without a plate box still in view (the source
        has ended)."""
        return self.unread.finish()

    def _vehicle(self, state: _Vehicle, track: Track, final: bool = False) -> Vehicle | None:
        """The vehicle holding the track's plate, on the frame of its best crop: looked for
        when the track's first event is made, and again for its final event when the best
        crop has changed since (a vehicle further in view is told apart better)."""
        best = track.best
        if state.looked is None or (final and state.looked is not best):
            started = time.perf_counter()
            found = vehicle_of(self.vehicles, best.frame.image, best.bbox)
            state.vehicle = found or state.vehicle
            state.looked = best
            if self.timer is not None and not isinstance(self.vehicles, NoVehicles):
                self.timer.observe("vehicle", self.camera, time.perf_counter() - started)
        return state.vehicle

    def _event(
        self,
        track: Track,
        read: PlateRead,
        phase: Phase,
        state: _Vehicle,
        early: PlateEvent | None = None,
    ) -> PlateEvent:
        """The event of ``read``, with its dues and evidence; a final one keeps the event id
        of its ``early`` event (and names the early plate where it changed)."""
        checked = self.checks.check(read.text)
        vehicle = self._vehicle(state, track, final=phase is Phase.FINAL)
        direction = track.direction
        event = PlateEvent(
            camera=self.camera,
            plate_number=read.text,
            confidence=read.confidence,
            detector_confidence=read.crop.confidence,
            bbox=read.crop.bbox,
            first_seen=track.first_seen,
            last_seen=track.last_seen,
            media_time_s=read.crop.frame.media_time_s,
            frames=track.frames,
            format_valid=read.format_valid,
            format=read.format,
            dues_result=checked.dues_result,
            lists=checked.lists,
            event_id=self.event_id(track) if early is None else early.event_id,
            phase=phase,
            vehicle=vehicle,
            direction=direction,
            direction_name=None
            if direction is None
            else self.config.direction.get(direction.travel),  # type: ignore[call-overload]
        )
        if early is not None:
            changed = early.plate_number is not None and early.plate_number != read.text
            event = replace(event, previous_plate_number=early.plate_number if changed else None)
        if self.evidence is not None:
            saved = self.evidence.save(event, read.crop, vehicle)
            if saved is not None:
                event = event.with_evidence(*saved)
            elif early is not None:  # its images are still there: the vehicle's evidence
                event = event.with_evidence(
                    early.crop_path, early.snapshot_path, early.vehicle_crop_path
                )
        logger.debug(
            "camera %s: %s %s (votes %s)", self.camera, phase, read.text, ",".join(read.votes)
        )
        return event
