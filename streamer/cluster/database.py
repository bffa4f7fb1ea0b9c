"""PostgreSQL, the database a cluster of daemons shares (``cluster.database``).

The schema is versioned: :data:`MIGRATIONS` lists every change in order, and
:meth:`PostgresDatabase.migrate` applies those the database lacks at start, under an
advisory lock, so that nodes starting at once migrate once and the others wait for it.
Connections are pooled (a few per daemon) and used in autocommit mode, each
:meth:`~PostgresDatabase.connect` block being one explicit transaction; a connection that
broke is dropped, and the next block opens a new one.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

import psycopg

from streamer.config import mask_url
from streamer.stores.database import Connection, Database, Rows
from streamer.stores.records import StoreError

logger = logging.getLogger(__name__)

#: The advisory lock held while migrating (any fixed 64-bit number of our own).
MIGRATION_LOCK = 0x5354524D_4D494752
#: Idle connections kept per daemon.
POOL_SIZE = 4
#: Seconds to connect before the database counts as unreachable.
CONNECT_TIMEOUT_S = 10

#: The schema, one change per version (version N is ``MIGRATIONS[N - 1]``). Never edit a
#: released entry: append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE dues (
        plate text PRIMARY KEY,
        amount double precision NOT NULL CHECK (amount >= 0),
        message text NOT NULL DEFAULT '',
        updated_at text NOT NULL
    );
    CREATE TABLE list_entries (
        list text NOT NULL,
        plate text NOT NULL,
        note text NOT NULL DEFAULT '',
        expires_at double precision,
        updated_at text NOT NULL,
        PRIMARY KEY (list, plate)
    );
    """,
    """
    CREATE TABLE nodes (
        name text PRIMARY KEY,
        started_at timestamptz NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        capacity integer NOT NULL
    );
    CREATE TABLE leases (
        camera text PRIMARY KEY,
        node text NOT NULL,
        acquired_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        status text NOT NULL DEFAULT 'starting',
        last_frame_at timestamptz,
        error text
    );
    """,
    """
    CREATE TABLE events (
        event_id text PRIMARY KEY,
        camera text NOT NULL,
        node text NOT NULL,
        plate_number text NOT NULL,
        dues_pending boolean NOT NULL,
        last_seen timestamptz NOT NULL,
        record jsonb NOT NULL
    );
    CREATE INDEX events_newest ON events (last_seen DESC);
    """,
    """
    CREATE TABLE outbox_events (
        id bigserial PRIMARY KEY,
        key text NOT NULL UNIQUE,
        event_id text NOT NULL,
        node text NOT NULL,
        payload text NOT NULL,
        created_at double precision NOT NULL
    );
    CREATE TABLE outbox_deliveries (
        id bigserial PRIMARY KEY,
        event bigint NOT NULL REFERENCES outbox_events (id) ON DELETE CASCADE,
        target text NOT NULL,
        state text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_at timestamptz NOT NULL,
        last_error text,
        updated_at timestamptz NOT NULL,
        claimed_by text,
        claimed_until timestamptz,
        UNIQUE (event, target)
    );
    CREATE INDEX outbox_due ON outbox_deliveries (target, state, id);
    """,
    # The keys that find plates one OCR slip away (streamer.stores.slips); the stores
    # key the plates already there when they first open.
    """
    CREATE TABLE dues_keys (
        key text NOT NULL,
        plate text NOT NULL,
        PRIMARY KEY (key, plate)
    );
    CREATE TABLE list_keys (
        list text NOT NULL,
        key text NOT NULL,
        plate text NOT NULL,
        PRIMARY KEY (list, key, plate)
    );
    """,
    # A vehicle whose plate was not read has no plate number.
    """
    ALTER TABLE events ALTER COLUMN plate_number DROP NOT NULL;
    """,
)


def quoted(url: str) -> str:
    """``url`` with its user name and password percent-encoded, as libpq wants them. The
    user information ends at the URL's last ``@`` (as for camera URLs): a password may hold
    ``@``, ``:`` or ``/`` unescaped. Parts already encoded stay as they are."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="")
    if colon:
        encoded += ":" + quote(unquote(password), safe="")
    return f"{scheme}://{encoded}@{host}"


class _Transaction:
    """A psycopg connection as a :class:`~streamer.stores.database.Connection`: the
    stores' ``?`` placeholders become psycopg's ``%s``."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Rows:
        return self.connection.execute(_placeholders(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)


def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresDatabase(Database):
    """A PostgreSQL database, reached at ``url`` (``postgresql://user:password@host/db``),
    migrated to the current schema when opened.

    Raises:
        StoreError: when it cannot be reached, or its schema is newer than this version
            of streamer knows.
    """

    def __init__(self, url: str) -> None:
        self.url = quoted(url)
        self.display = mask_url(url)
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue(POOL_SIZE)
        self.migrate()

    def open(self) -> psycopg.Connection[Any]:
        """A new connection of its own (autocommit), outside the pool: the caller closes it.

        Raises:
            StoreError: when the database cannot be reached.
        """
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                # Text as str even from a database made without a locale (SQL_ASCII),
                # whose text psycopg would otherwise return as bytes.
                client_encoding="utf8",
                # A server gone without a word (a cut cable) is noticed in about 10 s.
                keepalives=1,
                keepalives_idle=4,
                keepalives_interval=2,
                keepalives_count=3,
            )
        except psycopg.Error as error:
            raise self._error(error) from None

    def _error(self, error: psycopg.Error) -> StoreError:
        """One line naming the database (its password masked) and what went wrong."""
        lines = str(error).strip().splitlines()
        reason = mask_url(lines[0]) if lines else type(error).__name__
        return StoreError(f"cluster.database: {self.display}: {reason}")

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """One transaction on a pooled connection.

        Raises:
            StoreError: when the database cannot be reached (or was lost mid-way).
        """
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = self.open()
        try:
            with connection.transaction():
                yield _Transaction(connection)
        except psycopg.OperationalError as error:
            connection.close()
            self.close()  # the idle ones went with the server, most likely
            raise self._error(error) from None
        except BaseException:
            if connection.broken:
                connection.close()
            else:
                self._keep(connection)
            raise
        self._keep(connection)

    def _keep(self, connection: psycopg.Connection[Any]) -> None:
        try:
            self._idle.put_nowait(connection)
        except queue.Full:
            connection.close()

    def ensure(self, schema: str, error: type[StoreError]) -> None:
        """Nothing to do: the tables come from :data:`MIGRATIONS` (see :meth:`migrate`)."""

    def refresh_statistics(self, tables: Sequence[str]) -> None:
        """``ANALYZE`` the tables: until autovacuum gets to them, the planner would go on
        planning a freshly imported list as if it were empty, with a scan that takes
        orders of magnitude longer than the index lookup."""
        with self.connect() as connection:
            for table in tables:
                connection.execute(f"ANALYZE {table}")

    def migrate(self) -> int:
        """Bring the schema to the newest version, under :data:`MIGRATION_LOCK`; returns how
        many versions this call applied (0 when another node had done it).

        Raises:
            StoreError: when the database cannot be reached, or its schema is newer.
        """
        connection = self.open()
        try:
            connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            connection.execute(
                "CREATE TABLE IF NOT EXISTS streamer_schema ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = connection.execute("SELECT max(version) FROM streamer_schema").fetchone()
            current = int(row[0] or 0) if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"cluster.database: {self.display} has schema version {current}; this "
                    f"streamer knows up to {len(MIGRATIONS)}: upgrade streamer"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                with connection.transaction():
                    connection.execute(MIGRATIONS[version - 1])
                    connection.execute(
                        "INSERT INTO streamer_schema (version) VALUES (%s)", (version,)
                    )
                logger.info("cluster.database: schema migrated to version %d", version)
            connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            return len(MIGRATIONS) - current
        except psycopg.Error as error:
            raise self._error(error) from None
        finally:
            connection.close()

    def close(self) -> None:
        """Close the idle connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
