"""The vehicle model: fetched and verified, the vehicles of real frames (their type and
colour, labelled by eye), which vehicle holds a plate, and nothing on an empty road."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.sources.demo import DemoManifest
from streamer.vision.models import VEHICLE_MODEL, sha256_of
from streamer.vision.vehicles import Vehicle, VehicleDetector, coloured, holding

from support.daemon import frame_at

#: The parkpow clip's vehicles, labelled by looking at the frames: when each is near, its
#: type and its colour.
PARKPOW = [(2.0, "car", "silver"), (6.5, "car", "red"), (19.0, "truck", "blue")]


def test_the_cached_model_is_the_verified_one() -> None:
    assert sha256_of(VEHICLE_MODEL.path) == VEHICLE_MODEL.sha256


@pytest.mark.parametrize(("seconds", "kind", "colour"), PARKPOW)
def test_the_parkpow_vehicles_have_their_type_and_colour(
    shared_data: Path, vehicle_detector: VehicleDetector, seconds: float, kind: str, colour: str
) -> None:
    image = frame_at(shared_data / "videos" / "parkpow_cars.mp4", seconds)
    found = vehicle_detector.vehicles(image)
    nearest = max(found, key=lambda v: (v.box[2] - v.box[0]) * (v.box[3] - v.box[1]))
    named = coloured(image, nearest)
    assert (named.type, named.colour) == (kind, colour)


def test_no_vehicle_on_an_empty_road(
    demo_video: DemoManifest, vehicle_detector: VehicleDetector
) -> None:
    assert vehicle_detector.vehicles(frame_at(demo_video.path, 0.5)) == []


def test_the_vehicle_holding_a_plate_is_the_smallest_box_around_it() -> None:
    truck = Vehicle("truck", 0.8, (0, 0, 1000, 700))
    car = Vehicle("car", 0.9, (300, 300, 700, 600))
    assert holding([truck, car], (450, 500, 550, 530)) == car
    assert holding([truck, car], (50, 500, 150, 530)) == truck
    assert holding([car], (450, 310, 550, 330)) is None  # in its top third: not its plate
    assert holding([car], (900, 500, 990, 530)) is None
