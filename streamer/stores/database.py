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
from collections.abc import Iterator, Sequence
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
    def ensure(self, schema: str, error: type[StoreError]) -> None:
        """Make sure a store's table exists: ``schema`` is its SQLite ``CREATE TABLE IF NOT
        EXISTS`` (PostgreSQL's tables come from its versioned migrations).

        Raises:
            StoreError: (as ``error``) when the database cannot be opened.
        """


class SqliteDatabase(Database):
    """An SQLite file, created on first use. Every transaction opens its own short
    connection, so a store is safe from any thread and sees changes made by the CLI while
    the daemon runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """One transaction on its own connection."""
        with closing(sqlite3.connect(self.path, timeout=10)) as connection, connection:
            yield connection

    def ensure(self, schema: str, error: type[StoreError]) -> None:
        """Create the folder and the table when missing."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as connection:
                connection.execute(schema)
        except (OSError, sqlite3.Error) as failure:
            raise error(f"dues.database: cannot open {self.path}: {failure}") from None


class SqlStore:
    """A store of plates in a :class:`Database`; a path stands for an SQLite file."""

    #: The store's table, for SQLite (``CREATE TABLE IF NOT EXISTS``).
    SCHEMA: str
    #: What the store raises.
    ERROR: type[StoreError] = StoreError

    def __init__(self, database: Database | Path) -> None:
        self.database = SqliteDatabase(database) if isinstance(database, Path) else database
        self.database.ensure(self.SCHEMA, self.ERROR)

    def _connect(self) -> AbstractContextManager[Connection]:
        return self.database.connect()
