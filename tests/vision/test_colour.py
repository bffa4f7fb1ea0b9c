"""Vehicle colours from their pixels: rendered vehicles of every paint, and the frames
where no colour can be told (infrared, night)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.sources.demo import PAINTS, DemoVehicle
from streamer.sources.demo_photo import render_photo
from streamer.vision.colour import COLOURS, vehicle_colour


@pytest.mark.parametrize("paint", sorted(PAINTS))
def test_a_rendered_vehicle_is_named_its_paint(paint: str) -> None:
    image, boxes = render_photo([DemoVehicle("KA05MN4821", 0.0, "", colour=paint)], scale=0.5)
    colour = vehicle_colour(image, boxes[0])
    assert colour is not None
    assert colour.name == paint
    assert 0.35 <= colour.confidence <= 1.0


def test_the_names_are_the_paints() -> None:
    assert set(PAINTS) == set(COLOURS)


def test_no_colour_on_a_grey_infrared_frame() -> None:
    image, boxes = render_photo([DemoVehicle("KA05MN4821", 0.0, "", colour="red")], scale=0.5)
    grey = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert vehicle_colour(grey, boxes[0]) is None


def test_no_colour_at_night() -> None:
    image, boxes = render_photo([DemoVehicle("KA05MN4821", 0.0, "", colour="red")], scale=0.5)
    night = (image * 0.15).astype(np.uint8)
    assert vehicle_colour(night, boxes[0]) is None
