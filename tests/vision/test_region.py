"""Plates small in a wide frame: a region of interest on the lane, enlarged to the
detector's input by its letterbox, reads every plate exactly. (The whole frame, shrunk to
fit, reads some of them, how many depending on the precision: `bench/roi.py` compares.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from streamer.config import ModelConfig
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoVehicle
from streamer.vision.detect import Detector
from streamer.vision.region import Roi, region
from streamer.vision.yolo import letterbox

from support.daemon import frame_at, make_config, vehicles
from support.overview import Overview, render_overview


@pytest.fixture(scope="module")
def overview(tmp_path_factory: pytest.TempPathFactory) -> Overview:
    """A 1920x1080 overview whose lane is 240 pixels wide: plates at most ~22 px tall."""
    cars = (DemoVehicle("MH12DE1433", 0.0, ""), DemoVehicle("TN09BC5678", 250.0, "Toll"))
    return render_overview(
        tmp_path_factory.mktemp("overview") / "overview.mp4",
        cars,
        lane_width=240,
        seconds_per_vehicle=2.5,
        gap_seconds=0.8,
        seed=7,
    )


def replay(
    tmp_path: Path, overview: Overview, detector: Detector, engine: OcrEngine, roi: Roi | None
) -> list[dict[str, Any]]:
    """The final event of each vehicle (one per vehicle checked) from the events log."""
    config = make_config(
        tmp_path,
        cameras=[{"name": "cam", "source": str(overview.path)}],
        detection={"roi": roi},
    )
    options = ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    asyncio.run(Service(config, options).run())
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    return vehicles(json.loads(line) for line in lines)


def test_the_region_is_enlarged_to_the_detector_input(overview: Overview) -> None:
    lane = region(frame_at(overview.path, 0.0), overview.roi)
    assert lane.shape[:2] == overview.roi_pixels[::-1]
    fitted = letterbox(lane, ModelConfig().image_size)
    assert fitted.image.shape[1] == ModelConfig().image_size
    assert fitted.gain[0] > 2  # 272 pixels wide, seen 640 wide


def test_a_region_on_the_lane_reads_each_vehicle_once(
    tmp_path: Path, overview: Overview, detector: Detector, engine: OcrEngine
) -> None:
    events = replay(tmp_path, overview, detector, engine, overview.roi)
    assert [event["plate_number"] for event in events] == [car.plate for car in overview.vehicles]
    x1, y1, x2, y2 = overview.lane
    for event in events:  # boxes in the frame's coordinates, on the lane
        left, top, right, bottom = event["bbox"]
        assert x1 <= left < right <= x2
        assert y1 <= top < bottom <= y2
        assert bottom - top < 25  # plates some 20 pixels tall
