"""Evidence files: safe names and retention by age and total size."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamer.config import RecordingsConfig
from streamer.delivery.recordings import EvidenceWriter
from streamer.events import NOT_FOUND, PlateEvent
from streamer.sources.frame import Frame
from streamer.vision.track import PlateCrop

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_names_come_from_safe_parts_only(tmp_path: Path) -> None:
    writer = EvidenceWriter(RecordingsConfig(directory=tmp_path))
    frame = Frame("gate-1", 0, np.zeros((100, 200, 3), np.uint8), T0, 0.0)
    crop = PlateCrop(np.zeros((20, 60, 3), np.uint8), (10, 10, 70, 30), 0.9, 0.5, frame)
    event = PlateEvent(
        "gate-1", "../../etc/passwd", 0.9, 0.9, (10, 10, 70, 30), T0, T0, 0.0, 3, False, NOT_FOUND
    )
    crop_path, snapshot_path = writer.save(event, crop)
    assert crop_path == str(tmp_path / "gate-1" / "2026-01-01" / f"{event.event_id}-crop.jpg")
    assert snapshot_path is not None
    assert Path(snapshot_path).name == f"{event.event_id}-frame.jpg"


def make_files(folder: Path, count: int, size: int, age_days: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n in range(count):
        path = folder / f"{age_days}-{n}.jpg"
        path.write_bytes(b"x" * size)
        stamp = time.time() - age_days * 86_400 - n
        os.utime(path, (stamp, stamp))
        files.append(path)
    return files


@pytest.mark.parametrize(
    ("max_age_days", "max_total_mb", "kept_old", "kept_new"),
    [(30, 0, 0, 5), (0, 0.7, 2, 5), (0, 0, 5, 5), (30, 0.3, 0, 3)],
    ids=["by-age", "by-size", "keep-all", "both"],
)
def test_retention(
    tmp_path: Path, max_age_days: float, max_total_mb: float, kept_old: int, kept_new: int
) -> None:
    old = make_files(tmp_path / "gate" / "2025-01-01", 5, 100_000, age_days=40)
    new = make_files(tmp_path / "gate" / "2026-01-01", 5, 100_000, age_days=1)
    writer = EvidenceWriter(
        RecordingsConfig(directory=tmp_path, max_age_days=max_age_days, max_total_mb=max_total_mb)
    )
    writer.prune()
    assert sum(p.exists() for p in old) == kept_old
    assert sum(p.exists() for p in new) == kept_new
    if kept_old == 0:
        assert not (tmp_path / "gate" / "2025-01-01").exists()  # empty folders go too
