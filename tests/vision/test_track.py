"""Tracking: one track per moving plate, track ends, crop quality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
import supervision as sv

from streamer.config import TrackerConfig
from streamer.sources.frame import Frame
from streamer.vision.track import PlateTracker, crop_quality

START = datetime(2026, 1, 1, tzinfo=UTC)


def make_frame(index: int, fps: float = 25.0) -> Frame:
    image = np.full((360, 640, 3), 90, np.uint8)
    cv2.putText(image, "AB12", (100 + index, 200), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 0), 2)
    t = index / fps
    return Frame("cam", index, image, START + timedelta(seconds=t), t)


def make_detections(
    *boxes: tuple[float, float, float, float], confidence: float = 0.8
) -> sv.Detections:
    if not boxes:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array(boxes, dtype=float),
        confidence=np.full(len(boxes), confidence),
        class_id=np.zeros(len(boxes), dtype=int),
    )


def run(tracker: PlateTracker, frames: int, boxes_at: object, start: int = 0) -> list[object]:
    finished = []
    for index in range(start, start + frames):
        boxes = boxes_at(index)  # type: ignore[operator]
        finished += tracker.update(make_frame(index), make_detections(*boxes))
    return finished


def test_one_track_per_moving_plate_ends_after_timeout() -> None:
    tracker = PlateTracker("cam", TrackerConfig(lost_timeout_s=0.4, min_frames=3))
    # A plate moves right for 20 frames, then nothing for 20 frames (0.8 s).
    finished = run(tracker, 40, lambda i: [(100 + 4 * i, 180, 180 + 4 * i, 210)] if i < 20 else [])
    assert len(finished) == 1
    track = finished[0]
    assert track.frames in (19, 20)  # ByteTrack confirms a track on its second frame
    assert 1 <= len(track.crops) <= 5
    assert tracker.active == 0


def test_hold_keeps_a_waiting_plate_and_ends_a_departed_one() -> None:
    tracker = PlateTracker("cam", TrackerConfig(lost_timeout_s=0.4, min_frames=3))
    # Two plates for 10 frames; then only the first, which stops; then nothing moves for
    # 2 s (50 frames, five times the timeout).
    run(
        tracker,
        10,
        lambda i: [(100 + 4 * i, 180, 180 + 4 * i, 210), (400, 40 + 8 * i, 480, 70 + 8 * i)],
    )
    assert tracker.update(make_frame(10), make_detections((140, 180, 220, 210))) == []
    finished = []
    for index in range(11, 61):
        finished += tracker.hold(make_frame(index))
    assert [track.frames for track in finished] in ([9], [10])  # the plate that left
    assert tracker.active == 1  # the one waiting
    # It drives off: seen once more, then gone; it ends as one track.
    finished = tracker.update(make_frame(61), make_detections((150, 180, 230, 210)))
    for index in range(62, 80):
        finished += tracker.update(make_frame(index), make_detections())
    assert len(finished) == 1
    assert finished[0].frames in (11, 12)  # ByteTrack confirms a track on its second frame
    assert (finished[0].last_seen - finished[0].first_seen).total_seconds() == pytest.approx(
        61 / 25, abs=0.05
    )


def test_two_plates_at_once_give_two_tracks() -> None:
    tracker = PlateTracker("cam", TrackerConfig(min_frames=3))
    run(tracker, 10, lambda i: [(50 + i, 50, 130 + i, 80), (400 - i, 250, 480 - i, 280)])
    assert tracker.active == 2
    assert len(tracker.finish_all()) == 2


def test_short_tracks_are_noise() -> None:
    tracker = PlateTracker("cam", TrackerConfig(min_frames=5))
    run(tracker, 3, lambda i: [(50, 50, 130, 80)])
    assert tracker.finish_all() == []


def test_best_crops_are_sorted_best_first() -> None:
    tracker = PlateTracker("cam", TrackerConfig(min_frames=1, best_crops=3))
    run(tracker, 12, lambda i: [(100, 100, 160 + 8 * i, 120 + 4 * i)])  # growing plate
    (track,) = tracker.finish_all()
    qualities = [crop.quality for crop in track.crops]
    assert qualities == sorted(qualities, reverse=True)
    assert len(qualities) == 3
    assert track.best.bbox[3] - track.best.bbox[1] >= 40  # readable-size crops were kept


def plate_image(height: int = 40, blur: int = 0) -> np.ndarray:
    image = np.full((height, height * 4, 3), 235, np.uint8)
    cv2.putText(
        image,
        "KA01",
        (4, int(height * 0.8)),
        cv2.FONT_HERSHEY_SIMPLEX,
        height / 32,
        (0, 0, 0),
        max(1, height // 16),
    )
    return cv2.GaussianBlur(image, (blur, blur), 0) if blur else image


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        (
            (plate_image(40), (100, 100, 260, 140), 0.8),
            (plate_image(40, blur=9), (100, 100, 260, 140), 0.8),
        ),
        (
            (plate_image(40), (100, 100, 260, 140), 0.8),
            (plate_image(16), (100, 100, 164, 116), 0.8),
        ),
        (
            (plate_image(40), (100, 100, 260, 140), 0.8),
            (plate_image(40), (100, 100, 260, 140), 0.3),
        ),
        ((plate_image(40), (100, 100, 260, 140), 0.8), (plate_image(40), (0, 100, 160, 140), 0.8)),
    ],
    ids=["sharp", "large", "confident", "off-edge"],
)
def test_crop_quality_prefers(better: tuple, worse: tuple) -> None:  # type: ignore[type-arg]
    size = (640, 360)
    assert crop_quality(*better, size) > crop_quality(*worse, size)


def test_progress_offers_new_best_crops_until_the_track_is_settled() -> None:
    tracker = PlateTracker("cam", TrackerConfig(min_frames=3, best_crops=3))
    growing = lambda i: [(100, 100, 160 + 8 * i, 120 + 4 * i)]  # noqa: E731
    run(tracker, 2, growing)
    assert tracker.progress() == []  # two sightings: noise until min_frames
    assert tracker.unsettled
    run(tracker, 3, growing, start=2)
    (offered,) = tracker.progress()
    assert offered.frames >= 3
    assert not offered.overdue
    assert [c.quality for c in offered.crops] == sorted(
        (c.quality for c in offered.crops), reverse=True
    )
    assert tracker.progress() == []  # nothing new since
    run(tracker, 1, growing, start=5)
    assert len(tracker.progress()) == 1  # a better crop came
    tracker.settle(offered.track_id)
    assert not tracker.unsettled
    run(tracker, 3, growing, start=6)
    assert tracker.progress() == []  # settled: nothing more until it ends
    (finished,) = tracker.finish_all()
    assert finished.track_id == offered.track_id


def test_a_track_in_view_too_long_is_offered_once_as_overdue() -> None:
    tracker = PlateTracker("cam", TrackerConfig(min_frames=3, lost_timeout_s=5))
    still = (100, 100, 200, 130)
    run(tracker, 5, lambda i: [still])
    assert [t.overdue for t in tracker.progress(overdue_s=1.0)] == [False]
    for index in range(5, 30):  # it waits, nothing moves: held, not detected
        tracker.hold(make_frame(index))
    (overdue,) = tracker.progress(overdue_s=1.0)  # 29 frames at 25 fps > 1 s
    assert overdue.overdue
    assert tracker.progress(overdue_s=1.0) == []


def test_a_settled_track_ends_as_a_vehicle_even_when_short() -> None:
    tracker = PlateTracker("cam", TrackerConfig(min_frames=5))
    run(tracker, 2, lambda i: [(50, 50, 130, 80)])
    (track_id,) = [t.track_id for t in tracker.progress(overdue_s=0.0)]  # overdue at once
    tracker.settle(track_id)  # it was reported early, so it must be reported finally
    assert [t.track_id for t in tracker.finish_all()] == [track_id]


def test_a_track_offered_to_the_reader_ends_as_a_vehicle_before_it_is_settled() -> None:
    """The source ends while the reader still holds a short track's early read (a
    shutdown): its end is reported, so that an early event always gets its final one."""
    tracker = PlateTracker("cam", TrackerConfig(min_frames=5))
    run(tracker, 3, lambda i: [(50, 50, 130, 80)])
    (offered,) = tracker.progress(min_frames=2)
    assert offered.frames < 5
    assert [t.track_id for t in tracker.finish_all()] == [offered.track_id]


def test_a_new_plate_is_untracked_until_its_second_sighting_and_a_weak_box_never_is() -> None:
    tracker = PlateTracker("cam", TrackerConfig())
    box = (100, 180, 180, 210)
    tracker.update(make_frame(0), make_detections(box))
    assert (tracker.untracked, tracker.active) == (1, 0)  # a track from its second frame
    tracker.update(make_frame(1), make_detections(box, (400, 180, 480, 210)))
    assert (tracker.untracked, tracker.active) == (1, 1)  # and a second plate appears
    tracker.update(make_frame(2), make_detections(box, (400, 180, 480, 210)))
    assert (tracker.untracked, tracker.active) == (0, 2)
    weak = TrackerConfig().activation_threshold - 0.05
    tracker.update(make_frame(3), make_detections((250, 100, 330, 130), confidence=weak))
    assert tracker.untracked == 0  # below the activation threshold: it starts no track
