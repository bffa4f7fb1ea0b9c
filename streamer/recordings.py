"""Evidence files: the plate crop and an annotated snapshot of its frame, per event.

Paths are built only from safe parts: the camera's name (validated by the config to
letters, digits, ``_ . -``), the UTC date and the event's UUID. Nothing a camera or a
request supplied (such as the plate text) becomes part of a file name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from streamer.config import RecordingsConfig
from streamer.events import PlateEvent
from streamer.track import PlateCrop

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
