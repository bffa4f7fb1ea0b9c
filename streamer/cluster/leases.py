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

What a node does with the cameras it holds (fencing, handing over):
:mod:`streamer.cluster.runner`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamer.cluster.database import PostgresDatabase
from streamer.config import ClusterConfig
from streamer.events import iso

logger = logging.getLogger(__name__)


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
