"""A daemon's delivery side as one: its outbox file, the senders of its targets and, in a
cluster, the shared webhook outbox and the forwarder that fills it.

Alone, every target's sender works on the node's outbox file. In a cluster
(:mod:`streamer.delivery.cluster_outbox`), the webhooks' senders work on the shared
outbox and the file's webhook deliveries are forwarded there; the MQTT broker stays with
the node's file, since each node keeps its own broker session and retained state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamer.delivery.cluster_outbox import ClusterOutbox, Forwarder
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import PENDING, DeliveryQueue, DeliveryState
from streamer.delivery.senders import OutboxSender
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)


@dataclass
class Deliveries:
    """Where events wait for their targets, and who delivers them.

    Example:
        >>> deliveries = Deliveries(Outbox(config.outbox, config.delivery_targets))
        >>> deliveries.senders.append(WebhookSender(hook, deliveries.webhooks, session))
        >>> deliveries.wake(["receiver"])  # from a pipeline thread, after a commit
    """

    outbox: Outbox
    #: The cluster's shared webhook outbox (``cluster.database``), else ``None``.
    shared: ClusterOutbox | None = None
    #: One per target: each webhook, then the MQTT broker.
    senders: list[OutboxSender] = field(default_factory=list)
    forwarder: Forwarder | None = field(init=False, default=None)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)

    @property
    def webhooks(self) -> DeliveryQueue:
        """What the webhooks' senders deliver from."""
        return self.shared if self.shared is not None else self.outbox

    def start(self, webhooks: Sequence[str]) -> Forwarder | None:
        """Bind to the running loop; in a cluster, the forwarder of the ``webhooks``'
        deliveries (to run until the daemon stops)."""
        self._loop = asyncio.get_running_loop()
        if self.shared is not None and webhooks:
            self.forwarder = Forwarder(self.outbox, self.shared, webhooks, self._wake_senders)
        return self.forwarder

    def wake(self, targets: Sequence[str]) -> None:
        """From a pipeline thread: new deliveries wait in the outbox file for ``targets``."""
        if self._loop is None:
            return
        forwarded = self.forwarder.targets if self.forwarder is not None else ()
        if self.forwarder is not None and any(t in forwarded for t in targets):
            self._loop.call_soon_threadsafe(self.forwarder.wakeup.set)
        self._loop.call_soon_threadsafe(
            self._wake_senders, [t for t in targets if t not in forwarded]
        )

    def _wake_senders(self, targets: Sequence[str]) -> None:
        for sender in self.senders:
            if sender.label in targets:
                sender.wakeup.set()

    async def drain(self, timeout_s: float) -> None:
        """Give pending deliveries up to ``timeout_s`` to go out (in a cluster: to reach
        the shared outbox, and this node's senders to finish what they can); the rest go
        out on the next start, or from another node."""
        waiting: list[OutboxSender | Forwarder] = [*self.senders]
        if self.forwarder is not None:
            waiting.append(self.forwarder)
        if not waiting:
            return
        for sender in waiting:
            sender.idle.clear()
            sender.wakeup.set()
        try:
            await asyncio.wait_for(asyncio.gather(*(s.idle.wait() for s in waiting)), timeout_s)
        except TimeoutError:
            pending = sum(n for (_, state), n in self.counts().items() if state == PENDING)
            where = "from another node or " if self.shared is not None else ""
            logger.warning(
                "%d deliveries still pending; they go out %son the next start", pending, where
            )

    def purge_delivered(self) -> None:
        """Retention of delivered entries (in a cluster, of the shared outbox's too)."""
        self.outbox.purge_delivered()
        if self.shared is not None:
            try:
                self.shared.purge_delivered()
            except StoreError as error:
                logger.warning("cluster outbox: delivered entries not purged: %s", error)

    def counts(self) -> dict[tuple[str, DeliveryState], int]:
        """Deliveries per (target, state): this node's file, plus, in a cluster, the shared
        outbox (its webhooks' figures cover the whole cluster) when it answers."""
        counts = self.outbox.counts()
        if self.shared is None:
            return counts
        # A forwarded delivery counts in the shared outbox; in the file, only those waiting.
        forwarded = set(self.forwarder.targets if self.forwarder is not None else ())
        counts = {k: n for k, n in counts.items() if k[0] not in forwarded or k[1] == PENDING}
        try:
            for key, count in self.shared.counts().items():
                counts[key] = counts.get(key, 0) + count
        except StoreError:
            pass  # the database is away: this node's figures only
        return counts

    @property
    def dropped_full(self) -> int:
        """Pending deliveries this node moved to the dead letters for want of room."""
        return self.outbox.dropped_full + (self.shared.dropped_full if self.shared else 0)
