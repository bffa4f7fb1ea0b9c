"""The cameras a daemon runs: which pipelines run now (:class:`Cameras`, read by metrics,
``/health``, ``/api/cameras``, MQTT and the cluster's leases), and how they are run to
their end (:class:`CameraRunner`: every camera here, :class:`LocalRunner`; none, for
``streamer serve``, :class:`NoCameras`; a cluster node's share,
:class:`~streamer.cluster.runner.ClusterRunner`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from streamer.config import CameraConfig
from streamer.events import CameraSnapshot
from streamer.pipeline import CameraPipeline, CameraStats

#: Makes a camera's pipeline, given the plates it saw lately (on another node, for a
#: camera a cluster moved here; so that a vehicle still in view is not a new one).
PipelineFactory = Callable[[CameraConfig, Mapping[str, datetime]], CameraPipeline]


class Cameras:
    """The pipelines running in this daemon now (a cluster node's: its share, as it
    changes).

    Example:
        >>> cameras = Cameras()
        >>> Metrics(cameras.snapshots, deliveries)
    """

    def __init__(self) -> None:
        self._running: list[CameraPipeline] = []

    def add(self, pipeline: CameraPipeline) -> None:
        """A pipeline starts."""
        self._running.append(pipeline)

    def remove(self, pipeline: CameraPipeline) -> None:
        """A pipeline ended."""
        if pipeline in self._running:
            self._running.remove(pipeline)

    @property
    def running(self) -> Sequence[CameraPipeline]:
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
        return sum(pipeline.tracker.active for pipeline in self._running)


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
