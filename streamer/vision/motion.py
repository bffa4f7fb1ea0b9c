"""When to detect: a camera's motion gate, and the frames detected whatever it says.

A gate camera looks at an empty lane most of the day. Comparing a small grey copy of the
region with the one examined before costs a fraction of a millisecond; detection costs
several. So frames where nothing moved are not detected, and the tracker keeps its open
tracks where they were (see :meth:`streamer.vision.track.PlateTracker.hold`). A still
scene can hide a vehicle, though: one standing in view when the camera (re)connects, or
one that stopped before it was read. :class:`DetectionSchedule` detects those too.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.config import DetectionConfig
from streamer.sources.frame import Frame
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


class DetectionSchedule:
    """Which of a camera's examined frames are detected: those where something moved
    (with the motion gate on), the first ``start_frames`` after the source (re)connects
    and after a detection that found a plate no open track holds yet (a new track needs a
    second sighting, which a vehicle standing still since it appeared never gives the
    motion gate), one every ``1 / unread_rate_fps`` seconds while an open track's plate is
    unread, and one every ``1 / idle_rate_fps`` seconds whatever happens.

    Example:
        >>> schedule = DetectionSchedule(DetectionConfig())
        >>> moved = schedule.moved(frame)          # in frame order, in a worker thread
        >>> schedule.due(frame, moved, unread=tracker.unsettled)
        True
    """

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self.motion = MotionGate(config) if config.motion_gate else None
        self._connection: int | None = None
        self._start_frames_left = 0
        self._last_detected: float | None = None

    def moved(self, frame: Frame) -> bool:
        """Whether anything moved since the last examined frame (blocking; frame order).
        A new connection starts afresh: its first frames are compared with each other."""
        if frame.connection != self._connection:
            self._connection = frame.connection
            self._start_frames_left = self.config.start_frames
            if self.motion is not None:
                self.motion = MotionGate(self.config)
        return self.motion is None or self.motion.moved(frame.image)

    def due(self, frame: Frame, moved: bool, unread: bool) -> bool:
        """Whether to detect ``frame`` (and count it as detected): it moved, it is one of
        the frames that follow a connection or a new plate, an unread plate is due another
        look, or the idle rate is."""
        detect = moved or self._start_frames_left > 0
        self._start_frames_left = max(0, self._start_frames_left - 1)
        if not detect:
            since = None if self._last_detected is None else frame.clock_s - self._last_detected
            rates = (self.config.unread_rate_fps if unread else 0, self.config.idle_rate_fps)
            detect = any(rate > 0 and (since is None or since >= 1 / rate) for rate in rates)
        if detect:
            self._last_detected = frame.clock_s
        return detect

    def follow(self) -> None:
        """A detection found a plate that no open track holds yet: detect the next
        ``start_frames`` frames too, so it becomes a track and is read even if nothing
        moves after it appeared."""
        self._start_frames_left = max(self._start_frames_left, self.config.start_frames)
