"""The outbox's file format: its tables, the schema version, the migration from older
versions, and the checks made when the file is opened: a damaged file or one of a newer
streamer is refused in one line that says what to do (see :mod:`streamer.delivery.outbox`
for what the outbox does with its tables)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from streamer.stores.records import StoreError

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


#: The columns each table must have, checked when the file is opened.
COLUMNS = {
    "events": {"id", "key", "event_id", "phase", "type", "payload", "created_at", "logged"},
    "deliveries": {"id", "event", "target", "state", "attempts", "next_at", "last_error"},
}

#: SQLite's primary result codes for a file that is damaged or not a database at all
#: (SQLITE_CORRUPT, SQLITE_NOTADB).
DAMAGED_CODES = {11, 26}
#: SQLite's primary result code for an I/O error (it does not keep the OS's reason).
SQLITE_IOERR = 10


class OutboxError(StoreError):
    """The outbox file cannot be opened or written; the message is one line saying why and
    what to do."""


def damaged(path: Path, reason: str) -> OutboxError:
    """The error for a damaged outbox file: what it is and what moving it aside loses."""
    return OutboxError(
        f"outbox.database: {path} is damaged ({reason}): stop streamer, move it aside with its "
        f"-wal and -shm files (e.g. to {path.name}.damaged) and start again; a new, empty "
        "outbox is made, and the deliveries still pending or dead in the damaged one are not "
        "sent (the events log keeps every event)"
    )


def failure(path: Path, error: sqlite3.Error | OSError) -> OutboxError:
    """``error`` from the outbox file as one line: damaged, or the OS's or SQLite's reason
    (such as "database or disk is full")."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if code in DAMAGED_CODES:
            return damaged(path, str(error))
        if code == SQLITE_IOERR and _full(path):  # SQLite does not say why
            return OutboxError(f"outbox.database: {path}: {error} (the disk is full)")
        return OutboxError(f"outbox.database: {path}: {error}")
    return OutboxError(f"outbox.database: {path}: {error.strerror or error}")


def _full(path: Path) -> bool:
    """Whether the disk holding ``path`` has no room left for a page or two."""
    try:
        usage = shutil.disk_usage(path.parent)
    except OSError:
        return False
    return usage.free < 64 * 1024


def check(connection: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is damaged (SQLite's ``quick_check``), of a newer schema than
    this streamer's, or not an outbox; never change it.

    Raises:
        OutboxError: saying what to do.
    """
    found = [str(row[0]) for row in connection.execute("PRAGMA quick_check(2)")]
    if found != ["ok"]:
        lines = [line for text in found for line in text.splitlines()]
        raise damaged(path, "; ".join(line for line in lines if not line.startswith("***")))
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise OutboxError(
            f"outbox.database: {path} is of schema version {version}, newer than this "
            f"streamer's ({SCHEMA_VERSION}): upgrade streamer, or point outbox.database at "
            "another file (this one is left as it is)"
        )


def check_tables(connection: sqlite3.Connection, path: Path) -> None:
    """Refuse a file whose tables are not an outbox's (after :func:`migrate`).

    Raises:
        OutboxError: naming the missing columns.
    """
    for table, needed in COLUMNS.items():
        columns = {str(row[1]) for row in connection.execute(f"PRAGMA table_info({table})")}
        if missing := needed - columns:
            raise OutboxError(
                f"outbox.database: {path} is not a streamer outbox (table {table} lacks "
                f"{', '.join(sorted(missing))}): point outbox.database at another file"
            )


def migrate(connection: sqlite3.Connection) -> None:
    """Bring an outbox of an older schema to :data:`SCHEMA_VERSION`, all or nothing (a
    newer one is refused first, by :func:`check`)."""
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
            # A file whose version number was lost keeps the keys it has.
            key = "key" if "key" in columns else "event_id"
            phase = "phase" if "phase" in columns else "NULL"
            connection.execute("ALTER TABLE events RENAME TO events_v1")
        for statement in filter(str.strip, SCHEMA.split(";")):
            connection.execute(statement)
        if old:
            # SQLite cannot change a table's keys: copy the rows, ids kept for deliveries.
            connection.execute(
                "INSERT INTO events (id, key, event_id, phase, type, payload, created_at, logged)"
                f" SELECT id, {key}, event_id, {phase}, type, payload, created_at, {logged} "
                "FROM events_v1"
            )
            connection.execute("DROP TABLE events_v1")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
