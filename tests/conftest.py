"""Shared fixtures: the real detector and OCR engine, generated video, shared data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mosquitto import Broker, mosquitto_missing
from postgres import PostgresServer, postgres_missing
from rtsp import RtspServer

from streamer import node, threaded
from streamer.cluster.database import PostgresDatabase
from streamer.config import Config, parse_config
from streamer.events import Event
from streamer.reading.ocr import OcrEngine, TesseractEngine, engine_named
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.stores.database import Database, SqliteDatabase
from streamer.vision.detect import YoloDetector

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def detector() -> YoloDetector:
    """The real plate model (OpenVINO export when available)."""
    return YoloDetector(Config().model)


@pytest.fixture(scope="session")
def engine() -> OcrEngine:
    """The default OCR engine (PP-OCRv4 on OpenVINO), real."""
    return engine_named(Config().reader.engine)


@pytest.fixture(scope="session")
def tesseract() -> TesseractEngine:
    """Real Tesseract, in-process."""
    return TesseractEngine()


@pytest.fixture(scope="session")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """The project's demo recording, rendered once per test session."""
    return render_video(tmp_path_factory.mktemp("demo") / "demo.mp4")


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """A two-vehicle clip, for tests that need a video but not the whole demo."""
    vehicles = (DemoVehicle("MH12DE1433", 0.0, ""), DemoVehicle("TN09BC5678", 250.0, "Toll"))
    return render_video(
        tmp_path_factory.mktemp("clip") / "clip.mp4",
        vehicles,
        seconds_per_vehicle=2.5,
        gap_seconds=0.8,
        seed=7,
    )


def frame_at(video: Path, seconds: float) -> np.ndarray:
    """The frame of ``video`` at ``seconds``."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_MSEC, seconds * 1000)
    ok, image = capture.read()
    capture.release()
    assert ok, f"no frame at {seconds}s in {video}"
    return image


def vehicles(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The final plate event of each vehicle, in the order the vehicles first appeared.

    Checks what a consumer relies on: one ``event_id`` per vehicle, at most one early
    event and then exactly one final event per ``event_id``.
    """
    phases: dict[str, list[str]] = {}
    finals: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("type") != "plate":
            continue
        event_id = str(record["event_id"])
        phases.setdefault(event_id, []).append(str(record["phase"]))
        if record["phase"] == "final":
            finals[event_id] = record
    for event_id, seen in phases.items():
        assert seen in (["final"], ["early", "final"]), (event_id, seen)
    return [finals[event_id] for event_id in phases]


def write_yaml(config: Config, path: Path) -> Path:
    """``config`` as a YAML file the ``streamer`` command can load."""
    path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    return path


def without_cameras(config: Config) -> Config:
    """The same daemon with its cameras disabled: a restart that only delivers."""
    cameras = [camera.model_copy(update={"enabled": False}) for camera in config.cameras]
    return config.model_copy(update={"cameras": cameras})


def kill_when(config: Config, path: Path, condition: Callable[[], bool]) -> None:
    """Run ``streamer run`` on ``config`` (written to ``path``) and SIGKILL it as soon as
    ``condition()`` holds."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--config", str(write_yaml(config, path))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not condition():
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()


def restart_without_cameras(config: Config, path: Path) -> None:
    """``streamer run`` again on ``config`` with its cameras disabled, to its end (it
    delivers what the killed one left)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "run",
            "--config",
            str(write_yaml(without_cameras(config), path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RtspServer]]:
    """Starts RTSP servers (see tests/rtsp.py); they are stopped after the test."""
    servers: list[RtspServer] = []

    def start(video: Path, **kwargs: object) -> RtspServer:
        server = RtspServer(video, **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_config(tmp_path: Path, **overrides: object) -> Config:
    """A config whose files all live in ``tmp_path``."""
    data: dict[str, object] = {
        "cameras": [{"name": "cam", "source": str(tmp_path / "missing.mp4")}],
        "events_log": str(tmp_path / "events.jsonl"),
        "dues": {"database": str(tmp_path / "dues.sqlite")},
        "recordings": {"directory": str(tmp_path / "evidence")},
        "outbox": {"database": str(tmp_path / "outbox.sqlite")},
        "http": {"enabled": False},
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def shared_data() -> Iterator[Path]:
    """``../shared/data``; the test is skipped when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


class Clock:
    """A sink after the events log: when each event was logged."""

    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def send(self, event: Event) -> None:
        self.logged[event.key] = time.time()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto without a password."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    with Broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL, in a folder of its own on a free port, for the whole session."""
    if reason := postgres_missing():
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Each store test runs on both databases: an SQLite file, and a new PostgreSQL
    database migrated to the current schema."""
    if request.param == "sqlite":
        yield SqliteDatabase(tmp_path / "sub" / "dues.sqlite")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = PostgresDatabase(server.new_database())
    yield database
    database.close()


class ServiceThread(threaded.ServiceThread):
    """The service in its own thread, with the session's detector and OCR engine, for tests
    that talk to its HTTP API from outside (HTTP clients, a browser)."""

    def __init__(
        self, config: Config, detector: YoloDetector, engine: OcrEngine, serve_only: bool = False
    ) -> None:
        options = node.ServiceOptions(detector=detector, engine=engine, serve_only=serve_only)
        super().__init__(config, options)
