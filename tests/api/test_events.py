"""/api/events, the live stream, /api/cameras, /metrics and the evidence files."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from streamer.sources.demo import DemoManifest

from support.client import TOKEN, call, png
from support.daemon import ServiceThread, eventually


def test_evidence_never_leaves_its_folder(server: ServiceThread, tmp_path: Path) -> None:
    folder = server.service.config.recordings.directory / "gate" / "2026-01-01"
    folder.mkdir(parents=True, exist_ok=True)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for you")
    (folder / "leak.jpg").symlink_to(secret)
    (folder / "real.jpg").write_bytes(png(np.zeros((8, 8, 3), np.uint8)))
    assert call("GET", f"{server.url}/evidence/gate/2026-01-01/real.jpg")[0] == 200
    status, body = call("GET", f"{server.url}/evidence/gate/2026-01-01/leak.jpg")
    assert (status, body) == (404, {"error": "no such evidence file"})
    status, _ = call("GET", f"{server.url}/evidence/%2E%2E/%2E%2E{secret}")
    assert status == 404


def test_cameras_metrics_and_the_live_stream(
    live_daemon: ServiceThread, short_clip: DemoManifest
) -> None:
    url = live_daemon.url

    async def listen() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/api/events/stream") as response,
        ):
            assert response.headers["Content-Type"] == "text/event-stream"
            kind = None
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "plate":
                    event = json.loads(line.removeprefix("data: "))
                    if event["phase"] == "final":  # each vehicle's early event came first
                        received.append(event)
                    if len(received) == len(short_clip.vehicles):
                        return received
        return received

    streamed = asyncio.run(asyncio.wait_for(listen(), 60))
    assert [e["plate_number"] for e in streamed] == [v.plate for v in short_clip.vehicles]
    gate, standby = eventually(
        lambda: (
            (cameras := call("GET", f"{url}/api/cameras", headers={})[1]["cameras"])[0]["events"]
            == 2
            and cameras
        ),
        10,
        "both events counted",
    )
    camera = gate
    assert standby["status"] == "offline"
    assert standby["source"].startswith("rtsp://127.0.0.1:")
    assert camera["name"] == "gate"
    assert camera["status"] == "finished"
    assert camera["frames"] > 50
    assert camera["events"] == 2
    assert camera["last_frame_at"].endswith("Z")
    _, metrics = call("GET", f"{url}/metrics", headers={})
    assert 'streamer_events_total{camera="gate",dues_pending="false"} 2.0' in metrics
    assert 'streamer_frames_processed_total{camera="gate"} ' in metrics
    assert 'streamer_detect_seconds_count{camera="gate"}' in metrics
    # every read of a crop is timed: early reads and the final vote's remaining crops
    reads = re.search(r'streamer_ocr_seconds_count\{camera="gate"\} (\S+)', metrics)
    assert reads is not None
    assert float(reads.group(1)) >= 2
    assert 'streamer_camera_up{camera="standby"} 0.0' in metrics
    # /health reads the same snapshot as /api/cameras
    health = call("GET", f"{url}/health", headers={})[1]
    assert health["cameras"] == {"gate": "finished", "standby": "offline"}


def test_300_live_streams_leave_the_api_and_health_answering(server: ServiceThread) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    limit = server.service.config.http.stream_limit
    subscribers: list[socket.socket] = []
    heads: list[bytes] = []
    try:
        for _ in range(300):
            sock = socket.create_connection((host, int(port)), timeout=5)
            subscribers.append(sock)
            sock.sendall(
                b"GET /api/events/stream?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                % TOKEN.encode()
            )
            try:
                heads.append(sock.recv(4096))  # the stream's head (and ": connected")
            except OSError as error:
                heads.append(repr(error).encode())
        started = time.monotonic()
        assert call("GET", f"{server.url}/health", headers={})[0] == 200
        assert call("GET", f"{server.url}/api/cameras")[0] == 200
        assert time.monotonic() - started < 2
        statuses = [head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else head for head in heads]
        assert statuses.count(b"200") == limit, statuses
        assert statuses.count(b"503") == 300 - limit, statuses
        refused = next(head for head in heads if b" 503 " in head)
        assert b"Retry-After: " in refused
        assert b"http.max_streams" in refused
    finally:
        for sock in subscribers:
            sock.close()
