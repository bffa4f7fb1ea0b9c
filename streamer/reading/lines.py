"""Text lines in a plate crop: where the plate number is, apart from the plate's other text.

A plate carries more text than its number: a state name, a slogan, a county sticker,
small letters stacked beside the number, a dealer's frame. :class:`TextLines` finds the
text lines with the PP-OCRv4 text detector shipped in the ``rapidocr-onnxruntime`` wheel
(run on OpenVINO, as the recogniser is), and :func:`main_line` keeps the number's line:
the tallest line and the pieces beside it of about its height, not the smaller text.

It costs about 15 ms a crop on one core, so it is used on single images only
(:mod:`streamer.reading.still`), not on every crop of a video.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

#: The detector's input is scaled so that its short side has this many pixels: a plate
#: crop's text is large, and a small input keeps the detector cheap.
SHORT_SIDE = 160


@dataclass(frozen=True)
class LineBox:
    """An axis-aligned text line box ``(x1, y1, x2, y2)`` in crop pixels."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def height(self) -> float:
        """The box's height in pixels."""
        return self.y2 - self.y1


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
            LineBox(
                float(quad[:, 0].min()) / scale,
                float(quad[:, 1].min()) / scale,
                float(quad[:, 0].max()) / scale,
                float(quad[:, 1].max()) / scale,
            )
            for quad in quads
        ]


@lru_cache(maxsize=1)
def shared_text_lines() -> TextLines:
    """One :class:`TextLines` for the process, built on first use."""
    return TextLines()
