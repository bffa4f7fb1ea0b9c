"""Text lines in a plate crop: the main line, its margins, its angle, and the line turned level."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.reading.lines import LineBox, cut_line, main_line, turned

from support.factories import box, turned_box


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([], None),
        # state name above, slogan below: the number is the tallest line
        (
            [box(60, 2, 240, 30), box(20, 40, 300, 120), box(90, 125, 230, 145)],
            box(20, 40, 300, 120),
        ),
        # a number split by a logo: both halves are kept, the sticker is not
        (
            [box(10, 40, 120, 120), box(170, 42, 300, 118), box(270, 120, 310, 140)],
            box(10, 40, 300, 120),
        ),
        # small stacked letters beside the number are left out
        (
            [box(5, 45, 25, 75), box(5, 80, 25, 110), box(40, 40, 300, 120)],
            box(40, 40, 300, 120),
        ),
        # a tall box that is not level with the number (a logo below it) is not joined
        ([box(40, 10, 300, 70), box(10, 60, 60, 140)], box(10, 60, 60, 140)),
    ],
)
def test_main_line_keeps_the_tallest_text(boxes: list[LineBox], expected: LineBox | None) -> None:
    assert main_line(boxes) == expected


def test_cut_line_adds_margins_and_stays_in_the_crop() -> None:
    crop = np.zeros((100, 200, 3), np.uint8)
    assert cut_line(crop, box(10, 20, 190, 80)).shape == (72, 198, 3)
    assert cut_line(crop, box(0, 0, 200, 100)).shape == (100, 200, 3)


@pytest.mark.parametrize("angle", [0.0, 10.0, -25.0, 40.0])
def test_a_line_box_knows_its_angle_and_thickness(angle: float) -> None:
    box = turned_box(angle)
    assert box.angle == pytest.approx(angle, abs=0.01)
    assert box.thickness == pytest.approx(24)
    assert box.length == pytest.approx(160)
    # without the detector's corners: level, as thick as the box is high
    assert LineBox(0, 0, 160, 24).angle == 0.0
    assert LineBox(0, 0, 160, 24).thickness == 24


@pytest.mark.parametrize("angle", [12.0, -30.0])
def test_turning_levels_the_line_and_keeps_the_crop(angle: float) -> None:
    crop = np.zeros((120, 200, 3), np.uint8)
    image, (moved,) = turned(crop, [turned_box(angle)], angle)
    assert moved.angle == pytest.approx(0.0, abs=0.01)
    assert moved.height == pytest.approx(24, abs=0.5)  # level: as high as it is thick
    assert image.shape[0] > crop.shape[0]
    assert image.shape[1] > crop.shape[1]
    assert 0 <= moved.x1 < moved.x2 <= image.shape[1]
    assert 0 <= moved.y1 < moved.y2 <= image.shape[0]
