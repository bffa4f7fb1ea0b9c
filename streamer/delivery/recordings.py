"""Evidence files: the plate crop and an annotated snapshot of its frame, per event.

Paths are built only from safe parts: the camera's name (validated by the config to
letters, digits, ``_ . -``), the UTC date and the event's UUID. Nothing a camera or a
request supplied (such as the plate text) becomes part of a file name.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np

from streamer.config import RecordingsConfig
from streamer.events import PlateEvent
from streamer.vision.track import PlateCrop

logger = logging.getLogger(__name__)


class EvidenceWriter:
    """Writes JPEG evidence under ``recordings.directory/<camera>/<YYYY-MM-DD>/``."""

    def __init__(self, config: RecordingsConfig) -> None:
        self.config = config
        try:
            config.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(
                f"recordings.directory: cannot create {config.directory} ({error.strerror})"
            ) from None

    def save(self, event: PlateEvent, crop: PlateCrop) -> tuple[str | None, str | None]:
        """Write the crop and snapshot for ``event``; returns their paths (None if off)."""
        folder = self.config.directory / event.camera / event.first_seen.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        crop_path = snapshot_path = None
        if self.config.save_crops:
            crop_path = self._write(folder / f"{event.event_id}-crop.jpg", crop.image)
        if self.config.save_snapshots:
            image = annotate(crop.frame.image, crop.bbox, event.plate_number)
            snapshot_path = self._write(folder / f"{event.event_id}-frame.jpg", image)
        return crop_path, snapshot_path

    def prune(self, now: float | None = None) -> int:
        """Apply retention: delete evidence older than ``max_age_days``, then the oldest
        files until the total is under ``max_total_mb``. Returns how many were deleted."""
        now = time.time() if now is None else now
        files = []
        for path in self.config.directory.rglob("*.jpg"):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        deleted = 0
        total = sum(size for _, size, _ in files)
        max_age = self.config.max_age_days * 86_400
        max_total = self.config.max_total_mb * 1_000_000
        for mtime, size, path in files:
            too_old = max_age > 0 and now - mtime > max_age
            too_big = max_total > 0 and total > max_total
            if not (too_old or too_big):
                break
            path.unlink(missing_ok=True)
            total -= size
            deleted += 1
        for folder in sorted(self.config.directory.rglob("*"), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if deleted:
            logger.info("retention: deleted %d evidence files", deleted)
        return deleted

    def _write(self, path: Path, image: np.ndarray) -> str:
        params = [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality]
        if not cv2.imwrite(str(path), image, params):
            raise OSError(f"cannot write evidence image {path}")
        return str(path)


def annotate(image: np.ndarray, bbox: tuple[int, int, int, int], label: str) -> np.ndarray:
    """A copy of ``image`` with the plate box and its text drawn on it."""
    out = image.copy()
    x1, y1, x2, y2 = bbox
    thickness = max(2, image.shape[0] // 360)
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 220, 0), thickness)
    scale = max(0.6, image.shape[0] / 900)
    (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    top = max(0, y1 - height - baseline - 6)
    cv2.rectangle(out, (x1, top), (x1 + width + 8, top + height + baseline + 6), (0, 220, 0), -1)
    cv2.putText(
        out,
        label,
        (x1 + 4, top + height + 3),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (0, 0, 0),
        2,
        cv2.LINE_AA,
    )
    return out
