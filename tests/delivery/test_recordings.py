"""Evidence files: safe names, retention by age and total size, and full or read-only
disks (a real tmpfs)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import RecordingsConfig
from streamer.delivery.recordings import EvidenceWriter
from streamer.events import NOT_FOUND, Phase, PlateEvent
from streamer.sources.frame import Frame
from streamer.vision.track import PlateCrop
from streamer.vision.vehicles import Vehicle

from support.daemon import streamer, write_config
from support.disks import fill, read_only, tmpfs
from support.factories import make_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_names_come_from_safe_parts_only(tmp_path: Path) -> None:
    writer = EvidenceWriter(RecordingsConfig(directory=tmp_path))
    frame = Frame("gate-1", 0, np.zeros((100, 200, 3), np.uint8), T0, 0.0)
    crop = PlateCrop(np.zeros((20, 60, 3), np.uint8), (10, 10, 70, 30), 0.9, 0.5, frame)
    event = PlateEvent(
        "gate-1", "../../etc/passwd", 0.9, 0.9, (10, 10, 70, 30), T0, T0, 0.0, 3, False, NOT_FOUND
    )
    saved = writer.save(event, crop)
    assert saved is not None
    crop_path, snapshot_path, vehicle_path = saved
    assert vehicle_path is None  # no vehicle holds this plate
    assert crop_path == str(tmp_path / "gate-1" / "2026-01-01" / f"{event.event_id}-crop.jpg")
    assert snapshot_path is not None
    assert Path(snapshot_path).name == f"{event.event_id}-frame.jpg"
    umask = os.umask(0o022)
    os.umask(umask)
    assert Path(crop_path).stat().st_mode & 0o777 == 0o666 & ~umask  # readable as before
    assert sorted(p.name for p in Path(crop_path).parent.iterdir()) == sorted(
        [Path(crop_path).name, Path(snapshot_path).name]
    )


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


def make_crop(seed: int) -> PlateCrop:
    """A crop and its frame: plain for seed 0 (JPEGs of a few KB), else noise, different
    for each seed (some 300 KB: more than the plain ones freed)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) * (seed != 0)
    frame = Frame("gate-1", 0, image.astype(np.uint8), T0, 0.0)
    return PlateCrop(image[100:140, 100:260].copy(), (100, 100, 260, 140), 0.9, 0.5, frame)


def test_a_final_image_that_cannot_be_written_leaves_the_early_events_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The evidence disk (a 1 MB tmpfs) fills between a vehicle's early and final events:
    the final event's images are not written, the early event's stay as they were, and
    one line says why (ENOSPC); once there is room the images are written again."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        writer = EvidenceWriter(RecordingsConfig(directory=disk))
        final = make_event("KA01AB1234")
        early = replace(final, phase=Phase.EARLY)
        named = writer.save(early, make_crop(0))
        assert named is not None
        kept = {path: Path(path).read_bytes() for path in named if path}
        assert len(kept) == 2
        filler = fill(disk)
        with caplog.at_level(logging.INFO):
            assert writer.save(final, make_crop(2)) is None
            assert writer.save(final, make_crop(3)) is None  # still full: no second line
            assert {path: Path(path).read_bytes() for path in kept} == kept
            assert sorted(p.name for p in Path(next(iter(kept))).parent.iterdir()) == sorted(
                Path(path).name for path in kept
            )  # nothing half-written left behind
            filler.unlink()
            assert writer.save(final, make_crop(4)) == named
    (outage,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "No space left on device" in outage.getMessage()
    assert any("saved again" in r.getMessage() for r in caplog.records)


def test_a_read_only_evidence_folder_stops_the_start_in_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        (disk / "evidence").mkdir()
        read_only(disk)
        config = write_config(tmp_path, [{"name": "gate", "source": str(tmp_path / "x.mp4")}])
        config.write_text(
            config.read_text().replace(str(tmp_path / "evidence"), str(disk / "evidence"))
        )
        result = streamer("run", "--config", config)
    assert result.returncode == 1
    folder = disk / "evidence"
    assert result.stderr.strip().splitlines() == [
        f"streamer: recordings.directory: cannot write in {folder} (Read-only file system)"
    ]


def test_a_vehicle_without_a_plate_box_has_its_crop_and_an_annotated_frame(tmp_path: Path) -> None:
    writer = EvidenceWriter(RecordingsConfig(directory=tmp_path))
    frame = Frame("gate-1", 0, np.full((100, 200, 3), 90, np.uint8), T0, 0.0)
    vehicle = Vehicle("car", 0.9, (20, 10, 180, 90))
    event = PlateEvent(
        "gate-1", None, 0.0, 0.9, vehicle.box, T0, T0, 0.0, 3, False, NOT_FOUND,
        reason="no plate", vehicle=vehicle,
    )  # fmt: skip
    saved = writer.save(event, None, vehicle, frame)
    assert saved is not None
    crop_path, snapshot_path, vehicle_path = saved
    assert crop_path is None
    assert snapshot_path is not None
    assert Path(snapshot_path).is_file()
    assert vehicle_path is not None
    assert cv2.imread(vehicle_path).shape[:2] == (80, 160)
