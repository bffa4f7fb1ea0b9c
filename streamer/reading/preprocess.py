"""Plate crop preprocessing: find the plate-number line, straighten it, cut it tight.

:func:`text_band` gives the line in grey for recognisers that read natural images;
:func:`prepare` binarises it for Tesseract.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Height, in pixels, that prepared plate images are scaled to before OCR.
TARGET_HEIGHT = 48
#: Prepared images are widened by this factor: Tesseract's English model misreads the
#: condensed fonts of many plates (a narrow 3 as B, an open 4 as L) less when widened.
WIDEN = 1.3


def _character_boxes(binary: np.ndarray, smallest: float = 0.3) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x, y, w, h)`` of white blobs shaped like plate characters, at least
    ``smallest`` of the image's height.

    Blobs touching the left or right edge are dropped: they are the plate's frame or
    whatever surrounds the plate, not characters.
    """
    height, width = binary.shape[:2]
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes = []
    for x, y, w, h, area in stats[1:count]:
        if x == 0 or x + w >= width:
            continue
        if smallest * height <= h <= 0.95 * height and w <= 1.2 * h and area >= 0.1 * w * h:
            boxes.append((int(x), int(y), int(w), int(h)))
    return boxes


def _dark_text(grey: np.ndarray) -> bool:
    """Whether the characters are darker than the plate (the background is the majority)."""
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return bool(np.count_nonzero(binary) > binary.size / 2)


def _text_white(grey: np.ndarray, dark_text: bool) -> np.ndarray:
    """Otsu-binarise so that the characters are white."""
    mode = cv2.THRESH_BINARY_INV if dark_text else cv2.THRESH_BINARY
    return cv2.threshold(grey, 0, 255, mode + cv2.THRESH_OTSU)[1]


def _clear_border(binary: np.ndarray) -> np.ndarray:
    """Remove the plate frame and white blobs that touch the image border.

    Long horizontal runs (the frame's top and bottom edges) are removed first, so that
    a character touching the frame is not taken away with it.
    """
    length = max(3, binary.shape[1] // 2)
    lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    binary = cv2.subtract(binary, lines)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    height, width = binary.shape[:2]
    touching = [
        label
        for label in range(1, count)
        if stats[label, 0] == 0
        or stats[label, 1] == 0
        or stats[label, 0] + stats[label, 2] >= width
        or stats[label, 1] + stats[label, 3] >= height
    ]
    binary[np.isin(labels, touching)] = 0
    return binary


def _plate_region(grey: np.ndarray) -> np.ndarray:
    """Warp the plate's bright rectangle upright, or return ``grey`` when none stands out.

    The largest bright blob of a plate crop is the plate's background; its minimum-area
    rectangle gives both the tight crop and the skew.
    """
    _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return grey
    contour = max(contours, key=cv2.contourArea)
    (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
    if w < h:
        w, h, angle = h, w, angle - 90
    # Equivalent rectangles differ by 180 degrees; the smallest turn keeps text upright.
    angle = (angle + 90) % 180 - 90
    if not (0.2 * grey.size <= w * h <= 0.9 * grey.size and 1.3 <= w / max(h, 1) <= 8):
        return grey
    rotation = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    rotation[0, 2] += w / 2 - cx
    rotation[1, 2] += h / 2 - cy
    return cv2.warpAffine(
        grey, rotation, (round(w), round(h)), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def _row(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The blobs as tall as the tallest characters (the plate number, not smaller text)."""
    if not boxes:
        return []
    tallest = max(h for _, _, _, h in boxes)
    reference = float(np.median([h for _, _, _, h in boxes if h >= 0.6 * tallest]))
    return [b for b in boxes if 0.7 * reference <= b[3] <= 1.3 * reference]


def text_band(crop: np.ndarray, height: int = 2 * TARGET_HEIGHT) -> tuple[np.ndarray, bool]:
    """The plate-number line of a crop, upright and cut tight, in grey; and whether its
    characters are darker than the plate.

    Steps: grey; upscale to a working height; cut out and straighten the plate's bright
    rectangle; straighten again by the line through the character blobs; keep the row of
    the tallest characters (the number, not a state name or slogan) with a small margin.
    """
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    scale = height / max(1, grey.shape[0])
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    grey = _plate_region(cv2.GaussianBlur(grey, (3, 3), 0))
    dark_text = _dark_text(grey)

    # Where the plate's rectangle was not found (a close-up, a tilted plate), the characters
    # fill less of the crop's height: look for smaller blobs too.
    smallest = 0.3
    boxes = _character_boxes(_text_white(grey, dark_text), smallest)
    if len(boxes) < 3:
        small = _character_boxes(_text_white(grey, dark_text), 0.12)
        if len(_row(small)) >= 4:  # a plate number's worth of like characters, not noise
            smallest, boxes = 0.12, small
    if len(boxes) >= 3:
        centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes])
        slope = float(np.polyfit(centres[:, 0], centres[:, 1], 1)[0])
        angle = math.degrees(math.atan(slope))
        if 0.5 < abs(angle) < 25:
            centre = (grey.shape[1] / 2, grey.shape[0] / 2)
            rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
            grey = cv2.warpAffine(
                grey,
                rotation,
                (grey.shape[1], grey.shape[0]),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REPLICATE,
            )
            boxes = _character_boxes(_text_white(grey, dark_text), smallest)
    if len(boxes) >= 3:
        row = _row(boxes)
        reference = float(np.median([h for _, _, _, h in row]))
        y1 = min(y for _, y, _, _ in row)
        y2 = max(y + h for _, y, _, h in row)
        pad = int(0.15 * reference)
        grey = grey[max(0, y1 - pad) : y2 + pad]
    return grey, dark_text


def prepare(crop: np.ndarray) -> np.ndarray:
    """Make a plate crop ready for Tesseract: black text on white, upright, tight.

    The :func:`text_band`, scaled to :data:`TARGET_HEIGHT` and widened by :data:`WIDEN`,
    binarised, with the plate frame cleared and a white margin.
    """
    grey, dark_text = text_band(crop)
    scale = TARGET_HEIGHT / max(1, grey.shape[0])
    grey = cv2.resize(grey, None, fx=scale * WIDEN, fy=scale, interpolation=cv2.INTER_AREA)
    black_on_white = cv2.bitwise_not(_clear_border(_text_white(grey, dark_text)))
    border = TARGET_HEIGHT // 4
    return cv2.copyMakeBorder(
        black_on_white, border, border, border, border, cv2.BORDER_CONSTANT, value=255
    )
