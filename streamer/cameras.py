"""The cameras a daemon runs: which pipelines run now (:class:`Cameras`, read by metrics,
``/health``, ``/api/cameras``, MQTT and the cluster's leases), and how they are run to
their end (:class:`CameraRunner`: every camera here, :class:`LocalRunner`; none, for
``streamer serve``, :class:`NoCameras`; a cluster node's share,
:class:`~streamer.cluster.runner.ClusterRunner`)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from streamer.config import CameraConfig
from streamer.events import CameraSnapshot, PlateEvent
from streamer.sources.frame import CameraState, Frame

#: Events each camera keeps in :attr:`CameraStats.events_list`.
RECENT_EVENTS = 1000
#: Recent examined frames the frame rate is measured over, and how long without one
#: counts as idle.
FPS_WINDOW, FPS_IDLE_S = 50, 5.0


#: The counters of :class:`CameraStats` that :meth:`CameraStats.add` sums.
SUMMED = (
    *("frames", "detected", "still", "skipped"),
    *("tracks", "events", "dues_events", "merged", "unread"),
)


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
    last_frame_at: datetime | None = None
    #: The latest events (a window, so a daemon running for months does not grow).
    events_list: deque[PlateEvent] = field(
        default_factory=lambda: deque(maxlen=RECENT_EVENTS), repr=False
    )

    _recent: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=FPS_WINDOW), repr=False
    )

    def add(self, other: CameraStats) -> None:
        """Add the counters of another run of the same camera (a cluster node may read a
        camera several times)."""
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def snapshot(self, name: str, source: str, state: CameraState) -> CameraSnapshot:
        """The counters now, with the camera's name, (masked) source and state."""
        return CameraSnapshot(
            name=name,
            source=source,
            state=state,
            fps=self.fps,
            frames=self.frames,
            detected=self.detected,
            still=self.still,
            skipped=self.skipped,
            events=self.events,
            dues_events=self.dues_events,
            last_frame_at=self.last_frame_at,
            error=self.error,
        )

    def count_vehicle(self, event: PlateEvent) -> None:
        """A vehicle's first event (early, or final without an early one)."""
        self.events += 1
        self.dues_events += event.dues_result.dues_pending

    def count_frame(self, frame: Frame, decoded: int) -> None:
        """Count one examined frame; ``decoded`` is the source's running total."""
        self.frames = max(self.frames, decoded)
        self.last_frame_at = frame.captured_at
        self._recent.append((time.monotonic(), self.frames))

    @property
    def fps(self) -> float:
        """Frames decoded per second over the last examined frames (0 when idle)."""
        if len(self._recent) < 2 or time.monotonic() - self._recent[-1][0] > FPS_IDLE_S:
            return 0.0
        (first, first_frames), (last, last_frames) = self._recent[0], self._recent[-1]
        return (last_frames - first_frames) / max(last - first, 1e-6)


class CameraRun(Protocol):
    """One camera's pipeline (:class:`~streamer.pipeline.CameraPipeline`), as the runners
    and the readers of its state see it."""

    camera: CameraConfig
    #: Set to stop reading; open tracks still become events.
    stop: asyncio.Event

    @property
    def open_tracks(self) -> int:
        """Tracks open now."""
        ...

    def snapshot(self) -> CameraSnapshot:
        """The camera's state and counters now."""
        ...

    async def run(self) -> CameraStats:
        """Read the source to its end (or the stop); the counters."""
        ...


#: Makes a camera's pipeline, given the plates it saw lately (on another node, for a
#: camera a cluster moved here; so that a vehicle still in view is not a new one).
PipelineFactory = Callable[[CameraConfig, Mapping[str, datetime]], CameraRun]


class Cameras:
    """The pipelines running in this daemon now (a cluster node's: its share, as it
    changes).

    Example:
        >>> cameras = Cameras()
        >>> Metrics(cameras.snapshots, deliveries)
    """

    def __init__(self) -> None:
        self._running: list[CameraRun] = []

    def add(self, pipeline: CameraRun) -> None:
        """A pipeline starts."""
        self._running.append(pipeline)

    def remove(self, pipeline: CameraRun) -> None:
        """A pipeline ended."""
        if pipeline in self._running:
            self._running.remove(pipeline)

    @property
    def running(self) -> Sequence[CameraRun]:
        """The pipelines running now."""
        return tuple(self._running)

    def snapshots(self) -> list[CameraSnapshot]:
        """Every running camera's state and counters now."""
        return [pipeline.snapshot() for pipeline in self._running]

    def stop(self, names: Sequence[str] | None = None) -> None:
        """Stop reading (the cameras ``names``, or all); open tracks still become events."""
        for pipeline in self._running:
            if names is None or pipeline.camera.name in names:
                pipeline.stop.set()

    @property
    def open_tracks(self) -> int:
        """Tracks still open on every camera."""
        return sum(pipeline.open_tracks for pipeline in self._running)


class CameraRunner(Protocol):
    """Runs the cameras this daemon reads until their sources end or ``stop`` is set."""

    async def run(self, stop: asyncio.Event) -> dict[str, CameraStats]:
        """Run to the end; each camera's counters."""
        ...


class LocalRunner:
    """Every enabled camera, here, each to the end of its source (a file's end, or a stop
    for a live camera)."""

    def __init__(
        self, cameras: Sequence[CameraConfig], build: PipelineFactory, running: Cameras
    ) -> None:
        self.cameras = list(cameras)
        self.build = build
        self.running = running

    async def run(self, stop: asyncio.Event) -> dict[str, CameraStats]:
        """Run every camera to its end (``stop``: the pipelines were told already)."""
        pipelines = [self.build(camera, {}) for camera in self.cameras]
        for pipeline in pipelines:
            self.running.add(pipeline)
        ran = await asyncio.gather(*(pipeline.run() for pipeline in pipelines))
        return {p.camera.name: stats for p, stats in zip(pipelines, ran, strict=True)}


class NoCameras:
    """No camera (``streamer serve``): runs until ``stop`` is set."""

    async def run(self, stop: asyncio.Event) -> dict[str, CameraStats]:
        """Wait for the stop."""
        await stop.wait()
        return {}
