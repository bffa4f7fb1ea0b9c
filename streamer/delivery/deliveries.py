"""A daemon's delivery side as one: its outbox file, the senders of its targets, and the
relay that moves webhook deliveries elsewhere (a cluster's shared outbox,
:class:`~streamer.cluster.outbox.Forwarder`; alone, :class:`NoRelay`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import PENDING, DeliveryState
from streamer.delivery.senders import OutboxSender

logger = logging.getLogger(__name__)

#: Deliveries per (target, state).
Counts = dict[tuple[str, DeliveryState], int]


class Relay(Protocol):
    """Moves the deliveries of some targets out of the node's outbox file."""

    @property
    def targets(self) -> Sequence[str]:
        """The targets whose deliveries it moves."""
        ...

    @property
    def where(self) -> str | None:
        """Where the deliveries go, for the log (``None``: nowhere else)."""
        ...

    @property
    def dropped_full(self) -> int:
        """Pending deliveries moved to the dead letters there for want of room."""
        ...

    async def run(self) -> None:
        """Move deliveries as they come, until cancelled."""
        ...

    def wake(self) -> None:
        """New deliveries wait in the file (on the loop)."""
        ...

    async def settle(self) -> None:
        """Return once nothing waits in the file for it."""
        ...

    def counts(self, file: Counts) -> Counts:
        """The deliveries per target and state, given the file's."""
        ...

    def purge_delivered(self) -> None:
        """Retention of the delivered entries where it moved them."""
        ...


class NoRelay:
    """A daemon on its own: every delivery stays in its outbox file."""

    targets: Sequence[str] = ()
    where: str | None = None
    dropped_full = 0

    async def run(self) -> None:
        """Nothing to move."""

    def wake(self) -> None:
        """Nothing to move."""

    async def settle(self) -> None:
        """Nothing waits."""

    def counts(self, file: Counts) -> Counts:
        """The file's counts."""
        return file

    def purge_delivered(self) -> None:
        """Nothing kept elsewhere."""


class Deliveries:
    """Where events wait for their targets, and who delivers them.

    Example:
        >>> deliveries = Deliveries(outbox, [webhook_sender, mqtt_sender], NoRelay(), loop)
        >>> deliveries.wake(["receiver"])  # from a pipeline thread, after a commit
    """

    def __init__(
        self,
        outbox: Outbox,
        senders: Sequence[OutboxSender],
        relay: Relay,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.outbox = outbox
        #: One per target: each webhook, then the MQTT broker.
        self.senders = list(senders)
        self.relay = relay
        self.loop = loop

    def wake(self, targets: Sequence[str]) -> None:
        """From a pipeline thread: new deliveries wait in the outbox file for ``targets``."""
        if any(target in self.relay.targets for target in targets):
            self.loop.call_soon_threadsafe(self.relay.wake)
        for sender in self.senders:
            if sender.label in targets and sender.label not in self.relay.targets:
                self.loop.call_soon_threadsafe(sender.wakeup.set)

    async def drain(self, timeout_s: float) -> None:
        """Give pending deliveries up to ``timeout_s`` to go out (the relay's to leave the
        file, the senders' to be delivered); the rest go out on the next start (or, in a
        cluster, from another node)."""
        waiting = [self.relay.settle(), *(sender.settle() for sender in self.senders)]
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), timeout_s)
        except TimeoutError:
            pending = sum(n for (_, state), n in self.counts().items() if state == PENDING)
            where = f"from {self.relay.where} or " if self.relay.where else ""
            logger.warning(
                "%d deliveries still pending; they go out %son the next start", pending, where
            )

    def purge_delivered(self) -> None:
        """Retention of delivered entries, in the file and where the relay moved them."""
        self.outbox.purge_delivered()
        self.relay.purge_delivered()

    def counts(self) -> Counts:
        """Deliveries per (target, state)."""
        return self.relay.counts(self.outbox.counts())

    @property
    def dropped_full(self) -> int:
        """Pending deliveries moved to the dead letters for want of room."""
        return self.outbox.dropped_full + self.relay.dropped_full
