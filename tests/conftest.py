"""Shared fixtures: the real detector and OCR engine, generated video, shared data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamer.cluster.database import PostgresDatabase
from streamer.config import Config
from streamer.reading.engines import engine_named
from streamer.reading.ocr import OcrEngine, TesseractEngine
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.stores.database import Database, SqliteDatabase
from streamer.vision.detect import YoloDetector
from streamer.vision.vehicles import OpenVinoVehicles

from support.daemon import SHARED_DATA
from support.mosquitto import Broker, mosquitto_missing
from support.postgres import PostgresServer, postgres_missing
from support.rtsp import RtspServer


@pytest.fixture(scope="session")
def detector() -> YoloDetector:
    """The real plate model (OpenVINO export when available)."""
    return YoloDetector(Config().model)


@pytest.fixture(scope="session")
def vehicle_detector() -> OpenVinoVehicles:
    """The real vehicle model (COCO YOLOv8n on OpenVINO)."""
    return OpenVinoVehicles(Config().vehicles)


@pytest.fixture(scope="session")
def engine() -> OcrEngine:
    """The default OCR engine (the plate recogniser fused with PP-OCRv4), real."""
    return engine_named(Config().reader.engine, formats=Config().cameras[0].plates.formats)


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


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RtspServer]]:
    """Starts RTSP servers (see tests/support/rtsp.py); they are stopped after the test."""
    servers: list[RtspServer] = []

    def start(video: Path, **kwargs: object) -> RtspServer:
        server = RtspServer(video, **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def shared_data() -> Iterator[Path]:
    """``../shared/data``; the test is skipped when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


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
