"""What every outbox target's sender shares: the loop that takes its pending deliveries
oldest first, and what it does with each outcome.

A sender holds back its whole target while a delivery waits to be retried, so a target
that is down is not hammered and its events arrive in order; senders are independent, so
a slow target delays nobody else. :class:`~streamer.delivery.webhooks.WebhookSender` and
:class:`~streamer.delivery.mqtt.MqttSender` differ only in how they attempt a delivery.
In a cluster, every node runs a sender per webhook on the shared outbox, and the claims
decide which node attempts each delivery (:mod:`streamer.cluster.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from streamer.config import mask_url
from streamer.delivery.queue import Delivery, DeliveryQueue
from streamer.retry import Outage, backoff
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

#: Seconds before looking again at a delivery another node claimed first.
CLAIM_RETRY_S = 0.2


@dataclass
class SenderStats:
    """Counters of one target, for metrics and the closing summary."""

    delivered: int = 0
    failed_attempts: int = 0
    dead: int = 0


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: delivered, to be retried (after ``retry_after`` when the
    target said so), or refused for good (``permanent``)."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False


class OutboxSender(ABC):
    """Delivers one target's outbox entries for as long as the daemon runs.

    Subclasses attempt one delivery in :meth:`post`, and may wait in :meth:`ready` until
    an attempt makes sense. Each attempt is claimed first for :attr:`claim_s` seconds (in
    a cluster's shared outbox, so that no other node attempts it meanwhile). When the
    queue cannot be reached, one line says so and the sender tries again; an outcome it
    could not record is recorded before anything else is attempted, so a delivery that
    went out is not sent again for want of its record.
    """

    #: How long one attempt may hold its delivery.
    claim_s: float = 60.0

    def __init__(
        self, label: str, outbox: DeliveryQueue, retry_initial_s: float, retry_max_s: float
    ) -> None:
        self.label = label
        self.outbox = outbox
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.stats = SenderStats()
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self._failures = 0
        self._rng = random.Random()
        self._unrecorded: list[Callable[[], None]] = []
        self._outage = Outage(logger)

    @property
    def name(self) -> str:
        """The target in log messages."""
        return self.label

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            # Cleared before looking, so that a wake-up while the outbox is read (an event
            # committed meanwhile) is not lost.
            self.wakeup.clear()
            try:
                await self._next()
            except StoreError as error:
                self._outage.failed("%s: deliveries wait: %s", self.name, error)
                await asyncio.sleep(self.outbox.poll_s or self.retry_initial_s)
                continue
            self._outage.ended("%s: the outbox answers again", self.name)

    async def _next(self) -> None:
        """Record what is unrecorded, then attempt the next due delivery, or wait."""
        await self._flush()
        delivery = await asyncio.to_thread(self.outbox.next_due, self.label)
        if delivery is None:
            self.idle.set()
            await self._sleep(self.outbox.poll_s)
            return
        self.idle.clear()
        if delivery.unreadable:
            await self._bury(delivery)
            return
        wait = delivery.next_at - time.time()
        if wait > 0:
            await self._sleep(wait if self.outbox.poll_s is None else min(wait, self.outbox.poll_s))
            return
        await self.ready()
        if await asyncio.to_thread(self.outbox.claim, delivery.id, self.claim_s):
            await self._attempt(delivery)
        else:  # another node is on it, or was just now: look again shortly
            await asyncio.sleep(CLAIM_RETRY_S)

    async def settle(self) -> None:
        """Return once nothing is due: look again now, and wait until the queue is idle."""
        self.idle.clear()
        self.wakeup.set()
        await self.idle.wait()

    async def ready(self) -> None:  # noqa: B027 (a hook: most targets need no wait)
        """Return once an attempt can be made (at once, unless a subclass knows better)."""

    @abstractmethod
    async def post(self, delivery: Delivery) -> Outcome:
        """One attempt at ``delivery``."""

    def retry_note(self, wait: float) -> str:
        """When a failed delivery is tried again, for the log."""
        return f"retry in {wait:.1f} s"

    async def _sleep(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), seconds)

    async def _attempt(self, delivery: Delivery) -> None:
        outcome = await self.post(delivery)
        if outcome.ok:
            self._failures = 0
            self.stats.delivered += 1
            await self._record(self.outbox.delivered, delivery.id)
            return
        error = mask_url(outcome.error or "failed")  # logged, and kept as the last error
        if outcome.permanent:
            self.stats.dead += 1
            logger.error(
                "%s: event %s refused for good (%s): moved to dead letters",
                self.name,
                delivery.event_id,
                error,
            )
            await self._record(self.outbox.dead, delivery.id, error)
            return
        self._failures += 1
        self.stats.failed_attempts += 1
        if outcome.retry_after is not None:
            wait = outcome.retry_after
        else:
            wait = backoff(self._failures, self.retry_initial_s, self.retry_max_s, self._rng)
        wait = min(wait, self.retry_max_s)
        logger.warning(
            "%s: event %s not delivered (%s); %s",
            self.name,
            delivery.event_id,
            error,
            self.retry_note(wait),
        )
        await self._record(self.outbox.retry_later, delivery.id, error, time.time() + wait)

    async def _bury(self, delivery: Delivery) -> None:
        """Move a delivery whose stored event cannot be read (a damaged or hand-edited
        row) to the dead letters, in one line; the target's others go on."""
        self.stats.dead += 1
        logger.error(
            "%s: delivery %d (event %s) cannot be sent: %s; moved to the dead letters "
            "(`streamer outbox list --state dead` shows it)",
            self.name,
            delivery.id,
            delivery.key,
            delivery.unreadable,
        )
        await self._record(self.outbox.dead, delivery.id, delivery.unreadable)

    async def _record(self, outcome: Callable[..., None], *args: object) -> None:
        """Record an attempt's outcome; kept to be recorded first if the queue cannot be
        reached (see :meth:`_next`)."""
        self._unrecorded.append(functools.partial(outcome, *args))
        await self._flush()

    async def _flush(self) -> None:
        while self._unrecorded:
            await asyncio.to_thread(self._unrecorded[0])
            self._unrecorded.pop(0)
