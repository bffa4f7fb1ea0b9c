"""From a finished track to its vehicle's event: read the plate, merge repeats, look up
the dues, save the evidence.

A camera's :class:`TrackReporter` runs in its reading task, apart from detection. Its
:class:`Deduplicator` merges a repeat of the same plate seen within the configured window
into the first event, so a vehicle that stops, is hidden and reappears gives one event,
not two.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from streamer.config import CameraConfig, DedupConfig
from streamer.delivery.recordings import EvidenceWriter
from streamer.events import PlateEvent
from streamer.reading.ocr import OcrEngine
from streamer.reading.read import PlateReader
from streamer.stores.dues import Dues
from streamer.vision.track import FinishedTrack

logger = logging.getLogger(__name__)

#: Plates a deduplicator remembers before it forgets those outside its window.
DEDUP_MEMORY = 1024


class Deduplicator:
    """Merges repeats of one plate on one camera within ``window_s`` of its last sighting."""

    def __init__(self, config: DedupConfig) -> None:
        self.window = timedelta(seconds=config.window_s)
        self._last_seen: dict[str, datetime] = {}

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


class Skipped(StrEnum):
    """Why a finished track gave no event."""

    UNREADABLE = "unreadable"
    MERGED = "merged"


class StageTimer(Protocol):
    """Where a stage's time goes (the metrics' histograms)."""

    def observe(self, stage: str, camera: str, seconds: float) -> None:
        """Record that ``stage`` took ``seconds`` for one item of ``camera``."""
        ...


class TrackReporter:
    """Turns one camera's finished tracks into plate events.

    Example:
        >>> reporter = TrackReporter(camera, engine, dues, evidence)
        >>> event = reporter.report(track)   # a PlateEvent, or why there is none
    """

    def __init__(
        self,
        camera: CameraConfig,
        engine: OcrEngine,
        dues: Dues,
        evidence: EvidenceWriter | None,
        timer: StageTimer | None = None,
    ) -> None:
        self.camera = camera.name
        self.reader = PlateReader(engine, camera.reader, camera.plates)
        self.dedup = Deduplicator(camera.dedup)
        self.dues = dues
        self.evidence = evidence
        self.timer = timer

    def report(self, track: FinishedTrack) -> PlateEvent | Skipped:
        """Read, merge and check one finished track (blocking; runs in a worker thread)."""
        started = time.perf_counter()
        read = self.reader.read(track.crops)
        if self.timer is not None:
            self.timer.observe("ocr", self.camera, time.perf_counter() - started)
        if read is None:
            logger.debug("camera %s: track %d unreadable", self.camera, track.track_id)
            return Skipped.UNREADABLE
        if not self.dedup.admit(read.text, track.first_seen, track.last_seen):
            logger.info("camera %s: %s seen again, merged", self.camera, read.text)
            return Skipped.MERGED
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
            dues_result=self.dues.lookup(read.text),
        )
        if self.evidence is not None:
            try:
                event = event.with_evidence(*self.evidence.save(event, read.crop))
            except OSError as error:
                logger.error("camera %s: evidence not saved: %s", self.camera, error)
        logger.debug("camera %s: %s (votes %s)", self.camera, read.text, ",".join(read.votes))
        return event
