"""Shared fixtures: the real detector and OCR engine, generated video, shared data."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamer.config import Config, parse_config
from streamer.demo import DemoManifest, DemoVehicle, render_video
from streamer.detect import YoloDetector
from streamer.ocr import OcrEngine, TesseractEngine, engine_named

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


def make_config(tmp_path: Path, **overrides: object) -> Config:
    """A config whose files all live in ``tmp_path``."""
    data: dict[str, object] = {
        "cameras": [{"name": "cam", "source": str(tmp_path / "missing.mp4")}],
        "events_log": str(tmp_path / "events.jsonl"),
        "dues": {"database": str(tmp_path / "dues.sqlite")},
        "recordings": {"directory": str(tmp_path / "evidence")},
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


class ServiceThread:
    """A :class:`Service` running in its own thread and event loop, for tests that talk to
    its HTTP API from outside (HTTP clients, a browser)."""

    def __init__(
        self,
        config: Config,
        detector: YoloDetector,
        engine: OcrEngine,
        serve_only: bool = False,
    ) -> None:
        from streamer.service import Service

        self.service = Service(
            config,
            install_signal_handlers=False,
            detector=detector,
            engine=engine,
            serve_only=serve_only,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> ServiceThread:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            task = asyncio.create_task(self.service.run())
            while self.service.api is None or self.service.api.port is None:
                if task.done():
                    break
                await asyncio.sleep(0.02)
            ready.set()
            await task

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:  # reported by the test that uses it
                self.error = error
                ready.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(60), "service did not start"
        if self.error is not None:
            raise self.error
        return self

    @property
    def url(self) -> str:
        assert self.service.api is not None
        assert self.service.api.port is not None
        return f"http://127.0.0.1:{self.service.api.port}"

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.service.request_stop)
            self._thread.join(30)
