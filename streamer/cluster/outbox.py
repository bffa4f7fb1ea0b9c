"""The webhook outbox a cluster shares, in its PostgreSQL database (``cluster.database``).

Each node still commits its events to its own outbox file first (so that an event is
kept while the database is away); its :class:`Forwarder` moves the webhook deliveries
from there into the shared tables at once, or when the database is back. Every node runs
a sender per webhook on the shared outbox, so a node that dies strands nothing: the others
deliver its rows.

Ordering: a sender attempts only the oldest pending delivery of its webhook, claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` for one attempt (the webhook's ``timeout_s`` plus a
margin). While a node holds that claim no other node attempts that webhook; a claim of a
node that died lapses, and the next node sends the delivery again with the same
``Idempotency-Key``. Deliveries go out in the order they reached the shared outbox, so one
camera's events keep their order; events of cameras on different nodes interleave as they
were committed, and those a node kept through a database outage arrive after it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from streamer.cluster.database import PostgresDatabase
from streamer.config import OutboxConfig
from streamer.delivery.outbox import Outbox, OutboxError
from streamer.delivery.queue import (
    DEAD,
    DELIVERED,
    PENDING,
    Delivery,
    DeliveryState,
    decode_payload,
)
from streamer.delivery.senders import OutboxSender
from streamer.events import compact_json
from streamer.retry import Outage, backoff
from streamer.stores.database import Connection
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

#: Seconds between two looks for deliveries another node committed or left behind.
POLL_S = 2.0
#: Deliveries moved from a node's file to the shared outbox in one transaction.
BATCH = 100

_COLUMNS = (
    "d.id, d.target, d.state, d.attempts, d.last_error, e.event_id, e.created_at, e.payload, "
    "e.key, extract(epoch FROM greatest(d.next_at, CASE WHEN d.claimed_by <> ? "
    "AND d.claimed_until > now() THEN d.claimed_until END) - now())"
)


class ClusterOutbox:
    """The cluster's webhook deliveries: a :class:`~streamer.delivery.queue.DeliveryQueue`
    shared by every node.

    Example:
        >>> shared = ClusterOutbox(database, "node-1", config.outbox)
        >>> shared.ship(outbox.pending(["receiver"], 100))  # from this node's file
        >>> delivery = shared.next_due("receiver")          # the webhook's oldest
        >>> shared.claim(delivery.id, 15.0)                 # False if another node has it
    """

    poll_s: float | None = POLL_S

    def __init__(self, database: PostgresDatabase, node: str, config: OutboxConfig) -> None:
        self.database = database
        self.node = node
        self.config = config
        self.dropped_full = 0

    def ship(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries from a node's file, in one transaction; those added before (a
        crash came before the file recorded it) are not added twice.

        Raises:
            StoreError: when the database cannot be reached.
        """
        with self.database.connect() as db:
            for delivery in deliveries:
                db.execute(
                    "WITH event AS (INSERT INTO outbox_events "
                    "(key, event_id, node, payload, created_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id) "
                    "INSERT INTO outbox_deliveries (event, target, state, next_at, updated_at) "
                    "SELECT id, ?, ?, now(), now() FROM event ON CONFLICT (event, target) "
                    "DO NOTHING",
                    (
                        delivery.key,
                        delivery.event_id,
                        self.node,
                        compact_json(delivery.payload),
                        delivery.created_at,
                        delivery.target,
                        PENDING,
                    ),
                )
            for target in sorted({d.target for d in deliveries}):
                self._make_room(db, target)

    def _make_room(self, db: Connection, target: str) -> None:
        """Keep at most ``max_pending`` pending per webhook: the oldest go to the dead
        letters."""
        moved = db.execute(
            "UPDATE outbox_deliveries SET state = ?, last_error = 'outbox full', "
            "updated_at = now() WHERE id IN (SELECT id FROM outbox_deliveries "
            "WHERE target = ? AND state = ? ORDER BY id LIMIT greatest(0, (SELECT count(*) "
            "FROM outbox_deliveries WHERE target = ? AND state = ?) - ?))",
            (DEAD, target, PENDING, target, PENDING, self.config.max_pending),
        ).rowcount
        if moved > 0:
            self.dropped_full += moved
            logger.warning(
                "outbox full for target %s: %d oldest deliveries moved to the dead letters",
                target,
                moved,
            )

    def next_due(self, target: str) -> Delivery | None:
        """The oldest pending delivery of ``target``; its ``next_at`` is when it may be
        attempted: after its retry time and after another node's claim on it."""
        rows = self._select("d.target = ? AND d.state = ? ORDER BY d.id LIMIT 1", (target, PENDING))
        return rows[0] if rows else None

    def claim(self, delivery_id: int, seconds: float) -> bool:
        """Take the delivery for one attempt of at most ``seconds``, if it is due, still its
        webhook's oldest pending one, and nobody else's (a lapsed claim is nobody's)."""
        with self.database.connect() as db:
            claimed = db.execute(
                "UPDATE outbox_deliveries d SET claimed_by = ?, "
                "claimed_until = now() + ? * interval '1 second' WHERE d.id = (SELECT id "
                "FROM outbox_deliveries WHERE id = ? AND state = ? AND next_at <= now() "
                "AND (claimed_until IS NULL OR claimed_until <= now() OR claimed_by = ?) "
                "FOR UPDATE SKIP LOCKED) AND NOT EXISTS (SELECT 1 FROM outbox_deliveries o "
                "WHERE o.target = d.target AND o.state = ? AND o.id < d.id)",
                (self.node, seconds, delivery_id, PENDING, self.node, PENDING),
            ).rowcount
        return claimed == 1

    def delivered(self, delivery_id: int) -> None:
        """Record a successful delivery."""
        self._update(delivery_id, DELIVERED, None, 0.0)

    def retry_later(self, delivery_id: int, error: str, next_at: float) -> None:
        """Record a failed attempt, to be retried at ``next_at`` (this machine's clock)."""
        self._update(delivery_id, PENDING, error, max(0.0, next_at - time.time()))

    def dead(self, delivery_id: int, error: str) -> None:
        """Move a delivery to the dead letters."""
        self._update(delivery_id, DEAD, error, 0.0)

    def _update(
        self, delivery_id: int, state: DeliveryState, error: str | None, delay_s: float
    ) -> None:
        with self.database.connect() as db:
            db.execute(
                "UPDATE outbox_deliveries SET state = ?, attempts = attempts + 1, "
                "last_error = ?, next_at = now() + ? * interval '1 second', updated_at = now(), "
                "claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                (state, error, delay_s, delivery_id),
            )

    def _select(self, where: str, args: tuple[object, ...]) -> list[Delivery]:
        with self.database.connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM outbox_deliveries d JOIN outbox_events e "
                f"ON e.id = d.event WHERE {where}",
                (self.node, *args),
            ).fetchall()
        now = time.time()
        return [_delivery(row, now) for row in rows]

    def retry(self, delivery_id: int | None = None) -> int:
        """Make dead deliveries pending again (one, or all); returns how many."""
        with self.database.connect() as db:
            if delivery_id is None:
                return db.execute(
                    "UPDATE outbox_deliveries SET state = ?, next_at = now(), updated_at = now() "
                    "WHERE state = ?",
                    (PENDING, DEAD),
                ).rowcount
            return db.execute(
                "UPDATE outbox_deliveries SET state = ?, next_at = now(), updated_at = now() "
                "WHERE id = ? AND state <> ?",
                (PENDING, delivery_id, DELIVERED),
            ).rowcount

    def purge(self, state: DeliveryState) -> int:
        """Delete the cluster's deliveries in ``state``; returns how many."""
        with self.database.connect() as db:
            count = db.execute("DELETE FROM outbox_deliveries WHERE state = ?", (state,)).rowcount
            self._purge_events(db)
        return count

    def purge_delivered(self) -> int:
        """Delete delivered entries older than ``keep_delivered_s`` (any node may)."""
        with self.database.connect() as db:
            count = db.execute(
                "DELETE FROM outbox_deliveries WHERE state = ? AND updated_at < now() - "
                "? * interval '1 second'",
                (DELIVERED, self.config.keep_delivered_s),
            ).rowcount
            self._purge_events(db)
        return count

    def _purge_events(self, db: Connection) -> None:
        db.execute(
            "DELETE FROM outbox_events e WHERE created_at < ? AND NOT EXISTS "
            "(SELECT 1 FROM outbox_deliveries d WHERE d.event = e.id)",
            (time.time() - self.config.keep_delivered_s,),
        )

    def counts(self) -> dict[tuple[str, DeliveryState], int]:
        """The cluster's deliveries per (webhook, state)."""
        with self.database.connect() as db:
            rows = db.execute(
                "SELECT target, state, count(*) FROM outbox_deliveries GROUP BY target, state"
            ).fetchall()
        return {(str(target), DeliveryState(state)): int(count) for target, state, count in rows}

    def list(self, state: DeliveryState | None = None, limit: int = 100) -> list[Delivery]:
        """The cluster's deliveries, newest first, optionally only those in ``state``."""
        if state is None:
            return self._select("TRUE ORDER BY d.id DESC LIMIT ?", (limit,))
        return self._select("d.state = ? ORDER BY d.id DESC LIMIT ?", (state, limit))


def _delivery(row: Any, now: float) -> Delivery:
    payload, unreadable = decode_payload(row[7])
    return Delivery(
        id=int(row[0]),
        target=str(row[1]),
        state=DeliveryState(row[2]),
        attempts=int(row[3]),
        last_error=row[4],
        event_id=str(row[5]),
        created_at=float(row[6]),
        payload=payload,
        key=str(row[8]),
        next_at=now + float(row[9]),
        unreadable=unreadable,
    )


class Forwarder:
    """Moves this node's webhook deliveries from its outbox file into the cluster's
    outbox, oldest first, and wakes the senders: a
    :class:`~streamer.delivery.deliveries.Relay`. While the database cannot be reached the
    deliveries stay in the file (one line says so), and go once it answers again."""

    where = "another node"

    def __init__(
        self,
        outbox: Outbox,
        shared: ClusterOutbox,
        senders: Sequence[OutboxSender],
        retry_max_s: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.shared = shared
        self.senders = list(senders)
        self.targets = [sender.label for sender in senders]
        self.retry_max_s = retry_max_s
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self._rng = random.Random()
        self._outage = Outage(logger)
        self._file_outage = Outage(logger)

    @property
    def dropped_full(self) -> int:
        """Pending deliveries the cluster's outbox moved to the dead letters."""
        return self.shared.dropped_full

    def wake(self) -> None:
        """New deliveries wait in the file."""
        self.wakeup.set()

    async def settle(self) -> None:
        """Return once nothing waits in the file for the shared outbox."""
        if not self.targets:
            return
        self.idle.clear()
        self.wakeup.set()
        await self.idle.wait()

    def counts(
        self, file: dict[tuple[str, DeliveryState], int]
    ) -> dict[tuple[str, DeliveryState], int]:
        """The file's counts with the cluster's outbox's (its webhooks' figures cover the
        whole cluster) when it answers: a forwarded delivery counts there; in the file,
        only those still waiting."""
        counts = {k: n for k, n in file.items() if k[0] not in self.targets or k[1] == PENDING}
        try:
            for key, count in self.shared.counts().items():
                counts[key] = counts.get(key, 0) + count
        except StoreError:
            pass  # the database is away: this node's figures only
        return counts

    def purge_delivered(self) -> None:
        """Retention of the cluster outbox's delivered entries (any node may)."""
        try:
            self.shared.purge_delivered()
        except StoreError as error:
            logger.warning("cluster outbox: delivered entries not purged: %s", error)

    def _readable(self, limit: int) -> list[Delivery]:
        """The file's oldest pending deliveries for the shared outbox; one whose event
        cannot be read goes to the file's dead letters instead, in one line."""
        batch = self.outbox.pending(self.targets, limit)
        for delivery in batch:
            if delivery.unreadable:
                logger.error(
                    "cluster outbox: delivery %d (event %s) for %s not forwarded: %s; moved "
                    "to the dead letters of this node's outbox (`streamer outbox list "
                    "--local` shows it)",
                    delivery.id,
                    delivery.key,
                    delivery.target,
                    delivery.unreadable,
                )
                self.outbox.dead(delivery.id, delivery.unreadable)
        return [delivery for delivery in batch if not delivery.unreadable]

    async def run(self) -> None:
        """Forward until cancelled."""
        if not self.targets:
            return
        failures = 0
        while True:
            self.wakeup.clear()
            try:
                batch = await asyncio.to_thread(self._readable, BATCH)
            except OutboxError as error:  # this node's own file
                failures += 1
                self._file_outage.failed("cluster outbox: nothing forwarded: %s", error)
                await asyncio.sleep(backoff(failures, 1.0, self.retry_max_s, self._rng))
                continue
            self._file_outage.ended("cluster outbox: this node's outbox answers again")
            if not batch:
                self.idle.set()
                await self.wakeup.wait()
                continue
            self.idle.clear()
            try:
                await asyncio.to_thread(self.shared.ship, batch)
            except StoreError as error:
                failures += 1
                self._outage.failed(
                    "cluster outbox: deliveries kept in this node's outbox until the "
                    "database answers: %s",
                    error,
                )
                await asyncio.sleep(backoff(failures, 1.0, self.retry_max_s, self._rng))
                continue
            failures = 0
            self._outage.ended("cluster outbox: reachable again; forwarding what waited")
            with contextlib.suppress(OutboxError):  # sent again later: queued once there
                await asyncio.to_thread(self.outbox.forwarded, [d.id for d in batch])
            shipped = {d.target for d in batch}
            for sender in self.senders:
                if sender.label in shipped:
                    sender.wakeup.set()
