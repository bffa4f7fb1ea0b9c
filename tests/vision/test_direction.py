"""Which way a vehicle moved, from the boxes of its track."""

from __future__ import annotations

import pytest

from streamer.vision.direction import Box, direction_of


def moving(start: Box, dx: float, dy: float, grow: float, steps: int = 6) -> list[Box]:
    """``steps`` boxes from ``start``, each moved by (dx, dy) and grown by ``grow``."""
    boxes = []
    x1, y1, x2, y2 = start
    for step in range(steps):
        scale = grow**step
        cx, cy = (x1 + x2) / 2 + dx * step, (y1 + y2) / 2 + dy * step
        w, h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
        boxes.append((round(cx - w), round(cy - h), round(cx + w), round(cy + h)))
    return boxes


@pytest.mark.parametrize(
    ("path", "travel", "angles"),
    [
        (moving((600, 300, 680, 320), 0, 20, 1.1), "approaching", (260, 280)),
        (moving((600, 500, 720, 530), 0, -20, 0.9), "receding", (80, 100)),
        (moving((100, 400, 180, 420), 60, 0, 1.0), "right", (350, 370)),
        (moving((900, 400, 980, 420), -60, 0, 1.0), "left", (170, 190)),
        # A lane that bends: down and to the left while growing is still towards the camera.
        (moving((465, 541, 552, 585), -6, 4, 1.01), "approaching", (180, 270)),
    ],
)
def test_the_way_a_box_moves(path: list[Box], travel: str, angles: tuple[float, float]) -> None:
    direction = direction_of(path)
    assert direction is not None
    assert direction.travel == travel
    low, high = angles
    assert low <= direction.angle <= high or low <= direction.angle + 360 <= high


def test_no_direction_for_a_vehicle_standing_still_or_seen_once() -> None:
    assert direction_of(moving((600, 300, 680, 320), 1, 1, 1.0)) is None
    assert direction_of([(600, 300, 680, 320)]) is None
