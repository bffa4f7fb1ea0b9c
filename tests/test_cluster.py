"""Daemons sharing one PostgreSQL database (``cluster.database``): its schema, migrated once
however many nodes start at once, and the dues and lists every node sees. The server is
Debian's PostgreSQL, started by the tests on a free port."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import requests
import yaml
from cluster_nodes import LEASE_S, api, cluster_nodes, holders, rtsp_cameras, wait_for
from postgres import PASSWORD, PostgresServer, postgres_missing
from receiver import Receiver
from rtsp import RtspServer, free_port

from streamer.cluster.database import MIGRATIONS, PostgresDatabase, quoted
from streamer.cluster.history import ClusterHistory
from streamer.cluster.leases import Leases, share
from streamer.config import ClusterConfig, Config, DedupConfig, load_config
from streamer.events import NOT_FOUND, PlateEvent
from streamer.node import ServiceOptions, StartupError
from streamer.reading.ocr import OcrEngine
from streamer.reporter import Deduplicator
from streamer.service import Service
from streamer.sources.demo import DemoManifest
from streamer.stores.dues import SqlDues
from streamer.stores.records import StoreError
from streamer.vision.detect import YoloDetector

from conftest import ServiceThread, make_config


def cluster_config(tmp_path: Path, url: str, **settings: object) -> Config:
    return make_config(tmp_path, cluster={"database": url}, **settings)


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
    finals: dict[str, dict[str, Any]] = {}

    def both_read() -> bool:
        if node_b.events_log.exists():
            lines = node_b.events_log.read_text().splitlines()
            records = [json.loads(line) for line in lines]
            finals.update((e["plate_number"], e) for e in records if e.get("phase") == "final")
        return len(finals) == 2

    with ServiceThread(node_b, detector, engine):  # a node runs until it is stopped
        wait_for(both_read, 60)
    assert finals[plate]["dues_result"]["dues_pending"] is True
    assert finals[plate]["dues_result"]["amount"] == 250.0
    assert finals[plate]["lists"] == ["banned"]
    other = short_clip.vehicles[0].plate
    assert finals[other]["dues_result"]["found"] is False


@pytest.mark.parametrize(
    ("counts", "me", "expected"),
    [
        ({"a": 0}, "a", (0, 6)),  # alone: everything
        ({"a": 6, "b": 0}, "a", (3, 0)),  # a second node: hand half over
        ({"a": 3, "b": 0}, "b", (0, 3)),
        ({"a": 3, "b": 3, "c": 0}, "a", (1, 0)),  # a third: each gives what is over 2
        ({"a": 3, "b": 3, "c": 0}, "b", (1, 0)),
        ({"a": 2, "b": 2, "c": 0}, "c", (0, 2)),
        ({"a": 3, "b": 3, "c": 1, "d": 0}, "a", (1, 0)),  # 7 over 4: 2, 2, 2, 1 at most
        ({"a": 2, "b": 2, "c": 2, "d": 1}, "a", (0, 0)),
        ({"a": 2, "b": 2, "c": 2, "d": 0}, "a", (1, 0)),  # d has less than 1: the busiest
        ({"a": 1, "b": 2, "c": 2, "d": 0}, "b", (1, 0)),  # (first by name) gives one
        ({"a": 1, "b": 2, "c": 2, "d": 0}, "c", (0, 0)),
        ({"a": 2, "b": 2, "c": 2}, "c", (0, 0)),  # balanced: nothing moves
        ({"a": 2, "b": 2}, "a", (0, 1)),  # a dead node's two cameras: one each
    ],
)
def test_the_share_of_each_node(counts: dict[str, int], me: str, expected: tuple[int, int]) -> None:
    assert share(6, counts, dict.fromkeys(counts, 13), me) == expected


def test_a_node_never_holds_more_than_it_can() -> None:
    assert share(6, {"a": 0, "b": 0}, {"a": 2, "b": 13}, "a") == (0, 2)
    assert share(6, {"a": 3}, {"a": 2}, "a") == (1, 0)


def settle(nodes: list[Leases], rounds: int = 6) -> tuple[dict[str, int], int]:
    """``rounds`` renewal rounds over ``nodes`` in turn, handing over as told; each node's
    cameras at the end, and how many hand-overs it took."""
    moves = 0
    held: dict[str, int] = {}
    for _ in range(rounds):
        for node in nodes:
            result = node.round({})
            node.release(result.release)
            moves += len(result.release)
            held[node.node] = len(result.held - result.release)
    return held, moves


def test_cameras_spread_over_the_nodes_with_as_few_moves_as_possible(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    database = PostgresDatabase(url)
    cameras = [f"cam-{n}" for n in range(6)]
    a, b, c = (Leases(database, node_config(url, name), cameras) for name in "abc")
    assert settle([a]) == ({"a": 6}, 0)
    assert settle([a, b]) == ({"a": 3, "b": 3}, 3)
    assert settle([a, b, c]) == ({"a": 2, "b": 2, "c": 2}, 2)  # one from a, one from b
    overview = a.overview()
    assert sorted(overview["cameras"]) == cameras
    assert {n["name"]: len(n["cameras"]) for n in overview["nodes"]} == {"a": 2, "b": 2, "c": 2}
    database.close()


def test_a_dead_nodes_cameras_are_free_only_when_its_leases_expire(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    database = PostgresDatabase(url)
    cameras = ["cam-1", "cam-2"]
    a, b = (Leases(database, node_config(url, name, lease_s=3), cameras) for name in "ab")
    assert a.round({}).held == {"cam-1", "cam-2"}
    assert b.round({}).held == set()  # a is alive: its leases hold
    time.sleep(3.2)  # a stops renewing (it died)
    assert b.round({}).held == {"cam-1", "cam-2"}
    assert a.round({}).held == set()  # a is back: its leases are gone, it must not read
    database.close()


def node_config(url: str, node: str, lease_s: float = 10) -> ClusterConfig:
    return ClusterConfig(database=url, node=node, lease_s=lease_s)


def test_three_nodes_share_six_cameras_and_take_over_from_a_dead_one(
    tmp_path: Path,
    postgres_server: PostgresServer,
    demo_video: DemoManifest,
    server_factory: Callable[..., RtspServer],
) -> None:
    """Three ``streamer run`` nodes, six RTSP cameras looping the demo, a webhook
    receiver. A node killed with SIGKILL: its cameras are read again by the others within
    ``lease_s`` + 10 s. A node stopped with SIGTERM: its cameras move at once."""
    cameras = rtsp_cameras(server_factory, demo_video.path, 6)
    receiver = Receiver(free_port()).start()
    url = postgres_server.new_database()
    try:
        with cluster_nodes(tmp_path, url, cameras, receiver.url, ["n1", "n2", "n3"]) as nodes:
            wait_for(lambda: sorted(Counter(holders(nodes).values()).values()) == [2, 2, 2], 90)
            overview = api(nodes["n1"][1], "/api/cluster")
            alive = sorted(n["name"] for n in overview["nodes"] if n["alive"])
            assert alive == ["n1", "n2", "n3"]
            # SIGKILL n1: its two cameras come back on n2 and n3.
            victim = set(overview["nodes"][0]["cameras"])
            nodes["n1"][0].kill()
            killed_at = time.monotonic()
            survivors = {name: node for name, node in nodes.items() if name != "n1"}

            def recovered() -> bool:
                held = holders(survivors)
                return set(held) == {c["name"] for c in cameras} and "n1" not in held.values()

            wait_for(recovered, LEASE_S + 10)
            failover = time.monotonic() - killed_at
            assert victim <= set(holders(survivors))
            logging.getLogger(__name__).info("failover in %.1f s", failover)
            # SIGTERM n2: it finishes its tracks, releases its cameras, n3 takes them all.
            process, _ = nodes["n2"]
            process.terminate()
            assert process.wait(30) == 0
            stopped_at = time.monotonic()
            last = {"n3": nodes["n3"]}
            wait_for(lambda: Counter(holders(last).values()) == {"n3": 6}, LEASE_S * 2 + 10)
            handover = time.monotonic() - stopped_at
            logging.getLogger(__name__).info("hand-over on SIGTERM in %.1f s", handover)
            assert handover < LEASE_S  # released at once, not waited out
            # Every camera's vehicles reach the receiver, whichever node read them.
            wait_for(
                lambda: {e["camera"] for e in receiver.unique().values()} == set(holders(last)),
                60,
            )
            # n3's /api/events shows the cluster's events, those of nodes gone too.
            listed = api(nodes["n3"][1], "/api/events?limit=1000")["events"]
            finals = {e["event_id"] for e in receiver.unique().values()}
            assert finals <= {e["event_id"] for e in listed}
            assert {e["node"] for e in listed} > {"n3"}
    finally:
        receiver.stop()


def test_a_database_outage_stops_the_cameras_and_loses_no_event(
    tmp_path: Path, demo_video: DemoManifest, server_factory: Callable[..., RtspServer]
) -> None:
    """The database is killed for 20 s: the nodes stop their cameras before the leases
    could pass to anyone, keep every event they had, and read again once it is back."""
    if reason := postgres_missing():
        pytest.skip(reason)
    cameras = rtsp_cameras(server_factory, demo_video.path, 2)
    receiver = Receiver(free_port()).start()
    with PostgresServer() as server:
        url = server.new_database()
        try:
            with cluster_nodes(tmp_path, url, cameras, receiver.url, ["n1", "n2"]) as nodes:
                wait_for(lambda: Counter(holders(nodes).values()) == {"n1": 1, "n2": 1}, 90)

                def reading() -> int:  # cameras the nodes read, each by its own /health
                    return sum(len(api(u, "/health")["cameras"]) for _, u in nodes.values())

                down_at, down_wall = time.monotonic(), time.time()
                server.stop("immediate")
                wait_for(lambda: reading() == 0, LEASE_S + 10)
                # Each node decided to stop before the leases could pass to another node.
                for name in nodes:
                    fenced = fencing_time(tmp_path / name / "stderr.log") - down_wall
                    assert 0 < fenced < LEASE_S, (name, fenced)
                time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
                server.start()
                back = wait_for(lambda: len(holders(nodes)) == 2, LEASE_S * 2 + 15)
                logging.getLogger(__name__).info(
                    "fenced %.1f s after the database died; reading again %.1f s after it "
                    "came back",
                    fenced,
                    back,
                )

                # Nothing lost: every final event the nodes logged reaches the receiver.
                def logged() -> set[str]:
                    keys = set()
                    for name in nodes:
                        for line in (tmp_path / name / "events.jsonl").read_text().splitlines():
                            record = json.loads(line)
                            if record.get("phase") == "final":
                                keys.add(f"{record['event_id']}:final")
                    return keys

                wait_for(lambda: bool(logged()) and logged() <= set(receiver.unique()), 60)
                for name in nodes:  # no track or sink failed for want of the database
                    log = (tmp_path / name / "stderr.log").read_text()
                    assert "Traceback" not in log
                    assert not re.search(r"track \d+ failed|sink \w+ failed", log)
        finally:
            receiver.stop()


def fencing_time(log: Path) -> float:
    """When a node's log says it stopped its cameras for want of renewals (Unix time)."""
    for line in log.read_text().splitlines():
        if "leases not renewed" in line:
            moment = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return moment.timestamp()
    raise AssertionError(f"{log}: the node never stopped its cameras")


def test_every_node_shows_the_whole_clusters_events(
    tmp_path: Path,
    postgres_server: PostgresServer,
    short_clip: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    """Node B reads the clip; node A, serving only its API, lists B's events, and its
    dashboard's live stream shows them as B writes them."""
    url = postgres_server.new_database()
    database = PostgresDatabase(url)
    shared = ClusterHistory(database, "b", tmp_path / "evidence", 30)
    reader = cluster_config(
        tmp_path / "b",
        url,
        cameras=[{"name": "gate", "source": str(short_clip.path)}],
        recordings={"directory": str(tmp_path / "evidence")},
    )
    options = ServiceOptions(
        install_signal_handlers=False, detector=detector, engine=engine, extra_sinks=[shared]
    )
    front = cluster_config(
        tmp_path / "a",
        url,
        http={"enabled": True, "port": 0},
        cameras=[{"name": "none", "source": str(tmp_path / "none.mp4"), "enabled": False}],
    )
    plates = {v.plate for v in short_clip.vehicles}
    with ServiceThread(front, detector, engine, serve_only=True) as a:
        streamed: list[dict[str, Any]] = []
        listening = threading.Thread(target=read_stream, args=(a.url, streamed, 4), daemon=True)
        listening.start()
        time.sleep(1.0)  # connected, and A listens to the database
        asyncio.run(Service(reader.model_copy(update={"cluster": None}), options).run())
        listening.join(30)
        # Live: each vehicle's early and final event, as B wrote them.
        assert sorted((e["plate_number"], e["phase"]) for e in streamed) == sorted(
            (plate, phase) for plate in plates for phase in ("early", "final")
        )
        assert {e["node"] for e in streamed} == {"b"}
        listed = api(a.url, "/api/events")
        assert listed["total"] == 2  # one per vehicle: the final replaced the early
        assert {e["plate_number"] for e in listed["events"]} == plates
        assert {e["node"] for e in listed["events"]} == {"b"}
        assert all(e["crop_url"].startswith("/evidence/gate/") for e in listed["events"])
        dues = api(a.url, "/api/events?dues_pending=true&limit=1")
        assert dues["total"] == 0
        one = api(a.url, f"/api/events?plate={short_clip.vehicles[1].plate[:4]}&camera=gate")
        assert [e["plate_number"] for e in one["events"]] == [short_clip.vehicles[1].plate]
        assert api(a.url, "/api/events?limit=1&offset=1")["total"] == 2
    database.close()


def read_stream(node_url: str, records: list[dict[str, Any]], count: int) -> None:
    """The plate events of a node's live stream (``/api/events/stream``), until ``count``."""
    with requests.get(f"{node_url}/api/events/stream", stream=True, timeout=60) as answer:
        for line in answer.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                record = json.loads(line[len("data: ") :])
                if record.get("type") == "plate":
                    records.append(record)
                    if len(records) >= count:
                        return


def test_the_node_taking_a_camera_knows_the_plates_it_saw_last(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """A vehicle in view while its camera moved is merged into the event the node before
    wrote, not reported again."""
    database = PostgresDatabase(postgres_server.new_database())
    shared = ClusterHistory(database, "n1", tmp_path, 30)
    now = datetime.now(UTC)
    seen = PlateEvent(
        camera="gate",
        plate_number="KA05MN4821",
        confidence=0.9,
        detector_confidence=0.8,
        bbox=(1, 2, 3, 4),
        first_seen=now - timedelta(seconds=3),
        last_seen=now,
        media_time_s=None,
        frames=20,
        format_valid=True,
        dues_result=NOT_FOUND,
    )
    shared.send(seen)
    shared.send(replace(seen, camera="other", plate_number="MH12XY7395", event_id="other-1"))
    recent = shared.recent("gate", 60)
    assert list(recent) == ["KA05MN4821"]
    assert abs((recent["KA05MN4821"] - now).total_seconds()) < 0.01
    dedup = Deduplicator(DedupConfig(window_s=60), recent)
    assert not dedup.admit("KA05MN4821", now + timedelta(seconds=2), now + timedelta(seconds=5))
    assert dedup.admit("TN09CK2046", now + timedelta(seconds=2), now + timedelta(seconds=5))
    database.close()
