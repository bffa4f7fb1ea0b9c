"""Where and when to detect: a camera's region of interest and its motion gate.

A gate camera looks at an empty lane most of the day. Comparing a small grey copy of the
region with the one examined before costs a fraction of a millisecond; detection costs
several. So frames where nothing moved are not detected, and the tracker keeps its open
tracks where they were (see :meth:`streamer.track.PlateTracker.hold`).
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.config import DetectionConfig

#: Width in pixels of the grey copy compared between frames.
MOTION_WIDTH = 160
#: Grey levels a pixel must change by to count as moved (above compression noise).
MOTION_LEVEL = 25


def region_box(
    shape: tuple[int, ...], roi: tuple[float, float, float, float] | None
) -> tuple[int, int, int, int]:
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


def region(image: np.ndarray, roi: tuple[float, float, float, float] | None) -> np.ndarray:
    """The region of interest of ``image`` (a view, not a copy)."""
    x1, y1, x2, y2 = region_box(image.shape, roi)
    return image[y1:y2, x1:x2]


class MotionGate:
    """Says whether anything moved in a camera's region since the last examined frame.

    Example:
        >>> gate = MotionGate(DetectionConfig())
        >>> still = np.zeros((720, 1280, 3), np.uint8)
        >>> gate.moved(still), gate.moved(still)
        (True, False)
    """

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self._previous: np.ndarray | None = None

    def moved(self, image: np.ndarray) -> bool:
        """Compare ``image`` with the last examined frame; the first frame always moved."""
        area = region(image, self.config.roi)
        height, width = area.shape[:2]
        size = (MOTION_WIDTH, max(1, round(height * MOTION_WIDTH / max(width, 1))))
        small = cv2.resize(area, size, interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        previous, self._previous = self._previous, small
        if previous is None or previous.shape != small.shape:
            return True
        changed = int(np.count_nonzero(cv2.absdiff(small, previous) > MOTION_LEVEL))
        if self.config.motion_threshold == 0:
            return changed > 0
        return changed >= self.config.motion_threshold * small.size
