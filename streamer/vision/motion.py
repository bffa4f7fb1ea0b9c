"""When to detect: a camera's motion gate.

A gate camera looks at an empty lane most of the day. Comparing a small grey copy of the
region with the one examined before costs a fraction of a millisecond; detection costs
several. So frames where nothing moved are not detected, and the tracker keeps its open
tracks where they were (see :meth:`streamer.vision.track.PlateTracker.hold`).
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.config import DetectionConfig
from streamer.vision.region import region

#: Width in pixels of the grey copy compared between frames.
MOTION_WIDTH = 160
#: Grey levels a pixel must change by to count as moved (above compression noise).
MOTION_LEVEL = 25


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
