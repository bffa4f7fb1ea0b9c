"""Where the plate stores keep their tables: an SQLite file (the embedded default), or a
PostgreSQL database shared by a cluster of daemons (:mod:`streamer.cluster.database`).

A store writes its SQL once, in the dialect both understand (``?`` placeholders,
``ON CONFLICT … DO UPDATE``), and runs it on a :class:`Database`. Each
:meth:`Database.connect` is one transaction: committed when the block ends, rolled back
when it raises.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Any, Protocol

from streamer.stores.records import StoreError


class Rows(Protocol):
    """What a statement gives back: its rows, and how many rows it changed."""

    @property
    def rowcount(self) -> int:
        """Rows the statement changed."""
        ...

    def fetchone(self) -> Any:
        """The next row, or ``None``."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...


class Connection(Protocol):
    """One transaction's connection."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Rows:
        """Run one statement with ``?`` placeholders."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> Any:
        """Run one statement once per row."""
        ...


class Database(ABC):
    """A database the stores keep their tables in."""

    @abstractmethod
    def connect(self) -> AbstractContextManager[Connection]:
        """One transaction.

        Raises:
            StoreError: when the database cannot be reached.
        """

    @abstractmethod
    def refresh_statistics(self, tables: Sequence[str]) -> None:
        """Tell the query planner what ``tables`` hold, after a bulk write."""

    @abstractmethod
    def ensure(self, schema: str, error: type[StoreError]) -> None:
        """Make sure a store's tables exist: ``schema`` is their SQLite ``CREATE … IF NOT
        EXISTS`` statements, separated by ``;`` (PostgreSQL's tables come from its
        versioned migrations).

        Raises:
            StoreError: (as ``error``) when the database cannot be opened.
        """


class SqliteDatabase(Database):
    """An SQLite file, created on first use. Every transaction opens its own short
    connection, so a store is safe from any thread and sees changes made by the CLI while
    the daemon runs. ``pragmas`` are set on every connection (the outbox's foreign keys and
    durability, for instance).

    Example:
        >>> database = SqliteDatabase(Path("/tmp/outbox.sqlite"), 30, {"foreign_keys": "ON"})
        >>> with database.connect() as connection:
        ...     connection.execute("SELECT 1").fetchone()
        (1,)
    """

    def __init__(
        self, path: Path, timeout_s: float = 10.0, pragmas: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.pragmas = dict(pragmas or {})

    @contextmanager
    def connect(self, **pragmas: str) -> Iterator[sqlite3.Connection]:
        """One transaction on its own connection; ``pragmas`` beside the database's own."""
        with closing(sqlite3.connect(self.path, timeout=self.timeout_s)) as connection:
            for name, value in {**self.pragmas, **pragmas}.items():
                connection.execute(f"PRAGMA {name}={value}")
            with connection:
                yield connection

    def refresh_statistics(self, tables: Sequence[str]) -> None:
        """Nothing to do: SQLite plans the stores' lookups by their keys without them."""

    def ensure(self, schema: str, error: type[StoreError]) -> None:
        """Create the folder and the tables when missing."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as connection:
                for statement in filter(str.strip, schema.split(";")):
                    connection.execute(statement)
        except (OSError, sqlite3.Error) as failure:
            raise error(f"dues.database: cannot open {self.path}: {failure}") from None


#: The plate stores' SQLite settings: a page cache that holds much of a large list's index
#: while it is written (SQLite's default of 2 MB makes a big import thrash it). Pages are
#: only taken as they are used.
PLATE_PRAGMAS = {"cache_size": "-65536"}
#: Rows written at once from which a store refreshes the planner's statistics.
BULK_ROWS = 1000


class SqlStore:
    """A store of plates in a :class:`Database`; a path stands for an SQLite file."""

    #: The store's tables, for SQLite (``CREATE … IF NOT EXISTS`` statements, ``;`` apart).
    SCHEMA: str
    #: What the store raises.
    ERROR: type[StoreError] = StoreError

    def __init__(self, database: Database | Path) -> None:
        if isinstance(database, Path):
            database = SqliteDatabase(database, pragmas=PLATE_PRAGMAS)
        self.database = database
        self.database.ensure(self.SCHEMA, self.ERROR)

    def _connect(self) -> AbstractContextManager[Connection]:
        return self.database.connect()

    def _wrote_many(self, count: int, *tables: str) -> None:
        """After a write of ``count`` rows: statistics refreshed when it was a bulk write."""
        if count >= BULK_ROWS:
            self.database.refresh_statistics(tables)
