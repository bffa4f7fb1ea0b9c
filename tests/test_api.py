"""The HTTP API against the real server, with real frames of the demo recording."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from rtsp import free_port

from streamer.reading.ocr import OcrEngine
from streamer.sources.demo import DemoManifest
from streamer.vision.detect import YoloDetector

from conftest import ServiceThread, frame_at, make_config

TOKEN = "t0k3n"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def call(
    method: str,
    url: str,
    *,
    data: Any = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request; returns the status and the JSON (or text) answer."""

    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, url, data=data, json=json_body, headers=AUTH if headers is None else headers
            ) as response,
        ):
            body = await response.read()
            try:
                return response.status, json.loads(body)
            except ValueError:
                try:
                    return response.status, body.decode()
                except UnicodeDecodeError:
                    return response.status, body

    return asyncio.run(go())


def upload(image_bytes: bytes, name: str = "frame.png") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", image_bytes, filename=name, content_type="image/png")
    return form


def upload_as(field: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, b"\x89PNG", filename="x.png", content_type="image/png")
    return form


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, detector: YoloDetector, engine: OcrEngine
) -> Iterator[ServiceThread]:
    """``streamer serve``: the API alone, with a token and a 1 MB upload limit."""
    tmp_path = tmp_path_factory.mktemp("api")
    config = make_config(
        tmp_path, http={"enabled": True, "port": 0, "token": TOKEN, "max_upload_mb": 1}
    )
    with ServiceThread(config, detector, engine, serve_only=True) as running:
        yield running


@pytest.fixture(scope="module")
def close_frame(demo_video: DemoManifest) -> bytes:
    """A frame with the second demo vehicle close to the camera."""
    _, last = demo_video.appearances[1]
    return png(frame_at(demo_video.path, last - 0.3))


def test_health_needs_no_token(server: ServiceThread) -> None:
    assert call("GET", f"{server.url}/health", headers={}) == (200, {"status": "ok", "cameras": {}})


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer wrong"}, "", 401),
        (AUTH, "", 200),
        ({}, f"?token={TOKEN}", 200),
        ({"Authorization": TOKEN}, "", 401),
    ],
)
def test_token_guards_everything_else(
    server: ServiceThread, headers: dict[str, str], query: str, status: int
) -> None:
    for path in ("/api/events", "/api/cameras", "/metrics", "/"):
        code, body = call("GET", f"{server.url}{path}{query}", headers=headers)
        assert code == status, (path, body)
        if status == 401:
            assert "token" in body["error"]


def test_detect(server: ServiceThread, close_frame: bytes) -> None:
    status, body = call("POST", f"{server.url}/detect", data=upload(close_frame))
    assert status == 200
    assert set(body) == {"found", "confidence", "box_xyxy", "plate_jpg_hex"}
    assert body["found"] is True
    assert body["confidence"] > 0.4
    x1, y1, x2, y2 = body["box_xyxy"]
    assert 0 <= x1 < x2 <= 1280
    assert 0 <= y1 < y2 <= 720
    crop = cv2.imdecode(
        np.frombuffer(bytes.fromhex(body["plate_jpg_hex"]), np.uint8), cv2.IMREAD_COLOR
    )
    assert crop is not None
    assert crop.shape[1] > 2 * crop.shape[0]


def test_detect_on_an_empty_road(server: ServiceThread, demo_video: DemoManifest) -> None:
    road = png(frame_at(demo_video.path, 0.5))  # before the first vehicle
    assert call("POST", f"{server.url}/detect", data=upload(road)) == (
        200,
        {"found": False, "confidence": 0.0, "box_xyxy": None, "plate_jpg_hex": None},
    )


def test_ocr_reads_the_crop_detect_returned(
    server: ServiceThread, close_frame: bytes, demo_video: DemoManifest
) -> None:
    _, detected = call("POST", f"{server.url}/detect", data=upload(close_frame))
    crop = bytes.fromhex(detected["plate_jpg_hex"])
    assert call("POST", f"{server.url}/ocr", data=upload(crop, "plate.jpg")) == (
        200,
        {"success": True, "text": demo_video.vehicles[1].plate},
    )


def test_process_and_dues(
    server: ServiceThread, close_frame: bytes, demo_video: DemoManifest
) -> None:
    plate = demo_video.vehicles[1].plate
    status, body = call(
        "PUT",
        f"{server.url}/api/dues/{plate}",
        json_body={"amount": 1500, "message": "Unpaid parking"},
    )
    assert (status, body["dues_pending"]) == (200, True)
    status, body = call("POST", f"{server.url}/process", data=upload(close_frame))
    assert status == 200
    assert set(body) >= {"success", "plate_number", "detector_confidence", "bbox", "dues_result"}
    assert body["success"] is True
    assert body["plate_number"] == plate
    assert body["dues_result"] == {
        "found": True,
        "dues_pending": True,
        "amount": 1500.0,
        "message": "Unpaid parking",
    }
    assert call("POST", f"{server.url}/check_dues", json_body={"plate_number": plate}) == (
        200,
        {
            "plate_number": plate,
            "found": True,
            "dues_pending": True,
            "amount": 1500.0,
            "message": "Unpaid parking",
        },
    )


def test_dues_api(server: ServiceThread) -> None:
    url = f"{server.url}/api/dues/ka-01-ab-9999"
    assert call("GET", url)[0] == 404
    status, body = call("PUT", url, json_body={"amount": 40.5})
    assert (status, body) == (
        200,
        {
            "plate_number": "KA01AB9999",
            "found": True,
            "dues_pending": True,
            "amount": 40.5,
            "message": "Dues pending",
        },
    )
    assert call("GET", url)[1]["amount"] == 40.5
    assert call("DELETE", url)[0] == 204
    assert call("DELETE", url)[0] == 404
    assert (
        call("POST", f"{server.url}/check_dues", json_body={"plate_number": "KA01AB9999"})[1][
            "found"
        ]
        is False
    )


JSON = {**AUTH, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        (
            "POST",
            "/process",
            {"data": upload(b"%PDF-1.4 not an image", "a.pdf")},
            400,
            "file: not an image",
        ),
        ("POST", "/detect", {"data": upload(b"")}, 400, "file: empty file"),
        ("POST", "/ocr", {"json_body": {"file": "x"}}, 400, "multipart/form-data"),
        ("POST", "/process", {"data": upload_as("image")}, 400, "file: required"),
        ("POST", "/process", {"data": upload(bytes(2_000_000))}, 413, "larger than 1 MB"),
        (
            "POST",
            "/check_dues",
            {"data": b"{not json", "headers": {**AUTH, "Content-Type": "application/json"}},
            400,
            "body: expected a JSON object",
        ),
        ("POST", "/check_dues", {"json_body": {"plate": "KA01"}}, 400, "plate_number:"),
        ("POST", "/check_dues", {"json_body": {"plate_number": 7}}, 400, "plate_number:"),
        ("PUT", "/api/dues/KA01AB1234", {"json_body": {"amount": -5}}, 400, "amount:"),
        ("PUT", "/api/dues/KA01AB1234", {"json_body": {"amount": "lots"}}, 400, "amount:"),
        *[
            ("PUT", "/api/dues/KA01AB1234", {"data": body, "headers": JSON}, 400, "finite")
            for body in (b'{"amount": NaN}', b'{"amount": Infinity}', b'{"amount": 1e400}')
        ],
        (
            "PUT",
            "/api/dues/KA01AB1234",
            {"data": b'{"amount": 1' + b"0" * 400 + b"}", "headers": JSON},
            400,
            "finite",
        ),
        ("GET", "/api/dues/%D0%9A%D0%9001", {}, 400, "only A-Z and 0-9"),
        ("GET", "/api/events?limit=0", {}, 400, "limit: must be between 1 and 1000"),
        ("GET", "/api/events?dues_pending=maybe", {}, 400, "dues_pending: expected true"),
        ("GET", "/evidence/gate/none.jpg", {}, 404, "no such evidence file"),
        ("GET", "/nowhere", {}, 404, "Not Found"),
    ],
)
def test_bad_requests_get_clear_errors(
    server: ServiceThread, method: str, path: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    code, body = call(method, f"{server.url}{path}", **kwargs)
    assert code == status, body
    assert message in body["error"]


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


def test_fifty_concurrent_process_requests(
    server: ServiceThread, close_frame: bytes, demo_video: DemoManifest
) -> None:
    busy = 0

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        nonlocal busy
        while True:  # past http.max_concurrent_images: 503, and retry after the time given
            async with session.post(
                f"{server.url}/process", data=upload(close_frame), headers=AUTH
            ) as response:
                if response.status == 503:
                    busy += 1
                    await asyncio.sleep(float(response.headers["Retry-After"]) / 10)
                    continue
                assert response.status == 200
                result: dict[str, Any] = await response.json()
                return result

    async def all_of_them() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(one(session) for _ in range(50)))

    results = asyncio.run(all_of_them())
    assert [r["plate_number"] for r in results] == [demo_video.vehicles[1].plate] * 50
    assert busy > 0  # 50 at once is past the bound of 8


@pytest.fixture
def live_daemon(
    tmp_path: Path, short_clip: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> Iterator[ServiceThread]:
    """A daemon replaying the short clip in real time, with its API on a free port.

    A second camera points at a port where nothing listens: it keeps retrying, so the
    daemon keeps running after the clip has ended.
    """
    config = make_config(
        tmp_path,
        cameras=[
            {"name": "gate", "source": str(short_clip.path), "realtime": True},
            {"name": "standby", "source": f"rtsp://127.0.0.1:{free_port()}/none"},
        ],
        http={"enabled": True, "port": 0},
    )
    with ServiceThread(config, detector, engine) as running:
        yield running


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def test_dues_changed_at_run_time_reach_the_next_event(
    live_daemon: ServiceThread, short_clip: DemoManifest
) -> None:
    first, second = (v.plate for v in short_clip.vehicles)
    url = live_daemon.url
    wait_for(
        lambda: call("GET", f"{url}/api/events", headers={})[1]["total"] == 1, 30, "the first event"
    )
    assert (
        call(
            "PUT",
            f"{url}/api/dues/{second}",
            json_body={"amount": 99, "message": "Toll"},
            headers={},
        )[0]
        == 200
    )
    events = wait_for(
        lambda: (
            (body := call("GET", f"{url}/api/events", headers={})[1])["total"] == 2
            and body["events"]
        ),
        30,
        "the second event",
    )
    assert [e["plate_number"] for e in events] == [second, first]  # newest first
    assert events[0]["dues_result"] == {
        "found": True,
        "dues_pending": True,
        "amount": 99.0,
        "message": "Toll",
    }
    assert events[1]["dues_result"]["found"] is False
    _status, dues_only = call("GET", f"{url}/api/events?dues_pending=true", headers={})
    assert [e["plate_number"] for e in dues_only["events"]] == [second]
    _, by_plate = call("GET", f"{url}/api/events?plate={first[:4]}&camera=gate&limit=1", headers={})
    assert (by_plate["total"], by_plate["events"][0]["plate_number"]) == (1, first)
    crop = call("GET", url + events[0]["crop_url"], headers={})
    assert crop[0] == 200
    _, metrics = call("GET", f"{url}/metrics", headers={})
    assert 'streamer_events_total{camera="gate",dues_pending="true"} 1.0' in metrics
    assert 'streamer_events_total{camera="gate",dues_pending="false"} 1.0' in metrics


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
    gate, standby = wait_for(
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
