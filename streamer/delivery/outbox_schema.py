"""The outbox's file format: its tables, the schema version, and the migration from
older versions (see :mod:`streamer.delivery.outbox` for what the outbox does with them)."""

from __future__ import annotations

import sqlite3

#: The schema's version, kept in SQLite's ``user_version``. Version 1 keyed events by
#: ``event_id`` alone; since a vehicle has an early and a final event with one event_id,
#: version 2 keys them by ``key`` (``<event_id>:<phase>``).
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL,
    phase TEXT,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    logged INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id, phase);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    event INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    updated_at REAL NOT NULL,
    UNIQUE (event, target)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (target, state, id);
"""

#: Events no delivery needs any more, and that are not an early event still waiting for
#: its final one (:meth:`Outbox.orphans` finds those after a crash).
UNNEEDED = """
DELETE FROM events WHERE created_at < ? AND id NOT IN (SELECT event FROM deliveries)
AND NOT (phase = 'early' AND NOT EXISTS (
    SELECT 1 FROM events final WHERE final.event_id = events.event_id AND final.phase = 'final'
))
"""


def migrate(connection: sqlite3.Connection) -> None:
    """Bring an outbox of an older schema to :data:`SCHEMA_VERSION`, all or nothing."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    connection.isolation_level = None  # this function manages its one transaction
    # An old table is renamed aside; deliveries must keep pointing at "events".
    connection.execute("PRAGMA legacy_alter_table=ON")
    connection.execute("BEGIN IMMEDIATE")
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        old = "events" in tables
        if old:
            columns = {row[1] for row in connection.execute("PRAGMA table_info(events)")}
            logged = "logged" if "logged" in columns else "1"  # before the column: logged
            connection.execute("ALTER TABLE events RENAME TO events_v1")
        for statement in filter(str.strip, SCHEMA.split(";")):
            connection.execute(statement)
        if old:
            # SQLite cannot change a table's keys: copy the rows, ids kept for deliveries.
            connection.execute(
                "INSERT INTO events (id, key, event_id, phase, type, payload, created_at, logged)"
                f" SELECT id, event_id, event_id, NULL, type, payload, created_at, {logged} "
                "FROM events_v1"
            )
            connection.execute("DROP TABLE events_v1")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
