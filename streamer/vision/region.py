"""A camera's region of interest: where it is detected and watched for motion."""

from __future__ import annotations

import numpy as np
import supervision as sv

#: ``(x1, y1, x2, y2)`` as fractions of the frame, as ``detection.roi`` holds it.
Roi = tuple[float, float, float, float]


def region_box(shape: tuple[int, ...], roi: Roi | None) -> tuple[int, int, int, int]:
    """The region of interest in pixels ``(x1, y1, x2, y2)`` for an image of ``shape``.

    Example:
        >>> region_box((720, 1280, 3), (0.0, 0.5, 1.0, 1.0))
        (0, 360, 1280, 720)
    """
    height, width = shape[:2]
    if roi is None:
        return 0, 0, width, height
    x1, y1, x2, y2 = roi
    left, top = round(x1 * width), round(y1 * height)
    return left, top, max(left + 1, round(x2 * width)), max(top + 1, round(y2 * height))


def region(image: np.ndarray, roi: Roi | None) -> np.ndarray:
    """The region of interest of ``image`` (a view, not a copy)."""
    x1, y1, x2, y2 = region_box(image.shape, roi)
    return image[y1:y2, x1:x2]


def to_frame(detections: sv.Detections, shape: tuple[int, ...], roi: Roi | None) -> sv.Detections:
    """``detections`` made in the region of interest of an image of ``shape``, moved to
    that image's coordinates."""
    if roi is None or len(detections) == 0:
        return detections
    x1, y1, _, _ = region_box(shape, roi)
    detections.xyxy = detections.xyxy + np.array([x1, y1, x1, y1], dtype=float)
    return detections
