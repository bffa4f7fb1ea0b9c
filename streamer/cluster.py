"""A cluster of daemons on one PostgreSQL database: which node reads which camera.

Every node reads the same camera list. A camera is read by the node that holds its lease
(a row of ``leases``, with its expiry in the database's clock). Each node, every third of
``cluster.lease_s``:

1. writes its heartbeat, and renews its leases (with each camera's status, for the
   cluster's ``/api/cameras``);
2. looks at the live nodes (a heartbeat within ``lease_s``) and what each holds, and
   decides its share (:func:`share`): when a node joins, the busiest node hands one camera
   over per round until the counts differ by at most one, so as few cameras move as
   possible; a node never holds more than ``cluster.max_cameras``;
3. claims free cameras (never leased, released, or expired) up to its share.

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
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamer.config import CameraConfig, ClusterConfig
from streamer.events import iso
from streamer.pipeline import CameraPipeline, CameraStats
from streamer.stores.postgres import PostgresDatabase
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

#: The counters of a camera's runs on this node that are added up.
SUMMED = (
    *("frames", "detected", "still", "skipped"),
    *("tracks", "events", "dues_events", "merged", "unread"),
)


def share(
    total: int, counts: Mapping[str, int], capacity: Mapping[str, int], me: str
) -> tuple[int, int]:
    """How many cameras node ``me`` hands over, and how many more it may claim, given the
    cameras of ``total`` each live node holds (``counts``) and can hold (``capacity``).

    Each node aims at ``total / nodes``, rounded up, within its capacity. While another
    node holds less than the share rounded down, the busiest node (ties: the first name)
    hands one over, and the others claim only up to the share rounded down: each round
    moves at most one camera per joining node.

    Example:
        >>> share(6, {"a": 3, "b": 3, "c": 0}, {"a": 13, "b": 13, "c": 13}, "a")
        (1, 0)
    """
    live = len(counts)
    low, high = total // live, -(-total // live)
    mine = counts[me]
    limit = min(capacity[me], high)
    if mine > limit:
        return mine - limit, 0
    needy = [n for n in counts if n != me and counts[n] < min(low, capacity[n])]
    if not needy:
        return 0, limit - mine
    busiest = min(counts, key=lambda n: (-counts[n], n))
    if busiest == me and mine > low:
        return 1, 0
    return 0, max(0, min(low, capacity[me]) - mine)


@dataclass(frozen=True)
class Report:
    """What the holder of a camera's lease says of it at each renewal."""

    status: str
    last_frame_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class Round:
    """The outcome of one renewal round: the cameras this node holds, and which of them
    to hand over (stop, then :meth:`Leases.release`)."""

    held: frozenset[str]
    release: frozenset[str] = frozenset()


class Leases:
    """The cluster's nodes and leases as one node uses them (blocking: run in a thread)."""

    def __init__(
        self, database: PostgresDatabase, config: ClusterConfig, cameras: Sequence[str]
    ) -> None:
        self.database = database
        self.config = config
        self.node = config.node
        self.cameras = list(cameras)

    def round(self, reports: Mapping[str, Report]) -> Round:
        """Heartbeat, renew, rebalance and claim, in one transaction.

        Raises:
            StoreError: when the database cannot be reached.
        """
        lease, node = self.config.lease_s, self.node
        with self.database.connect() as db:
            db.execute(
                "INSERT INTO nodes (name, started_at, heartbeat_at, capacity) "
                "VALUES (?, now(), now(), ?) ON CONFLICT (name) DO UPDATE SET "
                "heartbeat_at = now(), capacity = excluded.capacity",
                (node, self.config.max_cameras),
            )
            held = {
                camera
                for (camera,) in db.execute(
                    "UPDATE leases SET expires_at = now() + ? * interval '1 second' "
                    "WHERE node = ? AND expires_at > now() RETURNING camera",
                    (lease, node),
                ).fetchall()
            }
            for camera, report in reports.items():
                if camera in held:
                    db.execute(
                        "UPDATE leases SET status = ?, last_frame_at = ?, error = ? "
                        "WHERE camera = ? AND node = ?",
                        (report.status, report.last_frame_at, report.error, camera, node),
                    )
            rows = db.execute(
                "SELECT n.name, n.capacity, count(l.camera) FROM nodes n LEFT JOIN leases l "
                "ON l.node = n.name AND l.expires_at > now() "
                "WHERE n.heartbeat_at > now() - ? * interval '1 second' GROUP BY 1, 2",
                (lease,),
            ).fetchall()
            counts = {str(name): int(count) for name, _, count in rows}
            capacity = {str(name): int(cap) for name, cap, _ in rows}
            counts[node] = len(held)
            release, claim = share(len(self.cameras), counts, capacity, node)
            taken = {
                camera
                for (camera,) in db.execute(
                    "SELECT camera FROM leases WHERE expires_at > now()"
                ).fetchall()
            }
            free = sorted(
                (c for c in self.cameras if c not in taken),
                key=lambda c: zlib.crc32(f"{node}:{c}".encode()),  # nodes try different ones
            )
            for camera in free[:claim]:
                won = db.execute(
                    "INSERT INTO leases (camera, node, acquired_at, expires_at) "
                    "VALUES (?, ?, now(), now() + ? * interval '1 second') "
                    "ON CONFLICT (camera) DO UPDATE SET node = excluded.node, "
                    "acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, "
                    "status = 'starting', last_frame_at = NULL, error = NULL "
                    "WHERE leases.expires_at <= now() RETURNING camera",
                    (camera, node, lease),
                ).fetchone()
                if won is not None:
                    held.add(camera)
        # Hand over the camera held the shortest (the one that moved last settles last).
        handed = sorted(held, key=lambda c: zlib.crc32(f"{node}:{c}".encode()))[:release]
        return Round(frozenset(held), frozenset(handed))

    def release(self, cameras: Collection[str]) -> None:
        """Give the leases of ``cameras`` up now, so that another node takes them at once."""
        with self.database.connect() as db:
            for camera in cameras:
                db.execute("DELETE FROM leases WHERE camera = ? AND node = ?", (camera, self.node))

    def leave(self) -> None:
        """Give up every lease and leave the cluster (a stop)."""
        with self.database.connect() as db:
            db.execute("DELETE FROM leases WHERE node = ?", (self.node,))
            db.execute("DELETE FROM nodes WHERE name = ?", (self.node,))

    def overview(self) -> dict[str, Any]:
        """The cluster as ``/api/cluster`` shows it: each node with its heartbeat and
        cameras, and each camera with the node holding it."""
        with self.database.connect() as db:
            nodes = db.execute(
                "SELECT name, started_at, heartbeat_at, capacity, "
                "heartbeat_at > now() - ? * interval '1 second' FROM nodes ORDER BY name",
                (self.config.lease_s,),
            ).fetchall()
            leases = db.execute(
                "SELECT camera, node, status, last_frame_at, error FROM leases "
                "WHERE expires_at > now() ORDER BY camera"
            ).fetchall()
        cameras = {
            str(camera): {
                "node": str(holder),
                "status": str(status),
                "last_frame_at": iso(last) if last else None,
                "error": error,
            }
            for camera, holder, status, last, error in leases
        }
        return {
            "node": self.node,
            "nodes": [
                {
                    "name": str(name),
                    "alive": bool(alive),
                    "started_at": iso(started),
                    "last_heartbeat": iso(beat),
                    "max_cameras": int(capacity),
                    "cameras": sorted(c for c, held in cameras.items() if held["node"] == name),
                }
                for name, started, beat, capacity, alive in nodes
            ],
            "cameras": cameras,
        }


@dataclass
class ClusterRunner:
    """Runs this node's share of the cameras for as long as the daemon runs: a pipeline for
    each camera it gets, stopped when it must hand the camera over or cannot renew."""

    leases: Leases
    cameras: Mapping[str, CameraConfig]
    new_pipeline: Callable[[CameraConfig], CameraPipeline]
    #: The running pipelines (the service's list, which metrics and the API read).
    pipelines: list[CameraPipeline]
    stats: dict[str, CameraStats] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[CameraStats]] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    _database: ThreadPoolExecutor | None = None
    #: The plates a camera saw lately, from the cluster's events (see
    #: :meth:`~streamer.stores.shared_history.SharedHistory.recent`).
    recent: Callable[[str, float], Mapping[str, datetime]] | None = None

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
        snapshots = [pipeline.snapshot() for pipeline in self.pipelines]
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
        pipeline = self.new_pipeline(camera)
        if self.recent is not None:  # what the camera's last node saw, so as not to repeat it
            loop = asyncio.get_running_loop()
            try:
                seen = await loop.run_in_executor(
                    self._database, self.recent, camera.name, camera.dedup.window_s
                )
                pipeline.reporter.dedup.seed(seen)
            except StoreError as error:
                logger.warning(
                    "cluster: %s starts without its recent plates: %s", camera.name, error
                )
        self.pipelines.append(pipeline)
        self._tasks[camera.name] = asyncio.create_task(pipeline.run(), name=f"camera-{camera.name}")
        self._tasks[camera.name].add_done_callback(lambda _: self._ended(camera.name, pipeline))
        logger.info("cluster: %s reads camera %s", self.leases.node, camera.name)

    def _ended(self, name: str, pipeline: CameraPipeline) -> None:
        """A pipeline ended (stopped, or its file is done): keep its counters."""
        task = self._tasks.pop(name, None)
        if pipeline in self.pipelines:
            self.pipelines.remove(pipeline)
        if task is not None and not task.cancelled() and task.exception() is None:
            ran = task.result()
            total = self.stats.setdefault(name, CameraStats())
            for key in (
                "frames",
                "detected",
                "still",
                "skipped",
                "tracks",
                "events",
                "dues_events",
                "merged",
                "unread",
            ):
                setattr(total, key, getattr(total, key) + getattr(ran, key))
            if not pipeline.stop.is_set():
                self._finished.add(name)  # a file read to its end: not started again

    async def _stop(self, cameras: Collection[str]) -> None:
        """Stop reading ``cameras``; return once their open tracks are events."""
        tasks = [self._tasks[c] for c in cameras if c in self._tasks]
        for pipeline in self.pipelines:
            if pipeline.camera.name in cameras:
                pipeline.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
