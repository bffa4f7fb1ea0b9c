"""A synthetic plate photographed: on a car, seen at an angle, lit, blurred, noisy, small,
compressed, and cut out as the plate detector would cut it (:func:`photograph`).

The degradations are those of the cameras the daemon reads: perspective and rotation,
focus and motion blur, sensor noise, low light, glare and shadows, infrared grey,
JPEG blocks, and plates only 50 pixels wide. The crop is the detector's box with a
random margin (at times cutting into the plate's border), or, for some, the number's
own line as :func:`streamer.reading.lines.cut_line` cuts it.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.training.draw import random_colour
from streamer.training.pieces import Plate


def _car(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A bumper or a car's body around the plate: a colour, a gradient, a few lines."""
    image = np.empty((height, width, 3), np.float32)
    image[:] = random_colour(rng)
    ramp = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.2), height, dtype=np.float32)
    image *= ramp[:, None, None]
    for _ in range(int(rng.integers(0, 4))):
        y = int(rng.uniform(0, height))
        cv2.line(
            image,
            (0, y),
            (width, y + int(rng.normal(0, 10))),
            random_colour(rng).tolist(),
            int(rng.integers(1, 6)),
        )
    return np.clip(image, 0, 1)


def _light(image: np.ndarray, rng: np.random.Generator, night: float = 0.15) -> np.ndarray:
    """Exposure, contrast, a colour cast, glare, a shadow, and ``night`` of the time low
    light."""
    image = image * rng.uniform(0.7, 1.2) + rng.uniform(-0.1, 0.1)
    image = image * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    height, width = image.shape[:2]
    if rng.random() < 0.2:  # glare: a bright soft spot
        layer = np.zeros((height, width), np.float32)
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(0.1, 0.4) * width), int(rng.uniform(0.1, 0.5) * height))
        cv2.ellipse(layer, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        # Blurred at an eighth of the size: a soft spot needs no detail, and is 60x cheaper.
        small = cv2.resize(
            layer, (max(1, width // 8), max(1, height // 8)), interpolation=cv2.INTER_AREA
        )
        small = cv2.GaussianBlur(small, (0, 0), max(axes) / 16 + 1)
        glow: np.ndarray = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        image = image + glow[..., None] * rng.uniform(0.3, 1.0)
    if rng.random() < 0.2:  # a shadow over part of the plate
        layer = np.ones((height, width), np.float32)
        x = int(rng.uniform(0, width))
        points = np.array(
            [[x, 0], [width, 0], [width, height], [x + int(rng.normal(0, width / 4)), height]]
        )
        cv2.fillPoly(layer, [points.astype(np.int32)], float(rng.uniform(0.3, 0.7)))
        image = image * cv2.GaussianBlur(layer, (0, 0), 3)[..., None]
    if rng.random() < night:
        image = image * rng.uniform(0.15, 0.45)
    gamma = rng.uniform(0.7, 1.4)
    return np.clip(image, 0, 1) ** gamma


def _warp(plate: Plate, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plate on a car, seen at an angle: the image, the plate's corners and its
    number's corners in it."""
    height, width = plate.image.shape[:2]
    pad = int(max(height, width) * 0.3)
    canvas = _car(height + 2 * pad, width + 2 * pad, rng)
    canvas[pad : pad + height, pad : pad + width] = plate.image
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32) + pad
    x1, y1, x2, y2 = plate.text_box
    text = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32) + pad
    tilt = rng.normal(0, 0.05, (4, 2)) * [width, height] if rng.random() < 0.7 else np.zeros((4, 2))
    angle = np.radians(rng.normal(0, 4) if rng.random() < 0.8 else rng.uniform(-15, 15))
    shear = rng.normal(0, 0.08)
    centre = corners.mean(axis=0)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turn = turn @ np.array([[1, shear], [0, 1]])
    target = (corners - centre + tilt) @ turn.T + centre
    matrix = cv2.getPerspectiveTransform(corners, target.astype(np.float32))
    warped = cv2.warpPerspective(
        canvas,
        matrix,
        (canvas.shape[1], canvas.shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    moved = cv2.perspectiveTransform(np.stack([corners, text]), matrix)
    return warped, moved[0], moved[1]


def _cut(
    image: np.ndarray, corners: np.ndarray, text: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The detector's box around ``corners`` with a random margin; at times the number's
    line alone, as the still reader's line view cuts it."""
    if rng.random() < 0.12:
        x1, y1 = text.min(axis=0)
        x2, y2 = text.max(axis=0)
        h = y2 - y1
        margins = (
            rng.uniform(0.05, 0.4) * h,
            rng.uniform(0.0, 0.2) * h,
            rng.uniform(0.05, 0.4) * h,
            rng.uniform(0.0, 0.2) * h,
        )
    else:
        x1, y1 = corners.min(axis=0)
        x2, y2 = corners.max(axis=0)
        w, h = x2 - x1, y2 - y1
        margins = tuple(rng.uniform(-0.03, 0.12) * side for side in (w, h, w, h))
    left = int(max(0, x1 - margins[0]))
    top = int(max(0, y1 - margins[1]))
    right = int(min(image.shape[1], x2 + margins[2]))
    bottom = int(min(image.shape[0], y2 + margins[3]))
    return image[top:bottom, left:right]


def _degrade(crop: np.ndarray, plate_width: float, rng: np.random.Generator) -> np.ndarray:
    """The crop at a camera's resolution: shrunk so the plate is ``plate_width`` pixels
    wide, blurred, noisy and JPEG-compressed (uint8 BGR)."""
    scale = min(1.0, plate_width / max(1, crop.shape[1]))
    if rng.random() < 0.3:
        sigma = rng.uniform(0.3, 1.5)
        crop = cv2.GaussianBlur(crop, (0, 0), sigma)
    if rng.random() < 0.15:  # motion blur
        length = int(rng.integers(3, 9))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        turn = cv2.getRotationMatrix2D(
            (length / 2 - 0.5, length / 2 - 0.5), rng.uniform(-30, 30), 1
        )
        crop = cv2.filter2D(crop, -1, cv2.warpAffine(kernel, turn, (length, length)))
    small = cv2.resize(
        crop,
        (max(4, int(crop.shape[1] * scale)), max(4, int(crop.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    if rng.random() < 0.6:
        noise = rng.normal(0.0, rng.uniform(0.005, 0.05), small.shape)
        small = small + np.asarray(noise, np.float32)
    out: np.ndarray = (np.clip(small, 0, 1) * 255).astype(np.uint8)[:, :, ::-1]
    if rng.random() < 0.5:
        ok, encoded = cv2.imencode(
            ".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 95))]
        )
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
        out = out if decoded is None else decoded
    return np.ascontiguousarray(out)


def photograph(plate: Plate, rng: np.random.Generator) -> np.ndarray:
    """``plate`` as a camera sees it and the detector cuts it: a uint8 BGR crop."""
    warped, corners, text = _warp(plate, rng)
    crop = _light(_cut(warped, corners, text, rng), rng)
    if rng.random() < 0.15:  # infrared: grey, the plate's ground glowing
        grey = crop @ rng.dirichlet([1, 1, 1]).astype(np.float32)
        crop = np.repeat(np.clip(grey * rng.uniform(1.0, 1.6), 0, 1)[..., None], 3, axis=2)
    width = float(np.exp(rng.uniform(np.log(45), np.log(320))))
    return _degrade(crop, width * crop.shape[1] / max(1.0, float(np.ptp(corners[:, 0]))), rng)


def rephotograph(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real plate crop (uint8 BGR) seen a little differently: turned and tilted a few
    degrees, cut with another margin, lit and degraded as :func:`photograph` does."""
    image = crop[:, :, ::-1].astype(np.float32) / 255.0
    height, width = image.shape[:2]
    pad = int(0.15 * max(height, width))
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32) + pad
    angle = np.radians(rng.normal(0, 3))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = corners.mean(axis=0)
    target = (corners - centre + rng.normal(0, 0.03, (4, 2)) * [width, height]) @ turn.T + centre
    matrix = cv2.getPerspectiveTransform(corners, target.astype(np.float32))
    warped = cv2.warpPerspective(
        canvas, matrix, (canvas.shape[1], canvas.shape[0]), borderMode=cv2.BORDER_REPLICATE
    )
    moved = cv2.perspectiveTransform(corners[None], matrix)[0]
    x1, y1 = moved.min(axis=0)
    x2, y2 = moved.max(axis=0)
    w, h = x2 - x1, y2 - y1
    margins = [rng.uniform(-0.04, 0.06) * side for side in (w, h, w, h)]
    cut = warped[
        int(max(0, y1 - margins[1])) : int(min(warped.shape[0], y2 + margins[3])),
        int(max(0, x1 - margins[0])) : int(min(warped.shape[1], x2 + margins[2])),
    ]
    cut = _light(cut, rng, night=0.03)
    if rng.random() < 0.1:
        grey = cut @ rng.dirichlet([1, 1, 1]).astype(np.float32)
        cut = np.repeat(grey[..., None], 3, axis=2)
    return _degrade(cut, cut.shape[1] * rng.uniform(0.5, 1.0), rng)
