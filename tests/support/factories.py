"""Small factories for the types the stages pass: plate events, line boxes."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamer.events import NOT_FOUND, DuesResult, Phase, PlateEvent
from streamer.reading.lines import LineBox
from streamer.reading.ocr import TextRead

#: The moment factory events happen at, unless told otherwise.
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_event(
    plate: str = "KA01AB1234",
    *,
    dues: bool = False,
    phase: Phase = Phase.FINAL,
    at: datetime = T0,
    **fields: Any,
) -> PlateEvent:
    """A plate event of camera ``gate``; ``dues``: 100.00 pending; any other field by name."""
    result = DuesResult(True, True, 100.0, "Fine") if dues else NOT_FOUND
    event = PlateEvent("gate", plate, 0.9, 0.8, (1, 2, 3, 4), at, at, 1.0, 10, True, result)
    return replace(event, phase=phase, **fields)


def box(x1: float, y1: float, x2: float, y2: float) -> LineBox:
    """A line box in crop pixels."""
    return LineBox(x1, y1, x2, y2)


def turned_box(angle: float, length: float = 160, thickness: float = 24) -> LineBox:
    """A text line ``length`` by ``thickness`` turned ``angle`` degrees (as
    :attr:`LineBox.angle` measures) about the point (100, 60), as the detector gives it."""
    along = (math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    across = (-along[1], along[0])
    corners = [
        (
            100 + sx * length / 2 * along[0] + sy * thickness / 2 * across[0],
            60 + sx * length / 2 * along[1] + sy * thickness / 2 * across[1],
        )
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    return LineBox.around(corners)


class ScriptedEngine:
    """Reads each view as told: by call order."""

    name = "scripted"

    def __init__(self, reads: list[TextRead]) -> None:
        self.reads = list(reads)
        self.calls = 0

    def read(self, crop: np.ndarray) -> TextRead:
        self.calls += 1
        return self.reads.pop(0)


class NoLines:
    """A line finder that finds nothing."""

    def find(self, crop: np.ndarray) -> list[LineBox]:
        return []


def damaged_copy(video: Path, path: Path, flips: int = 2000, seed: int = 1) -> Path:
    """``video`` with ``flips`` bytes inverted in its middle half (its header and index,
    at either end, stay intact, so that it still opens)."""
    data = bytearray(video.read_bytes())
    rng = random.Random(seed)
    for _ in range(flips):
        data[rng.randrange(len(data) // 4, 3 * len(data) // 4)] ^= 0xFF
    path.write_bytes(bytes(data))
    return path
