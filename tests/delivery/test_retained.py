"""The retained MQTT state: plates today start again at local midnight."""

from __future__ import annotations

import time

from streamer.delivery.retained import DailyCounts


def test_plates_today_start_again_at_local_midnight() -> None:
    evening = time.mktime((2026, 11, 24, 23, 59, 0, 0, 0, -1))
    counts = DailyCounts(now=evening)
    assert counts.add("gate", "a", evening, now=evening)
    assert not counts.add("gate", "a", evening + 1, now=evening + 1)  # the same vehicle
    assert counts.add("gate", "b", evening + 2, now=evening + 2)
    assert counts.count("gate") == 2
    morning = evening + 120
    assert not counts.add("gate", "c", evening + 30, now=morning)  # committed yesterday
    assert counts.count("gate") == 0
    assert counts.add("gate", "d", morning, now=morning)
    assert counts.count("gate") == 1
    assert counts.midnight == time.mktime((2026, 11, 25, 0, 0, 0, 0, 0, -1))
