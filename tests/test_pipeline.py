"""One camera end to end, with the speed settings: detection rate, motion gate, region."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamer.config import DetectionConfig
from streamer.demo import DemoManifest
from streamer.detect import Detector
from streamer.ocr import OcrEngine
from streamer.pipeline import CameraStats
from streamer.service import Service

from conftest import make_config


def replay(
    tmp_path: Path,
    video: Path,
    detector: Detector,
    engine: OcrEngine,
    **detection: object,
) -> CameraStats:
    config = make_config(
        tmp_path,
        cameras=[{"name": "cam", "source": str(video)}],
        detection=detection,
    )
    service = Service(config, install_signal_handlers=False, detector=detector, engine=engine)
    return asyncio.run(service.run())["cam"]


def test_rate_and_motion_gate_read_the_same_plates_from_a_fraction_of_the_frames(
    tmp_path: Path, short_clip: DemoManifest, detector: Detector, engine: OcrEngine
) -> None:
    every = replay(
        tmp_path / "every", short_clip.path, detector, engine, rate_fps=0, motion_gate=False
    )
    gated = replay(tmp_path / "gated", short_clip.path, detector, engine)
    plates = sorted(v.plate for v in short_clip.vehicles)
    assert sorted(e.plate_number for e in every.events_list) == plates
    assert sorted(e.plate_number for e in gated.events_list) == plates
    assert every.frames == gated.frames == short_clip.frame_count
    assert every.detected == short_clip.frame_count
    seconds = short_clip.frame_count / short_clip.fps
    # rate_fps frames a second are examined; the empty road between vehicles is still.
    rate = DetectionConfig().rate_fps
    assert gated.detected + gated.still == pytest.approx(seconds * rate, abs=1)
    assert gated.still >= 4


def test_region_of_interest_limits_detection(
    tmp_path: Path, short_clip: DemoManifest, detector: Detector, engine: OcrEngine
) -> None:
    sky = replay(tmp_path / "sky", short_clip.path, detector, engine, roi=[0, 0, 1, 0.15])
    assert sky.events == 0
    road = replay(tmp_path / "road", short_clip.path, detector, engine, roi=[0, 0.3, 1, 1])
    assert sorted(e.plate_number for e in road.events_list) == sorted(
        v.plate for v in short_clip.vehicles
    )
    # Boxes come back in frame coordinates.
    assert all(e.bbox[1] >= 0.3 * 720 for e in road.events_list)
