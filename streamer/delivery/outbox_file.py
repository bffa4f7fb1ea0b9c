"""The outbox's file: its tables, the schema version, the migration from older versions,
the rows read back, and the checks made when the file is opened (:class:`OutboxFile`): a
damaged file or one of a newer streamer is refused in one line that says what to do (see
:mod:`streamer.delivery.outbox` for what the outbox does with its tables)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamer.delivery.queue import DEAD, Delivery, DeliveryState, decode_payload
from streamer.stores.database import SqliteDatabase
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

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


class OutboxFile:
    """The outbox's SQLite file, opened (with ``create``, made), checked and brought to
    this schema. Every :meth:`connect` is one transaction on its own connection, so any
    thread may use it; one more connection is held open to keep the WAL.

    Raises:
        OutboxError: for a damaged file, one of a newer streamer, one that is not an
            outbox, or (without ``create``) none at all; in one line saying what to do.
    """

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        self.create = create
        self._keeper: sqlite3.Connection | None = None
        self.database = SqliteDatabase(path, 30, {"foreign_keys": "ON", "synchronous": "NORMAL"})
        if not create and not path.exists():
            return  # the first use says there is none
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise failure(path, error) from None
        with self.connect() as connection:
            check(connection, path)
            connection.execute("PRAGMA journal_mode=WAL")
        with self.connect(foreign_keys="OFF") as connection:
            migrate(connection)
            check_tables(connection, path)
        # Held open, so that the WAL and its index stay: on a full disk the outbox can
        # then still be read, and a write fails as "database or disk is full".
        try:
            self._keeper = sqlite3.connect(path, check_same_thread=False)
            self._keeper.execute("SELECT COUNT(*) FROM deliveries WHERE 0").fetchall()
        except sqlite3.Error as error:
            raise failure(path, error) from None

    def close(self) -> None:
        """Let go of the file."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()

    @contextlib.contextmanager
    def connect(self, **pragmas: str) -> Iterator[sqlite3.Connection]:
        """One transaction; SQLite's and the OS's errors raised as one-line
        :class:`OutboxError`\\ s (a sender waits them out, the CLI prints them)."""
        if not self.create and not self.path.exists():
            raise OutboxError(
                f"outbox.database: there is no outbox at {self.path}: no event was ever "
                "queued with this config (the daemon makes it when it starts)"
            )
        try:
            with self.database.connect(**pragmas) as connection:
                connection.text_factory = _lenient
                yield connection
        except (sqlite3.Error, OSError) as error:
            raise failure(self.path, error) from None


def _lenient(data: bytes) -> str:
    """Text from the file, a damaged byte shown as U+FFFD rather than failing the row."""
    return data.decode("utf-8", "replace")


def delivery_of(row: Sequence[Any]) -> Delivery:
    """A row of deliveries joined to its event; one that is damaged (a value of the wrong
    type, an unknown state, an unreadable payload) says so in ``unreadable``."""
    payload, unreadable = decode_payload(row[8])
    try:
        state = DeliveryState(row[2])
        numbers = int(row[3]), float(row[4]), float(row[7])
    except (TypeError, ValueError, OverflowError):
        state, numbers = DEAD, (0, 0.0, 0.0)
        unreadable = f"damaged row (state {row[2]!r}, attempts {row[3]!r})"
    return Delivery(
        id=int(row[0]),
        target=str(row[1]),
        state=state,
        attempts=numbers[0],
        next_at=numbers[1],
        last_error=None if row[5] is None else str(row[5]),
        event_id=str(row[6]),
        created_at=numbers[2],
        payload=payload,
        key=str(row[9]),
        unreadable=unreadable,
    )


def readable_payload(key: str, text: object) -> dict[str, Any]:
    """The payload of event ``key``, or ``{}`` (said in one line) when it is unreadable."""
    payload, unreadable = decode_payload(text)
    if unreadable:
        logger.error("outbox: event %s cannot be read back (%s): skipped", key, unreadable)
    return payload
