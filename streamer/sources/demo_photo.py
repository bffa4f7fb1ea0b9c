"""Synthetic photos: several demo vehicles side by side on the demo's road.

Drawn as the demo video's (:mod:`streamer.sources.demo`), for tests of photos with several
plates, and of vehicles of known colour. Deterministic per seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamer.sources import demo
from streamer.sources.demo import DemoVehicle, ImageBGR


def vehicle_box(scale: float, gx: float, gy: float) -> tuple[int, int, int, int]:
    """The box ``(x1, y1, x2, y2)`` of a vehicle's body (without its shadow) in frame
    pixels for a pose, as :func:`render_photo` places it."""
    w = demo._CAR_W * scale
    top = gy - (demo._GROUND - 40) * scale
    return round(gx - w / 2), round(top), round(gx + w / 2), round(gy)


def render_photo(
    vehicles: Sequence[DemoVehicle],
    *,
    size: tuple[int, int] = (1280, 720),
    seed: int = 0,
    scale: float = 0.3,
) -> tuple[ImageBGR, list[tuple[int, int, int, int]]]:
    """A photo of ``vehicles`` side by side on the demo's road, each ``scale`` times its
    sprite's size, nearer ones lower; returns it and each vehicle's :func:`vehicle_box`.

    Example:
        >>> image, boxes = render_photo([DemoVehicle("KA05MN4821", 0.0, "")] * 3)
        >>> image.shape, len(boxes)
        ((720, 1280, 3), 3)
    """
    width, height = size
    rng = np.random.default_rng(seed)
    frame = demo._background(size, rng)
    count = max(1, len(vehicles))
    boxes = []
    for index, vehicle in enumerate(vehicles):
        sprite = demo._vehicle_sprite(vehicle, index, rng)
        gx = width * (index + 0.5) / count
        gy = height * (0.78 + 0.04 * (index % 2))
        demo._composite(frame, sprite, scale, gx, gy)
        boxes.append(vehicle_box(scale, gx, gy))
    blurred = cv2.GaussianBlur(frame, (3, 3), 0.6).astype(np.int16)
    grain = rng.normal(0.0, 3.0, frame.shape).astype(np.int16)
    return np.clip(blurred + grain, 0, 255).astype(np.uint8), boxes
