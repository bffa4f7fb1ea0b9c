"""The cluster's events: every node shows them all; a node taking a camera knows the
plates it saw last."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from streamer.cluster.database import PostgresDatabase
from streamer.cluster.history import ClusterHistory
from streamer.config import DedupConfig
from streamer.events import NOT_FOUND, PlateEvent
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.reporter import Deduplicator
from streamer.service import Service
from streamer.sources.demo import DemoManifest
from streamer.vision.detect import YoloDetector

from support.cluster_nodes import api, cluster_config
from support.daemon import ServiceThread
from support.postgres import PostgresServer


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
