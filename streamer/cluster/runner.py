"""Runs this node's share of the cameras (:class:`ClusterRunner`), as the leases decide
(:mod:`streamer.cluster.leases`).

**Fencing.** A node stops a camera one renewal period before its lease can run out: when
renewals fail (the database is gone, or this node was cut off), each camera stops
reading ``lease_s`` minus one renewal period after the last renewal that succeeded,
while another node may take it only once ``lease_s`` has passed. A camera is therefore
never read by two nodes at once, clocks permitting.

**Handing over.** A camera handed over (a join, SIGTERM) stops reading, finishes its
open tracks as events, and only then is its lease released, so that the next node
starts at once. A node that dies (SIGKILL) holds its cameras until their leases expire;
the survivors start them within ``lease_s`` plus one renewal period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from streamer.cameras import CameraRun, Cameras, CameraStats, PipelineFactory
from streamer.cluster.leases import Leases, Report, Round
from streamer.config import CameraConfig
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)


@dataclass
class ClusterRunner:
    """Runs this node's share of the cameras for as long as the daemon runs: a pipeline for
    each camera it gets, stopped when it must hand the camera over or cannot renew."""

    leases: Leases
    cameras: Mapping[str, CameraConfig]
    build: PipelineFactory
    #: The running pipelines, which metrics and the API read.
    running: Cameras
    #: The plates a camera saw lately, from the cluster's events (see
    #: :meth:`~streamer.cluster.history.ClusterHistory.recent`).
    recent: Callable[[str, float], Mapping[str, datetime]]
    stats: dict[str, CameraStats] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[CameraStats]] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    _database: ThreadPoolExecutor | None = None

    async def run(self, stop: asyncio.Event) -> dict[str, CameraStats]:
        """Take part until ``stop`` is set; then finish every camera's open tracks and
        leave the cluster. Returns each camera's counters (summed over its runs here).

        The database is used from a thread of its own, so that a busy node (every worker
        thread detecting) still renews in time; and the cameras are stopped when their
        renewal is due however long the database takes to answer.
        """
        lease = self.leases.config.lease_s
        period = lease / 3
        valid_until = time.monotonic()  # until the first renewal: nothing held
        failing = False
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="leases") as database:
            self._database = database
            while not stop.is_set():
                started = time.monotonic()
                renewal = loop.run_in_executor(database, self.leases.round, self._reports())
                if self._tasks:
                    timeout = max(0.0, valid_until - started)
                    done, _ = await asyncio.wait({renewal}, timeout=timeout)
                    if not done:  # the database is slow or gone: stop reading first
                        await self._fence(time.monotonic() - valid_until + lease - period)
                try:
                    result = await renewal
                except StoreError as error:
                    if not failing:
                        logger.error("cluster: cannot renew the leases: %s", error)
                    failing = True
                    if self._tasks and time.monotonic() >= valid_until:
                        await self._fence(time.monotonic() - valid_until + lease - period)
                else:
                    if failing:
                        logger.info("cluster: leases renewed again")
                    failing = False
                    valid_until = started + lease - period
                    await self._apply(result)
                wait = max(0.0, period - (time.monotonic() - started))
                if self._tasks:  # wake up in time to stop the cameras (fencing)
                    wait = min(wait, max(0.0, valid_until - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
            await self._stop(set(self._tasks))
            try:
                await loop.run_in_executor(database, self.leases.leave)
            except StoreError as error:
                logger.warning(
                    "cluster: leases not released (they expire by themselves): %s", error
                )
        return self.stats

    async def _fence(self, unrenewed_s: float) -> None:
        """Stop every camera: their leases were not renewed in time."""
        logger.error(
            "cluster: leases not renewed for %.1f s: stopping %s before another node may take them",
            unrenewed_s,
            ", ".join(sorted(self._tasks)),
        )
        await self._stop(set(self._tasks))

    def _reports(self) -> dict[str, Report]:
        snapshots = self.running.snapshots()
        return {s.name: Report(s.state, s.last_frame_at, s.error) for s in snapshots}

    async def _apply(self, result: Round) -> None:
        lost = set(self._tasks) - result.held
        if lost:
            logger.warning("cluster: lost the lease of %s: stopping it", ", ".join(sorted(lost)))
            await self._stop(lost)
        for camera in sorted(result.held - set(self._tasks) - self._finished):
            if camera in self.cameras:
                await self._start(self.cameras[camera])
        handed = result.release & set(self._tasks)
        if handed:
            logger.info("cluster: handing %s over", ", ".join(sorted(handed)))
            await self._stop(handed)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._database, self.leases.release, handed)
        self._finished &= result.held

    async def _start(self, camera: CameraConfig) -> None:
        seen: Mapping[str, datetime] = {}
        try:  # what the camera's last node saw, so as not to repeat it
            loop = asyncio.get_running_loop()
            window = camera.dedup.window_s
            seen = await loop.run_in_executor(self._database, self.recent, camera.name, window)
        except StoreError as error:
            logger.warning("cluster: %s starts without its recent plates: %s", camera.name, error)
        pipeline = self.build(camera, seen)
        self.running.add(pipeline)
        self._tasks[camera.name] = asyncio.create_task(pipeline.run(), name=f"camera-{camera.name}")
        self._tasks[camera.name].add_done_callback(lambda _: self._ended(camera.name, pipeline))
        logger.info("cluster: %s reads camera %s", self.leases.node, camera.name)

    def _ended(self, name: str, pipeline: CameraRun) -> None:
        """A pipeline ended (stopped, or its file is done): keep its counters."""
        task = self._tasks.pop(name, None)
        self.running.remove(pipeline)
        if task is not None and not task.cancelled() and task.exception() is None:
            self.stats.setdefault(name, CameraStats()).add(task.result())
            if not pipeline.stop.is_set():
                self._finished.add(name)  # a file read to its end: not started again

    async def _stop(self, cameras: Collection[str]) -> None:
        """Stop reading ``cameras``; return once their open tracks are events."""
        tasks = [self._tasks[c] for c in cameras if c in self._tasks]
        self.running.stop(list(cameras))
        await asyncio.gather(*tasks, return_exceptions=True)
