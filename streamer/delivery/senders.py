"""What every outbox target's sender shares: the loop that takes its pending deliveries
oldest first, and what it does with each outcome.

A sender holds back its whole target while a delivery waits to be retried, so a target
that is down is not hammered and its events arrive in order; senders are independent, so
a slow target delays nobody else. :class:`~streamer.delivery.webhooks.WebhookSender` and
:class:`~streamer.delivery.mqtt.MqttSender` differ only in how they attempt a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from streamer.delivery.outbox import Delivery, Outbox

logger = logging.getLogger(__name__)


def backoff(failures: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """The wait after ``failures`` failures in a row: doubling from ``initial_s`` up to
    ``max_s``, randomised by ±20% so that targets that failed together do not retry
    together."""
    doublings = float(2 ** max(0, failures - 1))
    return min(max_s, initial_s * doublings) * rng.uniform(0.8, 1.2)


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
    an attempt makes sense.
    """

    def __init__(
        self, label: str, outbox: Outbox, retry_initial_s: float, retry_max_s: float
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
            delivery = await asyncio.to_thread(self.outbox.next_due, self.label)
            if delivery is None:
                self.idle.set()
                await self._sleep(None)
                continue
            self.idle.clear()
            wait = delivery.next_at - time.time()
            if wait > 0:
                await self._sleep(wait)
                continue
            await self.ready()
            await self._attempt(delivery)

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
            await asyncio.to_thread(self.outbox.delivered, delivery.id)
            return
        error = outcome.error or "failed"
        if outcome.permanent:
            self.stats.dead += 1
            logger.error(
                "%s: event %s refused for good (%s): moved to dead letters",
                self.name,
                delivery.event_id,
                error,
            )
            await asyncio.to_thread(self.outbox.dead, delivery.id, error)
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
        await asyncio.to_thread(self.outbox.retry_later, delivery.id, error, time.time() + wait)
