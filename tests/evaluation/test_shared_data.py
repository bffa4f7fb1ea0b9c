"""The real videos of ``../shared/data`` (skipped when the folder is absent).

``videos/events.csv`` labels three vehicles in ``parkpow_cars.mp4`` (a Vietnamese toll
lane) and ``intel_car-detection.mp4`` as a negative control that must give no event.
"""

from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamer.evaluation.evaluate import char_accuracy
from streamer.events import PlateEvent
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.reading.plates import normalise
from streamer.service import Service
from streamer.vision.detect import YoloDetector
from streamer.vision.vehicles import VehicleDetector

from support.daemon import SHARED_DATA, make_config, vehicles


@dataclass(frozen=True)
class Label:
    plate: str
    start_s: float
    end_s: float


def labels(shared: Path, video: str) -> list[Label]:
    """The labelled vehicles of ``video`` (approximate times like ``~5.0`` are taken as is)."""
    with (shared / "videos" / "events.csv").open() as stream:
        rows = [row for row in csv.DictReader(stream) if row["video"] == video and row["plate"]]
    return [
        Label(
            normalise(row["plate"]),
            float(row["approx_start_s"].strip("~")),
            float(row["approx_end_s"].strip("~")),
        )
        for row in rows
    ]


#: The parkpow vehicles as they look (type and colour labelled by eye) and the way they
#: move while their plate is whole in view: the first stands at the barrier until its plate
#: leaves the frame's bottom edge (no direction), the others drive at the camera.
TOLL_VEHICLES = {
    "34A36837": (("car", "silver"), None),
    "34A23126": (("car", "red"), "approaching"),
    "89C20339": (("truck", "blue"), "approaching"),
}


def replay(
    video: Path,
    tmp_path: Path,
    detector: YoloDetector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
) -> list[PlateEvent]:
    config = make_config(
        tmp_path, cameras=[{"name": "cam", "source": str(video)}], plates={"formats": ["vn"]}
    )
    options = ServiceOptions(
        install_signal_handlers=False, detector=detector, engine=engine, vehicles=vehicle_detector
    )
    service = Service(config, options)
    stats = asyncio.run(service.run())
    assert stats["cam"].error is None
    # One event_id per vehicle in the log (its early event, if any, then its final one).
    records = [json.loads(line) for line in config.events_log.read_text().splitlines()]
    finals = list(stats["cam"].events_list)
    assert [r["event_id"] for r in vehicles(records)] == [e.event_id for e in finals]
    return finals


def test_negative_control_gives_no_event(
    shared_data: Path,
    tmp_path: Path,
    detector: YoloDetector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
) -> None:
    """Parked cars seen from above: no plate event, and none of a vehicle without one."""
    video = shared_data / "videos" / "intel_car-detection.mp4"
    events = replay(video, tmp_path, detector, engine, vehicle_detector)
    assert [(e.plate_number, e.reason) for e in events] == []


@pytest.fixture(scope="module")
def toll_lane(
    tmp_path_factory: pytest.TempPathFactory,
    detector: YoloDetector,
    engine: OcrEngine,
    vehicle_detector: VehicleDetector,
) -> tuple[list[Label], list[PlateEvent]]:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    events = replay(
        SHARED_DATA / "videos" / "parkpow_cars.mp4",
        tmp_path_factory.mktemp("toll"),
        detector,
        engine,
        vehicle_detector,
    )
    return labels(SHARED_DATA, "parkpow_cars.mp4"), events


def test_toll_lane_gives_an_event_while_each_labelled_vehicle_passes(
    toll_lane: tuple[list[Label], list[PlateEvent]],
) -> None:
    labelled, events = toll_lane
    for label in labelled:
        during = [
            e
            for e in events
            if e.media_time_s is not None and label.start_s <= e.media_time_s <= label.end_s
        ]
        assert during, (label, [(e.plate_number, e.media_time_s) for e in events])


def test_toll_lane_never_gives_two_events_for_one_vehicle(
    toll_lane: tuple[list[Label], list[PlateEvent]],
) -> None:
    labelled, events = toll_lane
    for label in labelled:
        similar = [
            e.plate_number
            for e in events
            if e.plate_number is not None and char_accuracy(e.plate_number, label.plate) >= 0.5
        ]
        assert len(similar) <= 1, (label, similar)


def test_toll_lane_reads_every_labelled_plate_exactly(
    toll_lane: tuple[list[Label], list[PlateEvent]],
) -> None:
    labelled, events = toll_lane
    assert {label.plate for label in labelled} <= {e.plate_number for e in events}


def test_toll_lane_events_carry_each_vehicle_its_type_colour_and_direction(
    toll_lane: tuple[list[Label], list[PlateEvent]],
) -> None:
    _, events = toll_lane
    seen = {
        e.plate_number: (
            e.vehicle and (e.vehicle.type, e.vehicle.colour),
            e.direction and e.direction.travel,
        )
        for e in events
        if e.plate_number in TOLL_VEHICLES
    }
    assert seen == TOLL_VEHICLES


def test_toll_lane_gives_no_event_without_a_plate(
    toll_lane: tuple[list[Label], list[PlateEvent]],
) -> None:
    """Every vehicle's plate is read there: none is reported as unread."""
    _, events = toll_lane
    assert [(e.reason, e.media_time_s) for e in events if e.plate_number is None] == []
