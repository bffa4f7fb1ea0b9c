"""The cluster's PostgreSQL database: migrations, passwords, locales, a newer schema, and
an outage at start."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import psycopg
import pytest

from streamer.cluster.database import MIGRATIONS, PostgresDatabase, quoted
from streamer.cluster.leases import Leases
from streamer.node import ServiceOptions, StartupError
from streamer.service import Service
from streamer.stores.dues import SqlDues
from streamer.stores.records import StoreError

from support.cluster_nodes import cluster_config, node_config
from support.postgres import PASSWORD, PostgresServer
from support.rtsp import free_port


def test_ten_nodes_starting_at_once_migrate_once(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    caplog.set_level(logging.INFO, logger="streamer.cluster.database")
    start = threading.Barrier(10)
    errors: list[BaseException] = []

    def node() -> None:
        start.wait()
        try:
            PostgresDatabase(url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=node) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with psycopg.connect(url) as connection:
        versions = connection.execute("SELECT version FROM streamer_schema ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))
    migrated = [r for r in caplog.records if "schema migrated to version" in r.getMessage()]
    assert len(migrated) == len(MIGRATIONS)  # by one node; the nine others found it done


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@ss/w:rd@db:5432/s", "postgresql://u:p%40ss%2Fw%3Ard@db:5432/s"),
        ("postgresql://u:p%40ss@db/s", "postgresql://u:p%40ss@db/s"),  # already encoded
        ("postgresql://db/s", "postgresql://db/s"),
        ("postgres://me@db/s?sslmode=require", "postgres://me@db/s?sslmode=require"),
    ],
)
def test_a_password_may_be_written_as_typed(url: str, expected: str) -> None:
    assert quoted(url) == expected


def test_a_database_made_without_a_locale_serves_the_cluster(
    postgres_server: PostgresServer,
) -> None:
    """initdb without a locale makes SQL_ASCII databases, whose text psycopg would return
    as bytes: node names and plates still come back as text."""
    database = PostgresDatabase(postgres_server.new_database(encoding="SQL_ASCII"))
    leases = Leases(database, node_config(database.url, "node-1"), ["gate-in", "gate-out"])
    assert leases.round({}).held == {"gate-in", "gate-out"}
    SqlDues(database).set("KA01AB1234", 500.0, "Fine")
    assert SqlDues(database).lookup("KA01AB1234").amount == 500.0
    database.close()


def test_a_database_newer_than_this_streamer_is_refused(postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    PostgresDatabase(url).close()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO streamer_schema (version) VALUES (%s)", (99,))
    with pytest.raises(StoreError, match=r"has schema version 99; this streamer knows up to"):
        PostgresDatabase(url)


@pytest.mark.parametrize("problem", ["no server", "wrong password"])
def test_an_unusable_database_stops_the_start_in_one_line(
    tmp_path: Path, postgres_server: PostgresServer, problem: str
) -> None:
    if problem == "no server":  # the password as typed, not percent-encoded
        url = f"postgresql://streamer:{PASSWORD}@127.0.0.1:{free_port()}/streamer"
    else:
        url = postgres_server.url(password="wrong")
    config = cluster_config(tmp_path, url)
    with pytest.raises(StartupError) as error:
        asyncio.run(Service(config, ServiceOptions(install_signal_handlers=False)).run())
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("cluster.database: postgresql://streamer:***@127.0.0.1:")
    assert PASSWORD not in message
    expected = "Connection refused" if problem == "no server" else "password authentication"
    assert expected in message
