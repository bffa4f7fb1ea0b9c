"""The motion gate and the region of interest."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from streamer.config import DetectionConfig
from streamer.sources.frame import Frame
from streamer.vision.motion import DetectionSchedule, MotionGate
from streamer.vision.region import region, region_box

ROAD = (720, 1280, 3)


def road(seed: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A grey road with sensor noise, and optionally a dark vehicle at ``box``."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(120, 4, ROAD), 0, 255).astype(np.uint8)
    if box is not None:
        x1, y1, x2, y2 = box
        image[y1:y2, x1:x2] = 30
    return image


@pytest.mark.parametrize(
    ("config", "first", "second", "moved"),
    [
        (DetectionConfig(), road(1), road(2), False),
        (DetectionConfig(), road(1, (100, 400, 400, 600)), road(2, (100, 400, 400, 600)), False),
        (DetectionConfig(), road(1, (100, 400, 400, 600)), road(2, (160, 400, 460, 600)), True),
        (DetectionConfig(), road(1), road(2, (600, 300, 700, 360)), True),
        # The same change outside the region of interest is not motion.
        (DetectionConfig(roi=(0, 0.6, 1, 1)), road(1), road(2, (600, 300, 700, 360)), False),
        (DetectionConfig(roi=(0, 0.6, 1, 1)), road(1), road(2, (600, 500, 700, 560)), True),
        # A small change is below the default threshold but counts with threshold 0.
        (DetectionConfig(), road(1), road(2, (600, 300, 616, 316)), False),
        (DetectionConfig(motion_threshold=0), road(1), road(2, (600, 300, 616, 316)), True),
    ],
    ids=[
        "noise only",
        "parked vehicle",
        "vehicle moved",
        "vehicle arrived",
        "outside roi",
        "inside roi",
        "tiny change",
        "tiny change, threshold 0",
    ],
)
def test_motion_gate(
    config: DetectionConfig, first: np.ndarray, second: np.ndarray, moved: bool
) -> None:
    gate = MotionGate(config)
    assert gate.moved(first)  # nothing to compare with yet
    assert gate.moved(second) is moved


def test_motion_gate_compares_with_the_last_examined_frame() -> None:
    gate = MotionGate(DetectionConfig())
    frames = [road(0), road(1, (100, 400, 400, 600)), road(2, (100, 400, 400, 600)), road(3)]
    assert [gate.moved(frame) for frame in frames] == [True, True, False, True]


@pytest.mark.parametrize(
    ("roi", "box"),
    [
        (None, (0, 0, 1280, 720)),
        ((0.0, 0.5, 1.0, 1.0), (0, 360, 1280, 720)),
        ((0.25, 0.1, 0.75, 0.9), (320, 72, 960, 648)),
        ((0.0, 0.0, 0.0001, 0.0001), (0, 0, 1, 1)),
    ],
)
def test_region_box(roi: tuple[float, float, float, float] | None, box: tuple[int, ...]) -> None:
    assert region_box(ROAD, roi) == box
    x1, y1, x2, y2 = box
    assert region(np.zeros(ROAD, np.uint8), roi).shape == (y2 - y1, x2 - x1, 3)


def still_frame(index: int, connection: int = 0, fps: float = 5.0) -> Frame:
    image = np.zeros((360, 640, 3), np.uint8)
    return Frame("cam", index, image, datetime.now(UTC), index / fps, connection)


def detected(schedule: DetectionSchedule, frames: list[Frame], unread: bool = False) -> list[int]:
    return [f.index for f in frames if schedule.due(f, schedule.moved(f), unread=unread)]


def test_the_first_frames_of_each_connection_are_detected_though_nothing_moves() -> None:
    schedule = DetectionSchedule(DetectionConfig(start_frames=3, unread_rate_fps=0))
    assert detected(schedule, [still_frame(i) for i in range(10)]) == [0, 1, 2]
    reconnected = [still_frame(i, connection=2) for i in range(10, 20)]
    assert detected(schedule, reconnected) == [10, 11, 12]


def test_an_unread_plate_is_looked_at_again_at_the_unread_rate() -> None:
    schedule = DetectionSchedule(DetectionConfig(start_frames=0, unread_rate_fps=1.0))
    frames = [still_frame(i) for i in range(12)]  # 5 a second, nothing moves
    assert detected(schedule, frames[:1]) == [0]  # the first frame: a new connection moved
    assert detected(schedule, frames[1:], unread=True) == [5, 10]
    assert detected(schedule, [still_frame(i) for i in range(12, 20)], unread=False) == []


def test_a_new_plate_is_followed_though_nothing_moves_after_it_appeared() -> None:
    schedule = DetectionSchedule(DetectionConfig(start_frames=3, unread_rate_fps=0))
    assert detected(schedule, [still_frame(i) for i in range(5)]) == [0, 1, 2]
    schedule.follow()  # frame 2's detection found a plate no track holds
    assert detected(schedule, [still_frame(i) for i in range(5, 12)]) == [5, 6, 7]


def test_a_quiet_scene_is_still_looked_at_at_the_idle_rate() -> None:
    config = DetectionConfig(start_frames=1, unread_rate_fps=0, idle_rate_fps=0.5)
    frames = [still_frame(i) for i in range(26)]  # 5 a second for 5 s, nothing moves
    assert detected(DetectionSchedule(config), frames) == [0, 10, 20]
    off = config.model_copy(update={"idle_rate_fps": 0})
    assert detected(DetectionSchedule(off), frames) == [0]
