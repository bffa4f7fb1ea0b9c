"""How a daemon stands among others: on its own (:class:`Standalone`), or as one node of a
cluster sharing a PostgreSQL database (:class:`Cluster`).

The choice is made once, by :func:`open_deployment`, and everything that differs between
the two is asked of the :class:`Deployment` (as uvicorn's ``Config.load()`` picks a
lifespan, with ``LifespanOff`` for none): where the dues and lists live, where
``/api/events`` reads, who runs the cameras, where webhook deliveries wait, what
``/api/cluster`` shows. Nothing else tests which one it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from streamer.cameras import CameraRunner, Cameras, LocalRunner, PipelineFactory
from streamer.cluster.database import PostgresDatabase
from streamer.cluster.history import ClusterHistory
from streamer.cluster.leases import Leases
from streamer.cluster.outbox import ClusterOutbox, Forwarder
from streamer.cluster.runner import ClusterRunner
from streamer.config import CameraConfig, ClusterConfig, Config, mask_url
from streamer.delivery.deliveries import NoRelay, Relay
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import DeliveryQueue
from streamer.delivery.senders import OutboxSender
from streamer.delivery.sinks import Sink
from streamer.stores.database import PLATE_PRAGMAS, Database, SqliteDatabase
from streamer.stores.history import EventHistory, EventQuery
from streamer.stores.records import StoreError

#: A record of an event, passed on as it arrives (from another thread).
Deliver = Callable[[dict[str, Any]], None]


class NotAClusterError(StoreError):
    """Asked for the cluster of a daemon on its own."""


class Deployment(Protocol):
    """What differs between a daemon on its own and a node of a cluster."""

    #: Where the dues and the plate lists live.
    database: Database
    #: This node's name (``None`` on its own).
    node: str | None

    def events(self, local: EventHistory) -> EventQuery:
        """Where ``/api/events`` reads, given this daemon's recent events."""
        ...

    def sinks(self) -> list[Sink]:
        """Where events go beside the events log, the rules and the recent history."""
        ...

    def webhook_queue(self, outbox: Outbox) -> DeliveryQueue:
        """Where the webhooks' senders take their deliveries from."""
        ...

    def relay(self, outbox: Outbox, webhooks: Sequence[OutboxSender]) -> Relay:
        """What moves the webhooks' deliveries from the outbox file to their queue."""
        ...

    def runner(
        self, cameras: Sequence[CameraConfig], build: PipelineFactory, running: Cameras
    ) -> CameraRunner:
        """Who runs ``cameras``: here, every one; in a cluster, this node's share."""
        ...

    def follow(self, deliver: Deliver, stop: threading.Event) -> None:
        """Pass the events other nodes write to ``deliver`` until ``stop`` is set (on a
        thread of its own; on its own, it returns at once)."""
        ...

    def overview(self) -> dict[str, Any]:
        """The cluster as ``/api/cluster`` shows it.

        Raises:
            NotAClusterError: on its own.
            StoreError: when the database cannot be reached.
        """
        ...

    def others(self, local: set[str]) -> list[dict[str, Any]]:
        """The cameras not in ``local``, as the nodes reading them report them (none on
        its own).

        Raises:
            StoreError: when the database cannot be reached.
        """
        ...

    def close(self) -> None:
        """Let go of the database."""
        ...


class Standalone:
    """A daemon on its own: its stores in the SQLite file of ``dues.database``, every
    camera read here, every delivery from its outbox file."""

    node: str | None = None

    def __init__(self, config: Config) -> None:
        self.database: Database = SqliteDatabase(config.dues.database, pragmas=PLATE_PRAGMAS)

    def events(self, local: EventHistory) -> EventQuery:
        """This daemon's recent events."""
        return local

    def sinks(self) -> list[Sink]:
        """None."""
        return []

    def webhook_queue(self, outbox: Outbox) -> DeliveryQueue:
        """The outbox file."""
        return outbox

    def relay(self, outbox: Outbox, webhooks: Sequence[OutboxSender]) -> Relay:
        """None: deliveries stay in the file."""
        return NoRelay()

    def runner(
        self, cameras: Sequence[CameraConfig], build: PipelineFactory, running: Cameras
    ) -> CameraRunner:
        """Every camera, here."""
        return LocalRunner(cameras, build, running)

    def follow(self, deliver: Deliver, stop: threading.Event) -> None:
        """No other node."""

    def overview(self) -> dict[str, Any]:
        """Raises :class:`NotAClusterError`."""
        raise NotAClusterError("not a cluster (cluster.database is not set)")

    def others(self, local: set[str]) -> list[dict[str, Any]]:
        """None: every camera is read here."""
        return []

    def close(self) -> None:
        """Nothing held open."""


class Cluster:
    """A node of a cluster: its stores, events, webhook outbox and the cameras' leases in
    the PostgreSQL database of ``cluster.database``.

    Raises:
        StoreError: when the database cannot be reached or migrated.
    """

    def __init__(self, config: Config, cluster: ClusterConfig) -> None:
        self.config = config
        self.cluster = cluster
        self.node: str | None = cluster.node
        self.postgres = PostgresDatabase(cluster.database)
        self.database: Database = self.postgres
        recordings = config.recordings
        self.history = ClusterHistory(
            self.postgres, cluster.node, recordings.directory, recordings.max_age_days
        )
        self.leases = Leases(self.postgres, cluster, [])
        self.outbox = ClusterOutbox(self.postgres, cluster.node, config.outbox)

    def events(self, local: EventHistory) -> EventQuery:
        """The events of every node."""
        return self.history

    def sinks(self) -> list[Sink]:
        """The cluster's events table."""
        return [self.history]

    def webhook_queue(self, outbox: Outbox) -> DeliveryQueue:
        """The cluster's shared webhook outbox."""
        return self.outbox

    def relay(self, outbox: Outbox, webhooks: Sequence[OutboxSender]) -> Relay:
        """The forwarder from the node's file to the shared outbox."""
        return Forwarder(outbox, self.outbox, webhooks)

    def runner(
        self, cameras: Sequence[CameraConfig], build: PipelineFactory, running: Cameras
    ) -> CameraRunner:
        """This node's share of ``cameras``, as the leases decide."""
        leases = Leases(self.postgres, self.cluster, [camera.name for camera in cameras])
        named = {camera.name: camera for camera in cameras}
        return ClusterRunner(leases, named, build, running, self.history.recent)

    def follow(self, deliver: Deliver, stop: threading.Event) -> None:
        """The other nodes' events, as they write them."""
        self.history.listen(deliver, stop)

    def overview(self) -> dict[str, Any]:
        """Each node with its heartbeat and cameras, each camera with its node."""
        return self.leases.overview()

    def others(self, local: set[str]) -> list[dict[str, Any]]:
        """Every enabled camera not read here, with the node holding it (or unassigned)."""
        held = self.leases.overview()["cameras"]
        return [
            {
                "name": camera.name,
                "source": mask_url(camera.source),
                **held.get(camera.name, {"node": None, "status": "unassigned"}),
            }
            for camera in self.config.cameras
            if camera.enabled and camera.name not in local
        ]

    def close(self) -> None:
        """Close the idle connections."""
        self.postgres.close()


def open_deployment(config: Config) -> Deployment:
    """A :class:`Cluster` node with ``cluster`` set, else :class:`Standalone`.

    Raises:
        StoreError: when the cluster's database cannot be reached or migrated.
    """
    if config.cluster is not None:
        return Cluster(config, config.cluster)
    return Standalone(config)
