"""The stores of a config: in the SQLite file of ``dues.database``, or, with
``cluster.database`` set, in the cluster's PostgreSQL database."""

from __future__ import annotations

from streamer.config import Config
from streamer.stores.database import Database, SqliteDatabase
from streamer.stores.dues import SqlDues
from streamer.stores.lists import SqlLists


def open_database(config: Config) -> Database:
    """The database the config's stores live in.

    Raises:
        StoreError: when the cluster's database cannot be reached or migrated.
    """
    if config.cluster is not None:
        from streamer.stores.postgres import PostgresDatabase  # psycopg only when used

        return PostgresDatabase(config.cluster.database)
    return SqliteDatabase(config.dues.database)


def open_stores(config: Config, database: Database | None = None) -> tuple[SqlDues, SqlLists]:
    """The dues and the plate lists (the lists' files not loaded yet).

    Raises:
        StoreError: when their database cannot be opened.
    """
    database = database or open_database(config)
    return SqlDues(database), SqlLists(database, config.list_files)
