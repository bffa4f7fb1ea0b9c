"""The durable outbox: every event bound for a webhook or the MQTT broker is committed here
first.

An SQLite file in WAL mode holds each event once (``events``) and one row per target it
must reach (``deliveries``: pending → delivered, or dead); a target is a webhook or the
MQTT broker (:data:`~streamer.config.DeliveryTarget`). The pipeline adds an event in one
transaction before it counts as emitted; each target's sender takes its due deliveries in
order and records the outcome (the file: :mod:`streamer.delivery.outbox_file`). A
crash loses nothing: on the next start the pending rows are delivered, and events
committed but not yet in the events log are logged. Every call opens its own connection,
so any thread may use it (one more is held open only to keep the WAL, see
:meth:`Outbox.close`). A file that is damaged, of a newer schema or not an outbox is
refused when opened, and every error of the file is one line (:class:`OutboxError`); a
row that cannot be read back is read as such (``Delivery.unreadable``), never raised.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from streamer.config import DeliveryTarget, MqttConfig, OutboxConfig
from streamer.delivery.outbox_file import (
    UNNEEDED,
    OutboxError,
    OutboxFile,
    delivery_of,
    readable_payload,
)
from streamer.delivery.passes import FilePasses
from streamer.delivery.queue import (
    DEAD,
    DELIVERED,
    PENDING,
    Delivery,
    DeliveryState,
)
from streamer.events import CameraStatus, Event, PlateEvent, compact_json

logger = logging.getLogger(__name__)

__all__ = ["Outbox", "OutboxError", "wants"]


def wants(target: DeliveryTarget, event: Event) -> bool:
    """Whether ``target`` takes ``event``: the MQTT broker takes every event; a webhook
    what its filters let through (``when`` by the event's own dues, lists and direction, so
    an early and a final event may differ; a webhook without ``when`` takes vehicles whose
    plate was not read too)."""
    if isinstance(target, MqttConfig):
        return True
    if isinstance(event, CameraStatus):
        return target.include_status
    if event.phase not in target.phases:
        return False
    return target.filter.matches(
        event.lists.lists, event.dues_result.dues_pending, event.directions, event.has_plate
    )


class Outbox:
    """Pending deliveries in SQLite, per target (a webhook, or the MQTT broker): a
    :class:`~streamer.delivery.queue.DeliveryQueue`.

    Example:
        >>> outbox = Outbox(OutboxConfig(database=Path("/tmp/outbox.sqlite")), targets)
        >>> outbox.add(event)            # committed before the event counts as emitted
        >>> outbox.next_due("receiver")  # the oldest pending delivery for one target
    """

    #: Only this daemon writes its file, and it wakes its senders itself.
    poll_s: float | None = None

    def __init__(
        self, config: OutboxConfig, targets: Sequence[DeliveryTarget], create: bool = True
    ) -> None:
        """Open (with ``create``, make) the file, check it and bring it to this schema.

        Raises:
            OutboxError: for a damaged file, one of a newer streamer, one that is not an
                outbox, or (without ``create``) none at all; in one line saying what to do.
        """
        self.config = config
        self.targets = list(targets)
        self.dropped_full = 0
        #: Whether this start made the file (a first start, or one moved aside).
        self.fresh = not config.database.exists()
        self.file = OutboxFile(config.database, create)
        #: The passes over recorded files, kept beside the keys they concern.
        self.passes = FilePasses(self.file)

    def close(self) -> None:
        """Let go of the file (the daemon, when it stops)."""
        self.file.close()

    def add(self, event: Event, logged: bool = False) -> list[str] | None:
        """Commit ``event`` with a pending delivery per target that wants it (``logged``:
        it is in the events log already).

        Every event is kept (for a while), wanted or not, so that an early event whose
        final one a crash prevented is found again (:meth:`orphans`). Returns the targets
        it is queued for, or ``None`` when it was queued before (then its events log line
        was written before too, or is written from here). When a target already has
        ``max_pending`` pending deliveries, its oldest is moved to the dead letters.

        Raises:
            OutboxError: when the file cannot be written (a full disk, a damaged file).
        """
        targets = [t.label for t in self.targets if wants(t, event)]
        now = time.time()
        payload = compact_json(event.to_json())
        phase = event.phase if isinstance(event, PlateEvent) else None
        with self.file.connect() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO events "
                "(key, event_id, phase, type, payload, created_at, logged) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.key, event.event_id, phase, event.type, payload, now, int(logged)),
            )
            if cursor.rowcount == 0:
                # Queued before: a file read again gives its vehicles the same event ids.
                logger.info(
                    "event %s was queued before (the same recording read again): not queued "
                    "or logged again",
                    event.key,
                )
                return None
            for target in targets:
                self._make_room(connection, target, now)
                connection.execute(
                    "INSERT INTO deliveries (event, target, state, next_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (cursor.lastrowid, target, PENDING, now, now),
                )
        return targets

    def logged(self, keys: Sequence[str]) -> None:
        """Record that these events (by :attr:`~streamer.events.PlateEvent.key`) are in the
        events log."""
        with self.file.connect() as connection:
            connection.executemany(
                "UPDATE events SET logged = 1 WHERE key = ?", [(k,) for k in keys]
            )

    def unlogged(self) -> list[tuple[str, dict[str, Any]]]:
        """Events committed here but not yet in the events log (a crash came between), as
        (key, payload); an unreadable payload as ``{}`` (it cannot be logged)."""
        with self.file.connect() as connection:
            rows = connection.execute(
                "SELECT key, payload FROM events WHERE logged = 0 ORDER BY id"
            ).fetchall()
        return [(str(key), readable_payload(str(key), payload)) for key, payload in rows]

    def unknown(self, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` (in their order) of which no event is committed here."""
        with self.file.connect() as connection:
            return [
                key
                for key in keys
                if connection.execute("SELECT 1 FROM events WHERE key = ?", (key,)).fetchone()
                is None
            ]

    def orphans(self) -> list[dict[str, Any]]:
        """Early plate events whose final event never came (a crash ended their track)."""
        with self.file.connect() as connection:
            rows = connection.execute(
                "SELECT key, payload FROM events early WHERE early.phase = 'early' AND NOT "
                "EXISTS (SELECT 1 FROM events final WHERE final.event_id = early.event_id "
                "AND final.phase = 'final') ORDER BY early.id"
            ).fetchall()
        return [record for key, text in rows if (record := readable_payload(str(key), text))]

    def vehicles_since(self, since: float) -> list[tuple[str, str]]:
        """(camera, event_id) of each vehicle with a plate event committed since ``since``
        (Unix time), as long as retention (``keep_delivered_s``) has kept it."""
        with self.file.connect() as connection:
            rows = connection.execute(
                "SELECT DISTINCT json_extract(payload, '$.camera'), event_id FROM events "
                "WHERE type = 'plate' AND created_at >= ? AND json_valid(payload)",
                (since,),
            ).fetchall()
        return [(str(camera), str(event_id)) for camera, event_id in rows]

    def _make_room(self, connection: sqlite3.Connection, target: str, now: float) -> None:
        (pending,) = connection.execute(
            "SELECT COUNT(*) FROM deliveries WHERE target = ? AND state = ?", (target, PENDING)
        ).fetchone()
        if pending < self.config.max_pending:
            return
        connection.execute(
            "UPDATE deliveries SET state = ?, last_error = 'outbox full', updated_at = ? "
            "WHERE id = (SELECT MIN(id) FROM deliveries WHERE target = ? AND state = ?)",
            (DEAD, now, target, PENDING),
        )
        self.dropped_full += 1
        logger.warning(
            "outbox full for target %s (%d pending): oldest delivery moved to the dead letters",
            target,
            pending,
        )

    def next_due(self, target: str) -> Delivery | None:
        """The oldest pending delivery of ``target`` (due or not), or ``None``."""
        rows = self._select("d.target = ? AND d.state = ? ORDER BY d.id LIMIT 1", (target, PENDING))
        return rows[0] if rows else None

    def claim(self, delivery_id: int, seconds: float) -> bool:
        """Always ``True``: one daemon's file has one sender per target."""
        return True

    def pending(self, targets: Sequence[str], limit: int) -> list[Delivery]:
        """The oldest pending deliveries of any of ``targets``, at most ``limit``."""
        marks = ", ".join("?" * len(targets))
        return self._select(
            f"d.state = ? AND d.target IN ({marks}) ORDER BY d.id LIMIT ?",
            (PENDING, *targets, limit),
        )

    def forwarded(self, delivery_ids: Sequence[int]) -> None:
        """Record that these deliveries reached the cluster's outbox (delivered, as far as
        this file is concerned)."""
        now = time.time()
        with self.file.connect() as connection:
            connection.executemany(
                "UPDATE deliveries SET state = ?, updated_at = ? WHERE id = ?",
                [(DELIVERED, now, i) for i in delivery_ids],
            )

    def _select(self, where: str, args: tuple[object, ...]) -> list[Delivery]:
        with self.file.connect() as connection:
            rows = connection.execute(
                "SELECT d.id, d.target, d.state, d.attempts, d.next_at, d.last_error, "
                f"e.event_id, e.created_at, e.payload, e.key FROM deliveries d JOIN events e "
                f"ON e.id = d.event WHERE {where}",
                args,
            ).fetchall()
        return [delivery_of(row) for row in rows]

    def delivered(self, delivery_id: int) -> None:
        """Record a successful delivery."""
        self._update(delivery_id, DELIVERED, None, None)

    def retry_later(self, delivery_id: int, error: str, next_at: float) -> None:
        """Record a failed attempt to be retried at ``next_at``."""
        self._update(delivery_id, PENDING, error, next_at)

    def dead(self, delivery_id: int, error: str) -> None:
        """Move a delivery to the dead letters (its target refused it for good)."""
        self._update(delivery_id, DEAD, error, None)

    def _update(
        self, delivery_id: int, state: DeliveryState, error: str | None, next_at: float | None
    ) -> None:
        now = time.time()
        with self.file.connect() as connection:
            connection.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?, "
                "next_at = COALESCE(?, next_at), updated_at = ? WHERE id = ?",
                (state, error, next_at, now, delivery_id),
            )

    def list(self, state: DeliveryState | None = None, limit: int = 100) -> list[Delivery]:
        """Deliveries, newest first, optionally only those in ``state``."""
        if state is None:
            return self._select("1 ORDER BY d.id DESC LIMIT ?", (limit,))
        return self._select("d.state = ? ORDER BY d.id DESC LIMIT ?", (state, limit))

    def retry(self, delivery_id: int | None = None) -> int:
        """Make dead deliveries pending again (one, or all); returns how many."""
        now = time.time()
        with self.file.connect() as connection:
            if delivery_id is None:
                cursor = connection.execute(
                    "UPDATE deliveries SET state = ?, next_at = ?, updated_at = ? WHERE state = ?",
                    (PENDING, now, now, DEAD),
                )
            else:
                cursor = connection.execute(
                    "UPDATE deliveries SET state = ?, next_at = ?, updated_at = ? "
                    "WHERE id = ? AND state != ?",
                    (PENDING, now, now, delivery_id, DELIVERED),
                )
        return cursor.rowcount

    def purge(self, state: DeliveryState) -> int:
        """Delete deliveries in ``state`` and events no delivery refers to any more."""
        with self.file.connect() as connection:
            count = connection.execute("DELETE FROM deliveries WHERE state = ?", (state,)).rowcount
            connection.execute(UNNEEDED, (time.time() - self.config.keep_delivered_s,))
        return count

    def purge_delivered(self) -> int:
        """Delete delivered entries older than ``keep_delivered_s``."""
        cutoff = time.time() - self.config.keep_delivered_s
        with self.file.connect() as connection:
            count = connection.execute(
                "DELETE FROM deliveries WHERE state = ? AND updated_at < ?", (DELIVERED, cutoff)
            ).rowcount
            connection.execute(UNNEEDED, (cutoff,))
        return count

    def counts(self) -> dict[tuple[str, DeliveryState], int]:
        """Deliveries per (target, state): the outbox depth for metrics."""
        with self.file.connect() as connection:
            rows = connection.execute(
                "SELECT target, state, COUNT(*) FROM deliveries GROUP BY target, state"
            ).fetchall()
        counts: dict[tuple[str, DeliveryState], int] = {}
        for target, state, count in rows:
            known = state if state in set(DeliveryState) else DEAD  # a damaged row
            key = (str(target), DeliveryState(known))
            counts[key] = counts.get(key, 0) + int(count)
        return counts
