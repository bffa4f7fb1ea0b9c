"""One camera's pipeline: frames → detect → track → read → dues → event → sinks.

Frames are read in the source's thread, at the camera's detection rate; frames where
nothing moved in the region of interest are not detected (the tracker holds its tracks),
the others are detected in worker threads (a file keeps three frames in detection at once)
and tracked in frame order. Finished tracks go to a separate reading
task, so detection never waits for OCR. The tracker and the deduplicator belong to this
camera alone, so they need no locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import supervision as sv

from streamer.config import CameraConfig
from streamer.detect import Detector, gate
from streamer.dues import Dues
from streamer.events import CameraStatus, Deduplicator, Event, PlateEvent
from streamer.metrics import Metrics
from streamer.motion import MotionGate, region, region_box
from streamer.ocr import OcrEngine
from streamer.read import PlateReader
from streamer.recordings import EvidenceWriter
from streamer.sinks import Sink
from streamer.sources import (
    ONLINE,
    Frame,
    Source,
    SourceError,
    mask_url,
    open_source,
    read_in_thread,
)
from streamer.track import FinishedTrack, PlateTracker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stages:
    """The components every camera shares: one detector, one OCR engine, one dues store."""

    detector: Detector
    engine: OcrEngine
    dues: Dues
    sinks: Sequence[Sink]
    evidence: EvidenceWriter | None
    metrics: Metrics | None = None


#: Events each camera keeps in :attr:`CameraStats.events_list`.
RECENT_EVENTS = 1000
#: Frames of a recorded file in detection at once. With one inference per core (see
#: :class:`~streamer.detect.OpenVinoYolo`), a third frame keeps both busy while the oldest
#: is tracked: the looped parkpow clip replays at 0.28, 0.40, 0.42 and 0.42 of the decode
#: rate with 1, 2, 3 and 4 frames in flight.
FILE_IN_FLIGHT = 3


@dataclass
class CameraStats:
    """Counters of one camera's run.

    ``frames`` counts every decoded frame; ``detected`` those the detector saw; ``still``
    those examined but not detected because nothing moved; ``skipped`` those a live
    camera delivered while the pipeline was busy. The rest fell between two detections
    at the camera's ``rate_fps``.
    """

    frames: int = 0
    detected: int = 0
    still: int = 0
    skipped: int = 0
    tracks: int = 0
    events: int = 0
    dues_events: int = 0
    merged: int = 0
    unread: int = 0
    error: str | None = None
    status: str | None = None
    last_frame_at: datetime | None = None
    #: The latest events (a window, so a daemon running for months does not grow).
    events_list: deque[PlateEvent] = field(
        default_factory=lambda: deque(maxlen=RECENT_EVENTS), repr=False
    )

    _recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=50), repr=False)

    def count_frame(self, frame: Frame, decoded: int) -> None:
        """Count one examined frame; ``decoded`` is the source's running total."""
        self.frames = max(self.frames, decoded)
        self.last_frame_at = frame.captured_at
        self._recent.append((time.monotonic(), self.frames))

    @property
    def fps(self) -> float:
        """Frames decoded per second over the last 50 examined (0 when idle for 5 s)."""
        if len(self._recent) < 2 or time.monotonic() - self._recent[-1][0] > 5:
            return 0.0
        (first, first_frames), (last, last_frames) = self._recent[0], self._recent[-1]
        return (last_frames - first_frames) / max(last - first, 1e-6)


FrameCallback = Callable[[Frame], None]


class CameraPipeline:
    """Runs one camera from its source to the sinks."""

    def __init__(
        self,
        camera: CameraConfig,
        stages: Stages,
        source: Source | None = None,
        on_frame: FrameCallback | None = None,
    ) -> None:
        self.camera = camera
        self.stages = stages
        self.source = source
        self.on_frame = on_frame
        self.tracker = PlateTracker(camera.name, camera.tracker)
        self.reader = PlateReader(stages.engine, camera.reader, camera.plates)
        self.dedup = Deduplicator(camera.dedup)
        self.motion = MotionGate(camera.detection) if camera.detection.motion_gate else None
        self.stats = CameraStats()
        self.stop = asyncio.Event()
        self.running = False

    @property
    def is_up(self) -> bool:
        """Whether frames are flowing: a live camera online, or a file being read."""
        if self.stats.status is not None:
            return self.stats.status == ONLINE
        return self.running and self.stats.error is None

    def detect(self, frame: Frame) -> sv.Detections:
        """Plates in the frame's region of interest, in frame coordinates (blocking; runs in
        a worker thread)."""
        config = self.camera.detection
        started = time.perf_counter()
        detections = gate(self.stages.detector.detect(region(frame.image, config.roi)), config)
        if config.roi is not None and len(detections):
            x1, y1, _, _ = region_box(frame.image.shape, config.roi)
            detections.xyxy = detections.xyxy + np.array([x1, y1, x1, y1], dtype=float)
        if self.stages.metrics is not None:
            self.stages.metrics.detect_seconds.labels(self.camera.name).observe(
                time.perf_counter() - started
            )
        return detections

    async def run(self) -> CameraStats:
        """Process the source to its end (or until :attr:`stop` is set); returns counters.

        Finished tracks and camera status changes share one queue to the reading task, so
        the sinks see them in order and detection never waits for OCR or delivery.
        """
        loop = asyncio.get_running_loop()
        work: asyncio.Queue[FinishedTrack | CameraStatus | None] = asyncio.Queue()
        reading = asyncio.create_task(self._read_loop(work), name=f"read-{self.camera.name}")

        def on_status(state: str, reason: str | None) -> None:  # from the source's thread
            status = CameraStatus(self.camera.name, state, reason, datetime.now(UTC))
            loop.call_soon_threadsafe(self._status_changed, status, work)

        def on_drop() -> None:
            self.stats.skipped += 1

        # Frames being detected, oldest first, with the decoded count when each arrived
        # (``None`` instead of a detection when nothing moved); tracked in this order.
        in_flight: deque[tuple[Frame, asyncio.Future[sv.Detections] | None, int]] = deque()

        async def follow_oldest(keep: int) -> None:
            while len(in_flight) > keep:
                frame, detecting, decoded = in_flight.popleft()
                detections = None if detecting is None else await detecting
                if detections is None:
                    self.stats.still += 1
                    finished = self.tracker.hold(frame)
                else:
                    self.stats.detected += 1
                    finished = self.tracker.update(frame, detections)
                for track in finished:
                    work.put_nowait(track)
                self.stats.count_frame(frame, decoded)
                if self.on_frame is not None:
                    self.on_frame(frame)

        self.running = True
        source: Source | None = None
        try:
            source = self.source or open_source(self.camera, on_status)
            # A file keeps FILE_IN_FLIGHT frames in detection at once, so it uses every
            # core; a live source one, so it always detects the newest frame.
            depth = 1 if source.live else FILE_IN_FLIGHT
            async for frame in read_in_thread(source, self.stop, on_drop=on_drop):
                # The gate compares with the frame before, so it runs in frame order.
                motion = self.motion
                moved = motion is None or await asyncio.to_thread(motion.moved, frame.image)
                detecting = loop.run_in_executor(None, self.detect, frame) if moved else None
                in_flight.append((frame, detecting, source.decoded))
                await follow_oldest(depth - 1)
            await follow_oldest(0)
        except SourceError as error:
            self.stats.error = mask_url(str(error))
            logger.error("camera %s: %s", self.camera.name, self.stats.error)
        finally:
            if source is not None:
                self.stats.frames = max(self.stats.frames, source.decoded)
            for _, detecting, _ in in_flight:  # left behind by an error: not tracked
                if detecting is not None:
                    detecting.add_done_callback(lambda done: done.cancelled() or done.exception())
            for track in self.tracker.finish_all():
                work.put_nowait(track)
            work.put_nowait(None)
            await reading
            self.running = False
        return self.stats

    def _status_changed(
        self, status: CameraStatus, work: asyncio.Queue[FinishedTrack | CameraStatus | None]
    ) -> None:
        self.stats.status = status.status
        work.put_nowait(status)

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to every sink; one failing sink does not stop the others."""
        for sink in self.stages.sinks:
            try:
                sink.send(event)
            except Exception:
                logger.exception("camera %s: sink %s failed", self.camera.name, type(sink).__name__)

    async def _read_loop(self, work: asyncio.Queue[FinishedTrack | CameraStatus | None]) -> None:
        while (track := await work.get()) is not None:
            if isinstance(track, CameraStatus):
                await asyncio.to_thread(self.deliver, track)
                continue
            self.stats.tracks += 1
            try:
                event = await asyncio.to_thread(self.process_track, track)
            except Exception:
                logger.exception("camera %s: track %d failed", self.camera.name, track.track_id)
                continue
            if event is not None:
                self.stats.events += 1
                self.stats.dues_events += event.dues_result.dues_pending
                self.stats.events_list.append(event)

    def process_track(self, track: FinishedTrack) -> PlateEvent | None:
        """Read, check and deliver one finished track (blocking; runs in a worker thread).

        Returns the event, or ``None`` when the plate was unreadable or merged.
        """
        started = time.perf_counter()
        read = self.reader.read(track.crops)
        if self.stages.metrics is not None:
            self.stages.metrics.ocr_seconds.labels(self.camera.name).observe(
                time.perf_counter() - started
            )
        if read is None:
            self.stats.unread += 1
            logger.debug("camera %s: track %d unreadable", self.camera.name, track.track_id)
            return None
        if not self.dedup.admit(read.text, track.first_seen, track.last_seen):
            self.stats.merged += 1
            logger.info("camera %s: %s seen again, merged", self.camera.name, read.text)
            return None
        event = PlateEvent(
            camera=self.camera.name,
            plate_number=read.text,
            confidence=read.confidence,
            detector_confidence=read.crop.confidence,
            bbox=read.crop.bbox,
            first_seen=track.first_seen,
            last_seen=track.last_seen,
            media_time_s=read.crop.frame.media_time_s,
            frames=track.frames,
            format_valid=read.format_valid,
            dues_result=self.stages.dues.lookup(read.text),
        )
        if self.stages.evidence is not None:
            try:
                event = event.with_evidence(*self.stages.evidence.save(event, read.crop))
            except OSError as error:
                logger.error("camera %s: evidence not saved: %s", self.camera.name, error)
        for sink in self.stages.sinks:
            try:
                sink.send(event)
            except Exception:
                logger.exception("camera %s: sink %s failed", self.camera.name, type(sink).__name__)
        logger.debug("camera %s: %s (votes %s)", self.camera.name, read.text, ",".join(read.votes))
        return event
