"""What a sender takes its deliveries from: a node's outbox file
(:class:`~streamer.delivery.outbox.Outbox`) or, in a cluster, the outbox every node shares
(:class:`~streamer.cluster.outbox.ClusterOutbox`). Both keep one row per event and
target, and give a target's deliveries oldest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class DeliveryState(StrEnum):
    """Where a delivery stands: waiting (and retried), delivered (2xx), or refused for
    good (the dead letters, which ``streamer outbox retry`` sends again)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


PENDING, DELIVERED, DEAD = DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.DEAD


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one target (a webhook, or the MQTT broker)."""

    id: int
    target: str
    state: DeliveryState
    attempts: int
    #: When it may be attempted (Unix time, this machine's clock).
    next_at: float
    last_error: str | None
    event_id: str
    created_at: float
    payload: dict[str, Any]
    #: Unique per event and phase (``<event_id>:<phase>``): the request's Idempotency-Key.
    key: str
    #: Why its stored payload cannot be sent (``payload`` is then empty); a sender moves
    #: such a delivery to the dead letters instead of attempting it.
    unreadable: str | None = None


def decode_payload(text: object) -> tuple[dict[str, Any], str | None]:
    """A stored event payload as the dict a sender sends, or ``({}, why)`` when it cannot
    be one (damaged or edited by hand): not JSON, or not an event.

    Example:
        >>> decode_payload('{"type": "plate", "camera": "gate"}')[1] is None
        True
        >>> decode_payload("{not json")[1]
        'payload is not JSON (Expecting property name enclosed in double quotes at 1)'
    """
    try:
        payload = json.loads(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError) as error:
        reason = getattr(error, "msg", None) or type(error).__name__
        where = f" at {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
        return {}, f"payload is not JSON ({reason}{where})"
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(name), str) for name in ("type", "camera")
    ):
        return {}, "payload is not an event (a JSON object with a type and a camera)"
    return payload, None


class DeliveryQueue(Protocol):
    """Deliveries per target, as a sender and ``streamer outbox`` use them."""

    #: Seconds between looks for deliveries nobody woke this node for (``None``: only
    #: when woken, as a node's own file has no other writer).
    poll_s: float | None
    #: Pending deliveries moved to the dead letters because the queue was full.
    dropped_full: int

    def next_due(self, target: str) -> Delivery | None:
        """The oldest pending delivery of ``target`` (due or not), or ``None``."""
        ...

    def claim(self, delivery_id: int, seconds: float) -> bool:
        """Take a due delivery for one attempt of at most ``seconds``; ``False`` when it
        is not due, no longer the oldest pending, or another node holds it."""
        ...

    def delivered(self, delivery_id: int) -> None:
        """Record a successful delivery."""
        ...

    def retry_later(self, delivery_id: int, error: str, next_at: float) -> None:
        """Record a failed attempt to be retried at ``next_at`` (Unix time)."""
        ...

    def dead(self, delivery_id: int, error: str) -> None:
        """Move a delivery to the dead letters (its target refused it for good)."""
        ...

    def list(self, state: DeliveryState | None = None, limit: int = 100) -> list[Delivery]:
        """Deliveries, newest first, optionally only those in ``state``."""
        ...

    def retry(self, delivery_id: int | None = None) -> int:
        """Make dead deliveries pending again (one, or all); returns how many."""
        ...

    def purge(self, state: DeliveryState) -> int:
        """Delete deliveries in ``state``; returns how many."""
        ...

    def purge_delivered(self) -> int:
        """Delete delivered entries older than ``outbox.keep_delivered_s``."""
        ...

    def counts(self) -> dict[tuple[str, DeliveryState], int]:
        """Deliveries per (target, state)."""
        ...
