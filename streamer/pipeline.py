"""One camera's pipeline: frames → detect → track, then finished tracks → report → sinks.

Frames are read in the source's thread, at the camera's detection rate; frames where
nothing moved in the region of interest are not detected (the tracker holds its tracks),
the others are detected in worker threads (a file keeps three frames in detection at once)
and tracked in frame order. Finished tracks go through a bounded queue to a separate
reporting task (:class:`~streamer.reporter.TrackReporter`), so detection never waits for
OCR or delivery. The tracker and the reporter belong to this camera alone, so they need
no locks. Each pipeline describes itself in one :class:`CameraSnapshot`, which metrics,
``/health``, ``/api/cameras`` and the dashboard all read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import supervision as sv

from streamer.cameras import CameraStats
from streamer.config import CameraConfig, ReaderConfig, mask_url
from streamer.delivery.passes import FilePasses
from streamer.delivery.recordings import EvidenceWriter
from streamer.delivery.sinks import FanOut, Sink
from streamer.events import CameraSnapshot, CameraStatus, Phase, PlateEvent
from streamer.reading.ocr import OcrEngine
from streamer.reporter import Skipped, TrackReporter
from streamer.sources import is_live, open_source
from streamer.sources.files import file_identity
from streamer.sources.frame import CameraState, Frame, Source, SourceError
from streamer.sources.threads import read_in_thread
from streamer.stores.checks import PlateChecks
from streamer.unread import StageTimer, VehicleProbe
from streamer.vision.detect import Detector
from streamer.vision.motion import DetectionSchedule
from streamer.vision.region import region, to_frame
from streamer.vision.track import FinishedTrack, OpenTrack, PlateTracker
from streamer.vision.vehicles import NoVehicles, VehicleDetector
from streamer.vision.watch import WatchBudget
from streamer.vision.yolo import filter_detections

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stages:
    """The components every camera shares: one plate detector, the OCR engines (one per
    reader setting, see :class:`~streamer.reading.ocr.EnginePool`), the dues and lists, the
    sinks, the vehicle detector, the budget of the watch's looks that the live cameras
    share, and the passes over recorded files."""

    detector: Detector
    engines: Callable[[ReaderConfig, Sequence[str]], OcrEngine]
    checks: PlateChecks
    sinks: Sequence[Sink]
    evidence: EvidenceWriter | None
    timer: StageTimer | None = None
    vehicles: VehicleDetector = field(default_factory=NoVehicles)
    watch: WatchBudget = field(default_factory=WatchBudget)
    passes: FilePasses = field(default_factory=FilePasses)


#: Frames of a recorded file in detection at once. With one inference per core (see
#: :class:`~streamer.vision.yolo.OpenVinoYolo`), a third frame keeps both cores busy while
#: the oldest is tracked; a fourth gains nothing (docs/PERFORMANCE.md, "Design
#: measurements").
FILE_IN_FLIGHT = 3
#: Finished tracks (and status changes) waiting for the reporting task. When it is full,
#: tracking waits: a file's reading thread then waits too, a live camera drops frames
#: (counted as skipped). Nothing already tracked is dropped.
REPORT_QUEUE = 16
FrameCallback = Callable[[Frame], None]
#: What the reporting task takes: a track to read, a frame for the vehicle model to look
#: at, a camera status change, or ``None`` (the end).
Report = OpenTrack | FinishedTrack | VehicleProbe | CameraStatus | None


@dataclass
class _InFlight:
    """A frame on its way to the tracker: its detection (``None`` when nothing moved),
    and how many frames the source had decoded when it arrived."""

    frame: Frame
    detecting: asyncio.Future[sv.Detections] | None
    decoded: int
    moved: bool = True


class CameraPipeline:
    """Runs one camera from its source to the sinks."""

    def __init__(
        self,
        camera: CameraConfig,
        stages: Stages,
        source: Source | None = None,
        on_frame: FrameCallback | None = None,
        seen: Mapping[str, datetime] | None = None,
    ) -> None:
        """``seen``: the plates this camera saw lately and when (read by another node of
        a cluster), which its vehicles still in view repeat."""
        self.camera = camera
        self.stages = stages
        self.source = source
        self.on_frame = on_frame
        self.tracker = PlateTracker(camera.name, camera.tracker)
        self.reporter = TrackReporter(
            camera,
            stages.engines(camera.reader, camera.plates.formats),
            stages.checks,
            stages.evidence,
            stages.timer,
            seen,
            stages.vehicles,
        )
        self.schedule = DetectionSchedule(camera.detection)
        self.deliver = FanOut(stages.sinks, f"camera {camera.name}").send
        self.stats = CameraStats()
        self.state = CameraState.STARTING
        self.stop = asyncio.Event()
        self._reports: asyncio.Queue[Report] = asyncio.Queue(REPORT_QUEUE)
        # When the vehicle model last looked at a frame (source clock); whether a vehicle
        # that may have no plate is in view (the reporting task says, after each look).
        self._last_look: float | None = None
        self._following = False
        vehicles = camera.vehicles
        self._looks = (
            vehicles.enabled
            and vehicles.watch_interval_s > 0
            and camera.events.unreadable
            and not isinstance(stages.vehicles, NoVehicles)
        )
        # A camera in real time shares the daemon's budget of looks; a file replayed as
        # fast as it decodes looks by its own clock alone, the same looks in every run.
        self._budgeted = camera.realtime or is_live(camera.source)
        self._in_flight: deque[_InFlight] = deque()
        self._status_puts: set[asyncio.Task[None]] = set()
        # Tracks that gave an early event: their final event is the same vehicle's.
        self._early: set[int] = set()

    @property
    def open_tracks(self) -> int:
        """Tracks open now."""
        return self.tracker.active

    def snapshot(self) -> CameraSnapshot:
        """The camera's state and counters now."""
        return self.stats.snapshot(self.camera.name, mask_url(self.camera.source), self.state)

    def detect(self, frame: Frame) -> sv.Detections:
        """Plates in the frame's region of interest, in frame coordinates (blocking; runs in
        a worker thread)."""
        config = self.camera.detection
        started = time.perf_counter()
        found = self.stages.detector.detect(region(frame.image, config.roi))
        detections = to_frame(filter_detections(found, config), frame.image.shape, config.roi)
        if self.stages.timer is not None:
            self.stages.timer.observe("detect", self.camera.name, time.perf_counter() - started)
        return detections

    async def run(self) -> CameraStats:
        """Process the source to its end (or until :attr:`stop` is set); returns counters.

        Finished tracks and camera status changes share one queue to the reporting task,
        so the sinks see them in order.
        """
        name = self.camera.name
        reporting = asyncio.create_task(self._report_loop(), name=f"report-{name}")
        source: Source | None = None
        identity = None
        try:
            on_status = functools.partial(self._on_status, asyncio.get_running_loop())
            source = self.source or open_source(self.camera, on_status)
            if not is_live(self.camera.source):  # a live source reports its own state
                self.state = CameraState.FILE
                with contextlib.suppress(OSError):  # the source says why it cannot read
                    identity = await asyncio.to_thread(file_identity, Path(self.camera.source))
                    number = await asyncio.to_thread(self.stages.passes.begin, name, identity)
                    self.reporter.file_identity = identity + (f":{number}" if number > 1 else "")
            # A file keeps FILE_IN_FLIGHT frames in detection at once, so it uses every
            # core; a live source one, so it always detects the newest frame.
            depth = 1 if source.live else FILE_IN_FLIGHT
            async for frame in read_in_thread(source, self.stop, on_drop=self._dropped):
                await self._examine(frame, source.decoded)
                await self._track_oldest(keep=depth - 1)
            await self._track_oldest(keep=0)
            if self.state == CameraState.FILE:
                self.state = CameraState.FINISHED
        except SourceError as error:
            await self._track_oldest(keep=0)  # a damaged file's last frames still count
            self.stats.error = mask_url(str(error))
            self.state = CameraState.FAILED
            logger.error("camera %s: %s", name, self.stats.error)
        finally:
            if source is not None:
                self.stats.frames = max(self.stats.frames, source.decoded)
            for left in self._in_flight:  # left behind by an error: not tracked
                if left.detecting is not None:
                    left.detecting.add_done_callback(
                        lambda done: done.cancelled() or done.exception()
                    )
            self._in_flight.clear()
            for track in self.tracker.finish_all():
                await self._reports.put(track)
            await self._reports.put(None)
            await reporting
        if identity is not None and self.state == CameraState.FINISHED and not self.stop.is_set():
            await asyncio.to_thread(self.stages.passes.finish, name, identity)
        return self.stats

    async def _examine(self, frame: Frame, decoded: int) -> None:
        """Start detecting ``frame`` if it is due (see :class:`DetectionSchedule`)."""
        schedule = self.schedule
        # The motion gate compares with the frame before, so it runs in frame order.
        moved = await asyncio.to_thread(schedule.moved, frame) if schedule.motion else True
        detecting = None
        if schedule.due(frame, moved, unread=self.tracker.unsettled or self._following):
            detecting = asyncio.get_running_loop().run_in_executor(None, self.detect, frame)
        self._in_flight.append(_InFlight(frame, detecting, decoded, moved))

    async def _track_oldest(self, keep: int) -> None:
        """Track the oldest frames in flight, in order, until ``keep`` are left."""
        while len(self._in_flight) > keep:
            oldest = self._in_flight.popleft()
            if oldest.detecting is None:
                self.stats.still += 1
                finished = self.tracker.hold(oldest.frame)
            else:
                detections = await oldest.detecting
                self.stats.detected += 1
                finished = self.tracker.update(oldest.frame, detections)
                if self.tracker.untracked:
                    self.schedule.follow()
                if self._look_due(oldest):
                    boxes = tuple(tuple(round(v) for v in box) for box in detections.xyxy)
                    await self._reports.put(VehicleProbe(oldest.frame, boxes))
            for track in finished:
                await self._reports.put(track)
            events = self.camera.events
            # A track gets as many reads as it has sightings: it is read as soon as it has
            # enough for the early rule, even before tracker.min_frames (a settled track
            # is reported whatever its length).
            if events.early:
                for progressed in self.tracker.progress(
                    events.max_event_delay_s, events.early_reads
                ):
                    await self._reports.put(progressed)
            self.stats.count_frame(oldest.frame, oldest.decoded)
            if self.on_frame is not None:
                self.on_frame(oldest.frame)

    def _look_due(self, examined: _InFlight) -> bool:
        """Whether the vehicle model should look at this detected frame for vehicles that
        show no plate: something moved (or such a vehicle is being followed), no plate is
        tracked (or one is followed), ``vehicles.watch_interval_s`` has passed, and (in real
        time) the daemon's budget of looks allows one."""
        if not self._looks:
            return False
        following = self._following
        if not (examined.moved or following) or (self.tracker.active and not following):
            return False
        clock = examined.frame.clock_s
        interval = self.camera.vehicles.watch_interval_s
        if self._last_look is not None and 0 <= clock - self._last_look < interval:
            return False
        if self._budgeted and not self.stages.watch.take():
            return False
        self._last_look = clock
        return True

    def _dropped(self) -> None:
        """A live frame was replaced by a newer one before it was examined."""
        self.stats.skipped += 1

    def _on_status(
        self, loop: asyncio.AbstractEventLoop, state: CameraState, reason: str | None
    ) -> None:
        """From the source's thread: the camera went online, offline or is reconnecting."""
        status = CameraStatus(self.camera.name, state, reason, datetime.now(UTC))
        loop.call_soon_threadsafe(self._status_changed, status)

    def _status_changed(self, status: CameraStatus) -> None:
        self.state = status.status
        # A camera gone offline says nothing more of the vehicles in view: their tracks
        # end now (with their final events), not whenever frames come back.
        ended = self.tracker.finish_all() if status.status == CameraState.OFFLINE else []
        items: list[FinishedTrack | CameraStatus] = [*ended, status]
        for item in items:
            put = asyncio.create_task(self._reports.put(item))
            self._status_puts.add(put)  # held until done, in order behind earlier ones
            put.add_done_callback(self._status_puts.discard)

    def _report_and_deliver(self, track: OpenTrack | FinishedTrack) -> PlateEvent | Skipped | None:
        """The track's event (early for an open track, if its reads agree; final for a
        finished one), delivered (blocking; runs in a worker thread)."""
        if isinstance(track, OpenTrack):
            result = self.reporter.progress(track)
        else:
            result = self.reporter.report(track)
        if isinstance(result, PlateEvent):
            self.deliver(result)
        return result

    def _look_and_deliver(self, probe: VehicleProbe | None) -> list[PlateEvent]:
        """The events of vehicles without a plate box that the vehicle model's look at the
        probe's frame found (the final ones of those still in view, for ``None``: the
        end), delivered (blocking; runs in a worker thread)."""
        events = self.reporter.look(probe) if probe is not None else self.reporter.finish()
        for event in events:
            self.deliver(event)
        return events

    async def _looked(self, probe: VehicleProbe | None) -> None:
        try:
            events = await asyncio.to_thread(self._look_and_deliver, probe)
        except Exception:
            logger.exception("camera %s: vehicle look failed", self.camera.name)
            return
        self._following = self.reporter.unread.watch.following
        for event in events:
            if event.phase == Phase.EARLY:
                self.stats.count_vehicle(event)
            else:
                self.stats.tracks += 1
                self.stats.events_list.append(event)

    async def _report_loop(self) -> None:
        while (item := await self._reports.get()) is not None:
            if isinstance(item, CameraStatus):
                await asyncio.to_thread(self.deliver, item)
                continue
            if isinstance(item, VehicleProbe):
                await self._looked(item)
                continue
            try:
                result = await asyncio.to_thread(self._report_and_deliver, item)
            except Exception:
                logger.exception("camera %s: track %d failed", self.camera.name, item.track_id)
                continue
            if isinstance(item, OpenTrack):
                if result is not None:  # read with confidence (or a repeat): settled
                    self.tracker.settle(item.track_id)
                if isinstance(result, PlateEvent):
                    self._early.add(item.track_id)
                    self.stats.count_vehicle(result)
                elif result is Skipped.MERGED:
                    self.stats.merged += 1
                continue
            if result is Skipped.SHORT:
                continue  # too short to count, as a track the tracker drops
            self.stats.tracks += 1
            was_early = item.track_id in self._early
            self._early.discard(item.track_id)
            if result is Skipped.UNREADABLE:
                self.stats.unread += 1
            elif result is Skipped.MERGED and not was_early:
                self.stats.merged += 1
            elif isinstance(result, PlateEvent):
                if not was_early:
                    self.stats.count_vehicle(result)
                self.stats.events_list.append(result)
        await self._looked(None)


def size_executor(loop: asyncio.AbstractEventLoop, cameras: int) -> None:
    """Give ``loop`` a default executor for ``cameras``: each may have frames in detection
    (:data:`FILE_IN_FLIGHT` for a file, one for a live source), one in its motion gate and
    a track in reading at once, on top of the default pool the HTTP API uses; otherwise
    reading would queue behind other cameras' detection. Threads start only when needed."""
    threads = (FILE_IN_FLIGHT + 2) * cameras + min(32, (os.cpu_count() or 1) + 4)
    loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="streamer"))
