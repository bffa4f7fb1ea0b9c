"""A cluster node: dues changed through one node count on another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml

from streamer.config import load_config
from streamer.reading.ocr import OcrEngine
from streamer.sources.demo import DemoManifest
from streamer.vision.detect import YoloDetector

from support.cluster_nodes import cluster_config, wait_for
from support.daemon import ServiceThread
from support.postgres import PASSWORD, PostgresServer


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
