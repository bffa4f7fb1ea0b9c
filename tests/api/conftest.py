"""The daemons the API tests talk to: one serving the API only (module-wide), and one
reading a live camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.reading.ocr import OcrEngine
from streamer.sources.demo import DemoManifest
from streamer.vision.detect import YoloDetector

from support.client import TOKEN, png
from support.daemon import ServiceThread, frame_at, make_config
from support.rtsp import free_port


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
