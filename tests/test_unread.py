"""Vehicles whose plate was not read, and the direction of every vehicle, end to end: the
real detectors and OCR on rendered clips (a blank plate, cars driving away) and on the
shared videos, each replayed by the daemon as it runs."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streamer.config import Config
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.vision.detect import Detector
from streamer.vision.vehicles import VehicleDetector

from support.daemon import make_config, vehicles


def replay(
    tmp_path: Path,
    video: Path,
    detector: Detector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
    **overrides: object,
) -> list[dict[str, Any]]:
    """Every event the daemon logs for ``video``, in order."""
    overrides.setdefault("cameras", [{"name": "cam", "source": str(video)}])
    config: Config = make_config(tmp_path, **overrides)
    options = ServiceOptions(
        install_signal_handlers=False,
        detector=detector,
        engine=engine,
        vehicles=vehicle_detector,
    )
    asyncio.run(Service(config, options).run())
    return [json.loads(line) for line in config.events_log.read_text().splitlines()]


@pytest.fixture(scope="module")
def blank_plate(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """A red car whose plate is blank, then a car with a plate."""
    return render_video(
        tmp_path_factory.mktemp("blank") / "blank.mp4",
        [
            DemoVehicle("KA05MN4821", 0.0, "", colour="red", blank=True),
            DemoVehicle("MH12XY7395", 0.0, "", colour="blue"),
        ],
        seconds_per_vehicle=4.0,
        seed=3,
    )


def test_a_car_with_a_blank_plate_gives_one_unreadable_event_while_in_view(
    tmp_path: Path,
    blank_plate: DemoManifest,
    detector: Detector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
) -> None:
    events = replay(tmp_path, blank_plate.path, detector, engine, vehicle_detector)
    finals = vehicles(events)
    assert [(e["plate_number"], e["reason"], e["direction"]) for e in finals] == [
        (None, "unreadable", "approaching"),
        ("MH12XY7395", None, "approaching"),
    ]
    unread = [e for e in events if e["event_id"] == finals[0]["event_id"]]
    early = unread[0]
    assert early["phase"] == "early"
    # Sent while the car is in view, at most max_event_delay_s after its plate was seen.
    first, last = blank_plate.appearances[0]
    delay = Config().events.max_event_delay_s
    seen_for = (_moment(early["last_seen"]) - _moment(early["first_seen"])).total_seconds()
    assert seen_for <= delay + 0.5
    assert _moment(early["last_seen"]) <= _moment(early["first_seen"]) + _seconds(last - first)
    assert (early["dues_result"]["dues_pending"], early["lists"]) == (False, [])
    assert early["crop_path"]
    assert Path(early["crop_path"]).is_file()


def test_unreadable_plates_can_be_turned_off(
    tmp_path: Path,
    blank_plate: DemoManifest,
    detector: Detector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
) -> None:
    events = replay(
        tmp_path,
        blank_plate.path,
        detector,
        engine,
        vehicle_detector,
        events={"unreadable": False},
    )
    assert [e["plate_number"] for e in vehicles(events)] == ["MH12XY7395"]


def test_cars_driving_away_are_receding_and_named_as_the_camera_says(
    tmp_path: Path, detector: Detector, engine: OcrEngine, vehicle_detector: VehicleDetector
) -> None:
    clip = render_video(
        tmp_path / "away.mp4",
        [
            DemoVehicle("KA05MN4821", 0.0, "", colour="blue", away=True),
            DemoVehicle("MH12XY7395", 0.0, "", colour="white", away=True),
        ],
        seed=4,
    )
    events = replay(
        tmp_path,
        clip.path,
        detector,
        engine,
        vehicle_detector,
        cameras=[
            {
                "name": "cam",
                "source": str(clip.path),
                "direction": {"approaching": "entry", "receding": "exit"},
            }
        ],
    )
    finals = vehicles(events)
    assert [e["plate_number"] for e in finals] == ["KA05MN4821", "MH12XY7395"]
    assert [(e["direction"], e["direction_name"]) for e in finals] == [("receding", "exit")] * 2
    assert all(45 <= e["direction_angle"] <= 135 for e in finals)  # up the frame


def test_every_demo_vehicle_is_approaching_and_no_new_event_appears(
    tmp_path: Path,
    demo_video: DemoManifest,
    detector: Detector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
) -> None:
    finals = vehicles(replay(tmp_path, demo_video.path, detector, engine, vehicle_detector))
    assert [e["plate_number"] for e in finals] == [v.plate for v in demo_video.vehicles]
    assert [e["direction"] for e in finals] == ["approaching"] * len(finals)
    assert all(225 <= e["direction_angle"] <= 315 for e in finals)  # down the frame


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
