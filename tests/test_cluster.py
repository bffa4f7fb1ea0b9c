"""Daemons sharing one PostgreSQL database (``cluster.database``): its schema, migrated once
however many nodes start at once, and the dues and lists every node sees. The server is
Debian's PostgreSQL, started by the tests on a free port."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import requests
import yaml
from postgres import PASSWORD, PostgresServer
from rtsp import free_port

from streamer.config import Config, load_config
from streamer.reading.ocr import OcrEngine
from streamer.service import Service, ServiceOptions, StartupError
from streamer.stores.postgres import MIGRATIONS, PostgresDatabase, quoted
from streamer.stores.records import StoreError
from streamer.tools.demo import DemoManifest
from streamer.vision.detect import YoloDetector

from conftest import ServiceThread, make_config, vehicles


def cluster_config(tmp_path: Path, url: str, **settings: object) -> Config:
    return make_config(tmp_path, cluster={"database": url}, **settings)


def test_ten_nodes_starting_at_once_migrate_once(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    caplog.set_level(logging.INFO, logger="streamer.stores.postgres")
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


def test_dues_changed_through_one_node_count_for_the_next_event_on_another(
    tmp_path: Path,
    postgres_server: PostgresServer,
    short_clip: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Node A serves the API; node B reads the clip. The second vehicle's dues are set
    through A's API, and its list entry with the CLI: B's events carry both."""
    url = postgres_server.new_database().replace(quote(PASSWORD, safe=""), "${PG_PASSWORD}")
    assert "${PG_PASSWORD}" in url
    monkeypatch.setenv("PG_PASSWORD", PASSWORD)
    plate = short_clip.vehicles[1].plate
    node_a = cluster_config(
        tmp_path / "a",
        url.replace("${PG_PASSWORD}", PASSWORD),  # as typed: '@' and ':' not encoded
        lists={"banned": None},
        http={"enabled": True, "port": 0},
        cameras=[{"name": "none", "source": str(tmp_path / "none.mp4"), "enabled": False}],
    )
    with ServiceThread(node_a, detector, engine, serve_only=True) as a:
        answer = requests.put(
            f"{a.url}/api/dues/{plate}", json={"amount": 250, "message": "Toll"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
    config_file = tmp_path / "b.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "cluster": {"database": url},
                "lists": {"banned": None},
                "cameras": [{"name": "gate", "source": str(short_clip.path)}],
                "events_log": str(tmp_path / "b" / "events.jsonl"),
                "recordings": {"directory": str(tmp_path / "b" / "evidence")},
                "outbox": {"database": str(tmp_path / "b" / "outbox.sqlite")},
                "http": {"enabled": False},
            }
        )
    )
    config = str(config_file)
    added = subprocess.run(
        [sys.executable, "-m", "streamer", "lists", "add", "banned", plate, "--config", config],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    node_b = load_config(config_file)  # ${PG_PASSWORD} from the environment
    options = ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    asyncio.run(Service(node_b, options).run())
    records = [json.loads(line) for line in node_b.events_log.read_text().splitlines()]
    finals = {event["plate_number"]: event for event in vehicles(records)}
    assert finals[plate]["dues_result"]["dues_pending"] is True
    assert finals[plate]["dues_result"]["amount"] == 250.0
    assert finals[plate]["lists"] == ["banned"]
    other = short_clip.vehicles[0].plate
    assert finals[other]["dues_result"]["found"] is False
