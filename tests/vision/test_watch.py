"""Vehicles that show no plate: the watch follows the vehicle model's looks and says when
one is due (driving at the camera, near, long enough, never with a plate box)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from streamer.config import VehiclesConfig
from streamer.sources.frame import Frame
from streamer.vision.direction import Box
from streamer.vision.vehicles import Vehicle
from streamer.vision.watch import VehicleWatch, WatchBudget

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
IMAGE = np.zeros((720, 1280, 3), np.uint8)


def frame(second: float) -> Frame:
    return Frame("gate", int(second * 25), IMAGE, T0 + timedelta(seconds=second), second)


def looks(boxes: list[Box], plates: list[list[Box]] | None = None) -> tuple[list[int], list[int]]:
    """The seconds at which the watch says a vehicle is due, and when it is gone, for a
    vehicle in ``boxes`` one look a second (then three empty looks)."""
    watch = VehicleWatch(VehiclesConfig(), min_seen_s=3.0)
    due, gone = [], []
    for second, box in enumerate(boxes):
        now, ended = watch.look(
            frame(second), [Vehicle("car", 0.9, box)], (plates or [[]] * len(boxes))[second]
        )
        due += [second] * len(now)
        gone += [second] * len(ended)
    for second in range(len(boxes), len(boxes) + 4):
        _, ended = watch.look(frame(second), [], [])
        gone += [second] * len(ended)
    return due, gone


def approaching(steps: int = 6) -> list[Box]:
    return [(500 - 20 * s, 200 + 10 * s, 780 + 20 * s, 420 + 30 * s) for s in range(steps)]


def test_a_vehicle_driving_at_the_camera_with_no_plate_is_due_once_seen_long_enough() -> None:
    assert looks(approaching()) == ([3], [9])


def test_a_vehicle_with_a_plate_box_is_never_due() -> None:
    boxes = approaching()
    plates: list[list[Box]] = [[] for _ in boxes]
    plates[2] = [(600, 400, 680, 425)]  # found late, but before it was due
    assert looks(boxes, plates) == ([], [])


def test_a_far_vehicle_or_one_driving_across_is_never_due() -> None:
    far = [(600 - 2 * s, 200 + s, 700 + 2 * s, 260 + 3 * s) for s in range(6)]  # 100 px wide
    across = [(100 + 150 * s, 300, 400 + 150 * s, 500) for s in range(6)]
    assert looks(far) == ([], [])
    assert looks(across) == ([], [])


def test_the_watch_budget_is_shared_and_refills_with_time() -> None:
    now = [0.0]
    budget = WatchBudget(2.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5  # one look's worth
    assert [budget.take() for _ in range(2)] == [True, False]
    now[0] = 10.0  # never more than a second's worth at once
    assert [budget.take() for _ in range(3)] == [True, True, False]
    assert all(WatchBudget(0).take() for _ in range(100))  # 0: no limit
