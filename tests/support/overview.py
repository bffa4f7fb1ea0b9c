"""A wide overview camera in which the lane, and so every plate, is small.

The demo renderer's video (:func:`streamer.sources.demo.render_video`) drawn at
``lane_width`` pixels and pasted into a large frame (1920x1080 by default) of the same empty
road enlarged, as an overview camera sees a gate in a corner of its view. Generated, never
copied; deterministic per seed. Shared by ``tests/test_roi.py`` and ``bench/roi.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from streamer.sources.demo import DemoVehicle, render_video
from streamer.vision.region import Roi

#: Pixels around the lane that its region of interest takes in, so that no plate near
#: the lane's border is cut by the region's.
ROI_MARGIN = 16


@dataclass(frozen=True)
class Overview:
    """What :func:`render_overview` wrote.

    Attributes:
        path: The MP4 file.
        size: Frame size, ``(width, height)``.
        lane: Where the lane's video sits in the frame, ``(x1, y1, x2, y2)`` in pixels.
        roi: The lane and :data:`ROI_MARGIN` around it, as ``detection.roi`` fractions.
        vehicles: The vehicles, in order of appearance.
        frame_count: Frames written.
        fps: Frames per second.
        appearances: Per vehicle, the ``(first, last)`` media time in seconds at which its
            whole plate is in view.
    """

    path: Path
    size: tuple[int, int]
    lane: tuple[int, int, int, int]
    roi: Roi
    vehicles: tuple[DemoVehicle, ...]
    frame_count: int
    fps: float
    appearances: tuple[tuple[float, float], ...]

    @property
    def roi_pixels(self) -> tuple[int, int]:
        """The region of interest's width and height in pixels."""
        x1, y1, x2, y2 = self.roi
        width, height = self.size
        return round((x2 - x1) * width), round((y2 - y1) * height)


def render_overview(
    path: Path,
    vehicles: Sequence[DemoVehicle],
    *,
    lane_width: int,
    size: tuple[int, int] = (1920, 1080),
    centre: tuple[float, float] = (0.5, 0.7),
    **render: Any,
) -> Overview:
    """Render the demo at ``lane_width`` pixels wide (16:9) and paste it into ``size``.

    Args:
        path: Destination MP4 file (its folder exists).
        vehicles: The vehicles to show, in order.
        lane_width: Width of the lane's video in the large frame, in pixels (made even).
        size: The large frame's size, ``(width, height)``.
        centre: Where the lane's centre sits, as fractions of the frame.
        **render: More arguments for :func:`render_video` (``seed``, ``fps``, timings).

    Returns:
        The file, where the lane is, and its region of interest.
    """
    width, height = size
    lane_width, lane_height = lane_width // 2 * 2, lane_width * 9 // 32 * 2  # even: MPEG-4
    small = path.with_name(f".{path.stem}.{os.getpid()}.lane.mp4")
    manifest = render_video(small, vehicles, size=(lane_width, lane_height), **render)
    x1, y1 = round(centre[0] * width - lane_width / 2), round(centre[1] * height - lane_height / 2)
    x2, y2 = x1 + lane_width, y1 + lane_height
    capture = cv2.VideoCapture(str(small))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), manifest.fps, size)
    backdrop = None
    frames = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if backdrop is None:  # the first frame is the empty road: enlarged, the backdrop
                backdrop = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
            frame = backdrop.copy()
            frame[y1:y2, x1:x2] = image
            writer.write(frame)
            frames += 1
    finally:
        capture.release()
        writer.release()
        small.unlink(missing_ok=True)
    roi = (
        max(0, x1 - ROI_MARGIN) / width,
        max(0, y1 - ROI_MARGIN) / height,
        min(width, x2 + ROI_MARGIN) / width,
        min(height, y2 + ROI_MARGIN) / height,
    )
    return Overview(
        path,
        size,
        (x1, y1, x2, y2),
        roi,
        manifest.vehicles,
        frames,
        manifest.fps,
        manifest.appearances,
    )
