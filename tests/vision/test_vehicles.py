"""The vehicle model: fetched and verified, the vehicles of real frames (their type and
colour, labelled by eye), which vehicle holds a plate, and nothing on an empty road."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import VehiclesConfig
from streamer.sources.demo import DemoManifest
from streamer.vision.models import VEHICLE_MODEL, sha256_of
from streamer.vision.precision import has_bf16
from streamer.vision.vehicles import (
    OpenVinoVehicles,
    Vehicle,
    VehicleDetector,
    coloured,
    holding,
    iou,
)

from support.daemon import frame_at

#: The parkpow clip's vehicles, labelled by looking at the frames: when each is near, its
#: type and its colour.
PARKPOW = [(2.0, "car", "silver"), (6.5, "car", "red"), (19.0, "truck", "blue")]


def test_the_cached_model_is_the_verified_one() -> None:
    assert sha256_of(VEHICLE_MODEL.path) == VEHICLE_MODEL.sha256


@pytest.fixture(scope="module", params=["f32", "bf16"])
def each_precision(request: pytest.FixtureRequest) -> OpenVinoVehicles:
    """The vehicle model in each precision this CPU can run."""
    if request.param == "bf16" and not has_bf16():
        pytest.skip("this CPU has no bfloat16")
    return OpenVinoVehicles(VehiclesConfig(precision=request.param))


def nearest(vehicles: list[Vehicle]) -> Vehicle:
    return max(vehicles, key=lambda v: (v.box[2] - v.box[0]) * (v.box[3] - v.box[1]))


@pytest.mark.parametrize(("seconds", "kind", "colour"), PARKPOW)
def test_the_parkpow_vehicles_have_their_type_and_colour(
    shared_data: Path, each_precision: OpenVinoVehicles, seconds: float, kind: str, colour: str
) -> None:
    image = frame_at(shared_data / "videos" / "parkpow_cars.mp4", seconds)
    named = coloured(image, nearest(each_precision.vehicles(image)))
    assert (named.type, named.colour) == (kind, colour)


def test_the_chosen_precision_finds_the_vehicles_float32_does(shared_data: Path) -> None:
    chosen = OpenVinoVehicles(VehiclesConfig())
    reference = OpenVinoVehicles(VehiclesConfig(precision="f32"))
    for seconds, _, _ in PARKPOW:
        image = frame_at(shared_data / "videos" / "parkpow_cars.mp4", seconds)
        ours, theirs = nearest(chosen.vehicles(image)), nearest(reference.vehicles(image))
        assert ours.type == theirs.type
        assert iou(ours.box, theirs.box) >= 0.9, (chosen.precision, seconds)


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
