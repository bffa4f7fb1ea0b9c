"""Text lines in a plate crop: where the plate number is, apart from the plate's other text.

A plate carries more text than its number: a state name, a slogan, a county sticker,
small letters stacked beside the number, a dealer's frame. :class:`TextLines` finds the
text lines with the PP-OCRv4 text detector shipped in the ``rapidocr-onnxruntime`` wheel
(run on OpenVINO, as the recogniser is), and :func:`main_line` keeps the number's line:
the tallest line and the pieces beside it of about its height, not the smaller text.

The detector sees each line as a turned rectangle (:attr:`LineBox.corners`): a plate
photographed askew gives its angle, and :func:`turned` turns the crop (and the boxes)
so that the number's line is level.

It costs as much as a read, so it is used on single images only
(:mod:`streamer.reading.still`), not on every crop of a video.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

#: The detector's input is scaled so that its short side has this many pixels: a plate
#: crop's text is large, and a small input keeps the detector cheap.
SHORT_SIDE = 160


#: A point ``(x, y)`` in crop pixels.
Point = tuple[float, float]


@dataclass(frozen=True)
class LineBox:
    """An axis-aligned text line box ``(x1, y1, x2, y2)`` in crop pixels, and the turned
    rectangle the detector found, when known (``corners``, in order around it; not
    compared).

    Example:
        >>> box = LineBox.around([(10, 20), (110, 37), (107, 57), (7, 40)])
        >>> round(box.angle), round(box.thickness)
        (10, 20)
    """

    x1: float
    y1: float
    x2: float
    y2: float
    corners: tuple[Point, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def around(cls, corners: Sequence[Point]) -> LineBox:
        """The box around ``corners``, keeping them."""
        xs, ys = [float(x) for x, _ in corners], [float(y) for _, y in corners]
        points = tuple(zip(xs, ys, strict=True))
        return cls(min(xs), min(ys), max(xs), max(ys), points)

    @property
    def height(self) -> float:
        """The box's height in pixels."""
        return self.y2 - self.y1

    def _sides(self) -> tuple[float, float]:
        """The lengths of two neighbouring sides of ``corners`` (of the box when unknown)."""
        if len(self.corners) != 4:
            return self.x2 - self.x1, self.y2 - self.y1
        first, second, third = self.corners[:3]
        return math.dist(first, second), math.dist(second, third)

    @property
    def thickness(self) -> float:
        """The line's height across its own direction: the short side of ``corners``."""
        return min(self._sides())

    @property
    def length(self) -> float:
        """The line's length along its own direction: the long side of ``corners``."""
        return max(self._sides())

    @property
    def angle(self) -> float:
        """How far the line is turned, in degrees from level (-90..90, positive when it
        falls to the right, in image coordinates): the direction of the long side of
        ``corners``; 0 when they are not known."""
        if len(self.corners) != 4:
            return 0.0
        (ax, ay), (bx, by), (cx, cy) = self.corners[:3]
        dx, dy = max((bx - ax, by - ay), (cx - bx, cy - by), key=lambda side: math.hypot(*side))
        return (math.degrees(math.atan2(dy, dx)) + 90) % 180 - 90


class LineFinder(Protocol):
    """Finds the text lines of a plate crop."""

    def find(self, crop: np.ndarray) -> list[LineBox]:
        """Boxes of the text lines in a BGR crop, in crop pixels (any order)."""
        ...


def main_line(boxes: Sequence[LineBox], same_height: float = 0.7) -> LineBox | None:
    """The plate number's line: the tallest box, joined with the boxes level with it
    that are at least ``same_height`` of its height (a number split by a logo or a gap);
    smaller text (state names, slogans, stickers, stacked letters) is left out.

    Example:
        >>> main_line([LineBox(10, 5, 90, 20), LineBox(5, 30, 60, 80), LineBox(70, 32, 120, 78)])
        LineBox(x1=5, y1=30, x2=120, y2=80)
    """
    if not boxes:
        return None
    tallest = max(boxes, key=lambda box: box.height)
    middle = (tallest.y1 + tallest.y2) / 2
    line = [
        box
        for box in boxes
        if box.height >= same_height * tallest.height and box.y1 <= middle <= box.y2
    ]
    return LineBox(
        min(box.x1 for box in line),
        min(box.y1 for box in line),
        max(box.x2 for box in line),
        max(box.y2 for box in line),
    )


def cut_line(
    crop: np.ndarray, box: LineBox, margin_x: float = 0.15, margin_y: float = 0.1
) -> np.ndarray:
    """``box`` cut from ``crop`` with margins (fractions of the line's height) on each side,
    clipped to the crop, so the recogniser sees whole characters."""
    height, width = crop.shape[:2]
    x1 = int(max(0, box.x1 - margin_x * box.height))
    x2 = int(min(width, box.x2 + margin_x * box.height))
    y1 = int(max(0, box.y1 - margin_y * box.height))
    y2 = int(min(height, box.y2 + margin_y * box.height))
    return crop[y1:y2, x1:x2]


def turned(
    crop: np.ndarray, boxes: Sequence[LineBox], angle: float
) -> tuple[np.ndarray, list[LineBox]]:
    """``crop`` turned by ``angle`` degrees (as :attr:`LineBox.angle` measures it, so that
    a line at that angle becomes level), on a canvas large enough to keep its corners, the
    new border repeating the edge; and ``boxes`` moved with it.

    Example:
        >>> level, moved = turned(crop, boxes, boxes[0].angle)
        >>> round(moved[0].angle)
        0
    """
    height, width = crop.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    new_width = math.ceil(height * sin + width * cos)
    new_height = math.ceil(height * cos + width * sin)
    rotation[0, 2] += (new_width - width) / 2
    rotation[1, 2] += (new_height - height) / 2
    image = cv2.warpAffine(
        crop,
        rotation,
        (new_width, new_height),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    moved = []
    for box in boxes:
        corners = box.corners or (
            (box.x1, box.y1),
            (box.x2, box.y1),
            (box.x2, box.y2),
            (box.x1, box.y2),
        )
        points = cv2.transform(np.array([corners], np.float64), rotation)[0]
        moved.append(LineBox.around([(float(x), float(y)) for x, y in points]))
    return image, moved


def level_line(
    crop: np.ndarray, boxes: Sequence[LineBox], least: float = 2.0, margin_x: float = 0.4
) -> np.ndarray | None:
    """The plate number's line turned level and cut from ``crop`` (as :func:`cut_line`
    does, with ``margin_x`` of its height at the sides), or ``None`` when it is turned less
    than ``least`` degrees (it is level enough as it is) or its direction is unknown.

    The side margins are wider than :func:`cut_line`'s: the detector's rectangle fits a
    line seen askew loosely (its characters lean, so the rectangle turns too far) and may
    leave its first or last character at the edge, which the recogniser then drops.

    The angle is the thickest line's (:attr:`LineBox.thickness`): the number's, whose
    characters are the largest on a plate. A box not at least twice as long as it is thick
    (a single character, a logo) has no direction; a line turned by more than 45 degrees
    is more upright than level, which a plate's number is not.
    """
    if not boxes:
        return None
    thickest = max(boxes, key=lambda box: box.thickness)
    angle = thickest.angle
    if not least <= abs(angle) <= 45 or thickest.length < 2 * thickest.thickness:
        return None
    image, moved = turned(crop, boxes, angle)
    line = main_line(moved)
    view = cut_line(image, line, margin_x) if line is not None else image
    return view if view.size else None


class TextLines:
    """PP-OCRv4 text detection (ONNX, from the rapidocr-onnxruntime wheel) on OpenVINO.

    Thread-safe: one inference at a time. Nothing is downloaded: the weights are in the
    wheel.

    Example:
        >>> boxes = TextLines().find(crop)
    """

    def __init__(self, short_side: int = SHORT_SIDE) -> None:
        import openvino as ov
        import rapidocr_onnxruntime
        import yaml
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector

        package = Path(rapidocr_onnxruntime.__file__).parent
        settings: dict[str, Any] = yaml.safe_load((package / "config.yaml").read_text())["Det"]
        settings["model_path"] = str(package / settings["model_path"])
        settings["limit_side_len"] = short_side  # limit_type "min": the short side
        self._detector = TextDetector(settings)
        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(settings["model_path"]),
            "CPU",
            {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": 1,
                "INFERENCE_PRECISION_HINT": "f32",
                "CACHE_DIR": "",
            },
        )
        request = compiled.create_infer_request()
        self._detector.infer = lambda batch: [request.infer({0: batch})[0].copy()]
        self._short_side = short_side
        self._lock = threading.Lock()

    def find(self, crop: np.ndarray) -> list[LineBox]:
        """Boxes of the text lines in a BGR crop."""
        if crop.ndim != 3 or min(crop.shape[:2]) < 8:
            return []
        # The detector only enlarges small images: shrink large crops here, or a close-up
        # costs ten times as much.
        scale = self._short_side / min(crop.shape[:2])
        if scale < 1:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            scale = 1.0
        with self._lock:
            quads, _ = self._detector(crop)
        if quads is None:
            return []
        return [
            LineBox.around([(float(x) / scale, float(y) / scale) for x, y in quad])
            for quad in quads
        ]


@lru_cache(maxsize=1)
def shared_text_lines() -> TextLines:
    """One :class:`TextLines` for the process, built on first use."""
    return TextLines()
