"""The detection-rate sampler: the average rate kept, no burst after a gap."""

from __future__ import annotations

import pytest

from streamer.sources.frame import Sampler


@pytest.mark.parametrize(
    ("rate", "fps", "seconds", "due"),
    [(0, 25, 10, 250), (8, 25, 10, 80), (5, 18, 10, 50), (10, 25, 10, 100), (30, 25, 10, 250)],
)
def test_sampler_keeps_the_rate(rate: float, fps: float, seconds: float, due: int) -> None:
    sampler = Sampler(rate)
    assert sum(sampler.due(i / fps) for i in range(round(seconds * fps))) == due


def test_sampler_restarts_after_a_gap_without_a_burst() -> None:
    sampler = Sampler(5)
    times = [0.0, 0.1, 0.2, 0.3, 7.0, 7.04, 7.08, 7.12, 7.2, 7.24]
    assert [t for t in times if sampler.due(t)] == [0.0, 0.2, 7.0, 7.2]
