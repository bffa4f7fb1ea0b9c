"""A cluster's plate events in its PostgreSQL database, for ``/api/events`` on every node.

Each node writes its plate events there as they happen (a final event replaces its
vehicle's early one), and any node's ``/api/events`` reads them, with the same filters and
paging as a single daemon's in-memory history. Events older than the evidence they point
to (``recordings.max_age_days``) are deleted. While the database is unreachable a node's
events are kept in its own events log only, and one line says so. The node that takes a
camera over learns from it which plates the camera saw last (:meth:`ClusterHistory.recent`),
so that a vehicle in view while its camera moved is not reported twice. Each event written
is announced on :data:`CHANNEL` (``NOTIFY``), and every node's :meth:`ClusterHistory.listen`
passes the other nodes' events to its dashboard's live stream.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streamer.cluster.database import PostgresDatabase
from streamer.events import Event, PlateEvent, compact_json
from streamer.retry import Outage
from streamer.stores.history import evidence_url
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

#: Events written between two deletions of the old ones.
PURGE_EVERY = 1000
#: The channel each node announces its plate events on.
CHANNEL = "streamer_events"
#: Longest announcement sent whole (PostgreSQL's limit is 8000 bytes); a longer record is
#: announced by its ``event_id``, and the listeners read it from the table.
NOTIFY_MAX_BYTES = 7000
#: Seconds between two attempts to listen again after the connection was lost.
LISTEN_RETRY_S = 2.0


class ClusterHistory:
    """The cluster's plate events: a sink on each node, and ``/api/events``'s source."""

    def __init__(
        self, database: PostgresDatabase, node: str, evidence: Path, max_age_days: float
    ) -> None:
        self.database = database
        self.node = node
        self.evidence = evidence
        self.max_age_days = max_age_days
        self._written = 0
        self._outage = Outage(logger)
        self._lock = threading.Lock()

    def send(self, event: Event) -> None:
        """Write a plate event (from a pipeline thread); camera states are not kept."""
        if not isinstance(event, PlateEvent):
            return
        record = event.to_json()
        record["crop_url"] = evidence_url(event.crop_path, self.evidence)
        record["snapshot_url"] = evidence_url(event.snapshot_path, self.evidence)
        record["vehicle_crop_url"] = evidence_url(event.vehicle_crop_path, self.evidence)
        record["node"] = self.node
        try:
            with self.database.connect() as db:
                db.execute(
                    "INSERT INTO events (event_id, camera, node, plate_number, dues_pending, "
                    "last_seen, record) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) "
                    "DO UPDATE SET plate_number = excluded.plate_number, "
                    "dues_pending = excluded.dues_pending, last_seen = excluded.last_seen, "
                    "record = excluded.record",
                    (
                        event.event_id,
                        event.camera,
                        self.node,
                        event.plate_number,
                        event.dues_result.dues_pending,
                        event.last_seen,
                        Jsonb(record),
                    ),
                )
                announced = compact_json(record)
                if len(announced.encode()) > NOTIFY_MAX_BYTES:
                    announced = json.dumps({"event_id": event.event_id, "node": self.node})
                db.execute("SELECT pg_notify(?, ?)", (CHANNEL, announced))
                self._purge(db)
        except StoreError as error:
            self._outage.failed("cluster events: not written (kept in the events log): %s", error)
            return
        self._outage.ended("cluster events: written again")

    def listen(self, deliver: Callable[[dict[str, Any]], None], stop: threading.Event) -> None:
        """Pass each plate event another node writes to ``deliver``, until ``stop`` is set
        (on a thread of its own; a lost connection is opened again)."""
        while not stop.is_set():
            try:
                connection = self.database.open()
            except StoreError:
                stop.wait(LISTEN_RETRY_S)
                continue
            try:
                with connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    while not stop.is_set():
                        for note in connection.notifies(timeout=1.0):
                            record = json.loads(note.payload)
                            if record.get("node") == self.node:
                                continue
                            if "type" not in record:  # too long to announce: read it
                                record = self._record(connection, str(record["event_id"]))
                            if record:
                                deliver(record)
            except (psycopg.Error, ValueError) as error:
                logger.warning("cluster events: live stream interrupted (%s); again shortly", error)
                stop.wait(LISTEN_RETRY_S)

    @staticmethod
    def _record(connection: psycopg.Connection[Any], event_id: str) -> dict[str, Any]:
        row = connection.execute(
            "SELECT record FROM events WHERE event_id = %s", (event_id,)
        ).fetchone()
        return dict(row[0]) if row else {}

    def _purge(self, db: Any) -> None:
        with self._lock:
            self._written += 1
            due = self.max_age_days > 0 and self._written % PURGE_EVERY == 1
        if due:
            db.execute(
                "DELETE FROM events WHERE last_seen < now() - ? * interval '1 day'",
                (self.max_age_days,),
            )

    def recent(self, camera: str, window_s: float) -> dict[str, datetime]:
        """The plates ``camera``'s events saw within the last ``window_s`` seconds, with
        when each was last seen (for the deduplicator of the node that takes the camera).

        Raises:
            StoreError: when the database cannot be reached.
        """
        with self.database.connect() as db:
            rows = db.execute(
                "SELECT plate_number, max(last_seen) FROM events WHERE camera = ? "
                "AND plate_number IS NOT NULL "
                "AND last_seen > now() - ? * interval '1 second' GROUP BY 1",
                (camera, window_s),
            ).fetchall()
        return {str(plate): moment for plate, moment in rows}

    def query(
        self,
        plate: str | None,
        camera: str | None,
        dues_pending: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """Plate events of the whole cluster newest first, filtered; the page and the total
        that matched (one record per vehicle: its latest phase).

        Raises:
            StoreError: when the database cannot be reached.
        """
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if plate:
            where.append("strpos(plate_number, ?) > 0")
            params.append(plate)
        if camera:
            where.append("camera = ?")
            params.append(camera)
        if dues_pending is not None:
            where.append("dues_pending = ?")
            params.append(dues_pending)
        condition = " AND ".join(where)
        with self.database.connect() as db:
            rows = db.execute(
                f"SELECT record FROM events WHERE {condition} "
                "ORDER BY last_seen DESC, event_id LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            (total,) = db.execute(
                f"SELECT count(*) FROM events WHERE {condition}", params
            ).fetchone()
        return [dict(record) for (record,) in rows], int(total)
