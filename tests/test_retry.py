"""Backoff: doubling to a cap, with jitter."""

from __future__ import annotations

import random

from streamer.retry import backoff


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff(failures, 1, 8, rng, jitter=0.2) for failures in range(1, 8)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8, 8], strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    assert len(set(delays)) == len(delays)  # jittered, not identical
