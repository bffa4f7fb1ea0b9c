"""Plate tracking: ByteTrack (from ``trackers``) plus the start and end of each track.

``trackers.ByteTrackTracker`` assigns ids; this module keeps, per id, how long it has been
seen and its best crops, and says when a track has ended: when it has not been seen for
``lost_timeout_s`` on the source's clock, or when the source ends (:meth:`finish_all`).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from streamer.config import TrackerConfig
from streamer.sources.frame import Frame
from streamer.vision.direction import Box, Direction, direction_of

#: ByteTrack counts how long it keeps a lost track in frames at this rate (and scales them
#: by the ``frame_rate`` it is given), so a timeout in seconds is this many frames a second.
BYTETRACK_BUFFER_FPS = 30
#: Crops are cut with this fraction of the box added on each side, so a slightly tight
#: box does not clip characters; the reader finds the plate inside.
CROP_MARGIN = 0.08
#: A box this close to the frame's edge may be cut off by it: it says nothing of where
#: the plate is going.
EDGE_PIXELS = 2
#: Boxes of a track kept for its direction; past it, every other one is let go (the
#: first and the spread of the others stay).
PATH_LENGTH = 64


@dataclass(frozen=True, eq=False)
class PlateCrop:
    """One sighting of a tracked plate.

    Attributes:
        image: BGR pixels of the plate with a small margin.
        bbox: the detector's box ``(x1, y1, x2, y2)`` in frame pixels.
        confidence: detector confidence.
        quality: how promising the crop is for reading, 0..1 (see :func:`crop_quality`).
        frame: the frame it was cut from (kept for the best crop's snapshot).
    """

    image: np.ndarray = field(repr=False)
    bbox: tuple[int, int, int, int]
    confidence: float
    quality: float
    frame: Frame = field(repr=False)


@dataclass(frozen=True)
class Track:
    """A track as the reader sees it: when it was seen, and its best crops (best first).
    ``first_clock_s`` is its first sighting on the source's clock (a file's media time)."""

    camera: str
    track_id: int
    first_seen: datetime
    last_seen: datetime
    frames: int
    crops: tuple[PlateCrop, ...]
    first_clock_s: float = 0.0
    path: tuple[Box, ...] = ()

    @property
    def best(self) -> PlateCrop:
        """The highest-quality crop."""
        return self.crops[0]

    @property
    def direction(self) -> Direction | None:
        """Which way its plate moved in view (``None``: it stood still)."""
        return direction_of(self.path)


@dataclass(frozen=True)
class OpenTrack(Track):
    """A track still in view whose plate is not read with confidence yet, with something
    new to read: a crop that entered its best ones, or ``overdue`` (in view longer than
    the camera's ``events.max_event_delay_s``)."""

    overdue: bool = False


@dataclass(frozen=True)
class FinishedTrack(Track):
    """A track that has ended."""


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian: higher is sharper."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def crop_quality(
    crop: np.ndarray,
    bbox: tuple[int, int, int, int],
    confidence: float,
    frame_size: tuple[int, int],
) -> float:
    """Score a crop for reading, 0..1: the product of four factors, each 0..1.

    - size: box height relative to 40 px, where characters become reliably readable;
    - sharpness: Laplacian variance squashed to 0..1 (blur from motion or focus);
    - confidence: the detector's;
    - edge: boxes touching the frame border are likely cut off.
    """
    x1, y1, x2, y2 = bbox
    width, height = frame_size
    size = min(1.0, (y2 - y1) / 40.0)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    sharp = sharpness(grey)
    sharp_factor = sharp / (sharp + 150.0)
    margin = min(x1, y1, width - x2, height - y2)
    edge = 1.0 if margin >= 4 else 0.3
    return float(size * (0.3 + 0.7 * sharp_factor) * confidence * edge)


def cut_crop(image: np.ndarray, bbox: tuple[int, int, int, int]) -> np.ndarray:
    """The box with :data:`CROP_MARGIN` added on each side, clipped to the image."""
    x1, y1, x2, y2 = bbox
    dx = round((x2 - x1) * CROP_MARGIN)
    dy = round((y2 - y1) * CROP_MARGIN)
    height, width = image.shape[:2]
    return image[max(0, y1 - dy) : min(height, y2 + dy), max(0, x1 - dx) : min(width, x2 + dx)]


@dataclass
class _LiveTrack:
    track_id: int
    first_seen: datetime
    last_seen: datetime
    last_clock: float
    frames: int = 0
    # The last detector box and confidence, which :meth:`PlateTracker.hold` repeats.
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    confidence: float = 0.0
    # min-heap of (quality, tiebreak, crop): the worst kept crop is at the top
    crops: list[tuple[float, int, PlateCrop]] = field(default_factory=list)
    first_clock: float = 0.0
    # Whether the best crops changed since the reader last saw them; whether the reader
    # has read the plate with confidence (then it needs nothing more until the end);
    # whether it has been told the track is overdue; and whether it was handed to the
    # reader at all (then it may have an early event, and its end must be reported).
    changed: bool = False
    settled: bool = False
    told_overdue: bool = False
    offered: bool = False
    path: list[Box] = field(default_factory=list)

    def view(
        self, camera: str
    ) -> tuple[str, int, datetime, datetime, int, tuple[PlateCrop, ...], float, tuple[Box, ...]]:
        """The fields of a :class:`Track` of this track (best crop first)."""
        crops = tuple(crop for _, _, crop in sorted(self.crops, key=lambda e: -e[0]))
        return (
            camera,
            self.track_id,
            self.first_seen,
            self.last_seen,
            self.frames,
            crops,
            self.first_clock,
            tuple(self.path),
        )

    def moved_to(self, bbox: Box) -> None:
        """Keep ``bbox`` in its path."""
        self.path.append(bbox)
        if len(self.path) > PATH_LENGTH:
            self.path = self.path[::2]


class PlateTracker:
    """One camera's tracks. Owned by that camera's task: not thread-safe by design."""

    def __init__(self, camera: str, config: TrackerConfig, frame_rate: float = 25.0) -> None:
        self.camera = camera
        self.config = config
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(config.lost_timeout_s * BYTETRACK_BUFFER_FPS)),
            frame_rate=frame_rate,
            track_activation_threshold=config.activation_threshold,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=config.minimum_iou,
            high_conf_det_threshold=config.high_confidence,
        )
        self._live: dict[int, _LiveTrack] = {}
        self._tiebreak = itertools.count()
        # The clock of the last update or hold: tracks seen then are the ones still in view.
        self._last_clock: float | None = None
        #: Boxes of the last update that could start a track (``activation_threshold``)
        #: but no track holds yet: a new plate becomes a track at its second sighting.
        self.untracked = 0

    @property
    def active(self) -> int:
        """How many tracks are open."""
        return len(self._live)

    def update(self, frame: Frame, detections: sv.Detections) -> list[FinishedTrack]:
        """Feed one frame's (gated) detections; returns the tracks that ended by now."""
        tracked = self._tracker.update(detections, timestamp=frame.clock_s)
        height, width = frame.image.shape[:2]
        confidences = tracked.confidence if tracked.confidence is not None else None
        self.untracked = 0
        for index, tracker_id in enumerate(
            tracked.tracker_id if tracked.tracker_id is not None else []
        ):
            confidence = float(confidences[index]) if confidences is not None else 1.0
            if tracker_id < 0:
                # A weak box (a sign, a far plate) never starts a track: not followed.
                self.untracked += confidence >= self.config.activation_threshold
                continue
            x1, y1, x2, y2 = (round(v) for v in tracked.xyxy[index])
            x1, y1 = max(0, x1), max(0, y1)
            x2, y2 = min(width, x2), min(height, y2)
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            bbox = (x1, y1, x2, y2)
            image = cut_crop(frame.image, bbox)
            quality = crop_quality(image, bbox, confidence, (width, height))
            track = self._live.get(int(tracker_id))
            if track is None:
                track = _LiveTrack(
                    int(tracker_id),
                    frame.captured_at,
                    frame.captured_at,
                    frame.clock_s,
                    first_clock=frame.clock_s,
                )
                self._live[int(tracker_id)] = track
            track.frames += 1
            track.last_seen = frame.captured_at
            track.last_clock = frame.clock_s
            track.bbox, track.confidence = bbox, confidence
            if min(x1, y1, width - x2, height - y2) > EDGE_PIXELS:  # else cut by the edge
                track.moved_to(bbox)
            crop = PlateCrop(image.copy(), bbox, confidence, quality, frame)
            entry = (quality, next(self._tiebreak), crop)
            if len(track.crops) < self.config.best_crops:
                heapq.heappush(track.crops, entry)
                track.changed = True
            elif quality > track.crops[0][0]:
                heapq.heapreplace(track.crops, entry)
                track.changed = True
        self._last_clock = frame.clock_s
        return self._ended(frame)

    def hold(self, frame: Frame) -> list[FinishedTrack]:
        """A frame where nothing moved: the tracks seen at the last update are still there.

        They stay open (a vehicle waiting at a barrier is one track however long it
        waits): ByteTrack is shown their last boxes again, so it keeps their ids too.
        Tracks that were already unseen keep ageing and end on time.
        """
        held = [t for t in self._live.values() if t.last_clock == self._last_clock]
        for track in held:
            track.last_clock = frame.clock_s
            track.last_seen = frame.captured_at
        if held:
            self._tracker.update(
                sv.Detections(
                    xyxy=np.array([t.bbox for t in held], dtype=float),
                    confidence=np.array([t.confidence for t in held]),
                    class_id=np.zeros(len(held), dtype=int),
                ),
                timestamp=frame.clock_s,
            )
        self._last_clock = frame.clock_s
        return self._ended(frame)

    def _ended(self, frame: Frame) -> list[FinishedTrack]:
        ended = [
            track_id
            for track_id, track in self._live.items()
            if frame.clock_s - track.last_clock > self.config.lost_timeout_s
        ]
        return self._finish(ended)

    @property
    def unsettled(self) -> bool:
        """Whether an open track's plate is not read with confidence yet."""
        return any(not track.settled for track in self._live.values())

    def settle(self, track_id: int) -> None:
        """The reader has read this track's plate with confidence: it needs no more
        :meth:`progress` until the track ends."""
        if track_id in self._live:
            self._live[track_id].settled = True

    def progress(
        self, overdue_s: float | None = None, min_frames: int | None = None
    ) -> list[OpenTrack]:
        """Unsettled open tracks with something new to read since the last call: a crop
        that entered their best ones, or (once) that they have been in view for
        ``overdue_s`` seconds. Tracks seen in fewer than ``min_frames`` frames (default:
        ``tracker.min_frames``) are left until they are seen more, unless overdue."""
        least = self.config.min_frames if min_frames is None else min_frames
        ready = []
        for track in self._live.values():
            if track.settled or not track.crops:
                continue
            overdue = (
                overdue_s is not None
                and self._last_clock is not None
                and self._last_clock - track.first_clock >= overdue_s
            )
            newly_overdue = overdue and not track.told_overdue
            if not (track.changed or newly_overdue):
                continue
            if track.frames < least and not overdue:
                continue
            track.changed = False
            track.told_overdue = track.told_overdue or overdue
            track.offered = True
            ready.append(OpenTrack(*track.view(self.camera), overdue=overdue))
        return ready

    def finish_all(self) -> list[FinishedTrack]:
        """End every open track (the source has ended)."""
        return self._finish(list(self._live))

    def _finish(self, track_ids: list[int]) -> list[FinishedTrack]:
        """End these tracks. One shorter than ``tracker.min_frames`` is dropped, unless the
        reader has seen it (:meth:`progress`): its early event may still be on its way, and
        the reader decides (see :meth:`~streamer.reporter.TrackReporter.report`)."""
        finished = []
        for track_id in track_ids:
            track = self._live.pop(track_id)
            short = track.frames < self.config.min_frames
            if not track.crops or (short and not (track.settled or track.offered)):
                continue
            finished.append(FinishedTrack(*track.view(self.camera)))
        return finished
