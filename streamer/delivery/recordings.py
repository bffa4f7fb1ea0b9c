"""Evidence files: the plate crop, its vehicle's crop and an annotated snapshot of their
frame, per event.

Paths are built only from safe parts: the camera's name (validated by the config to
letters, digits, ``_ . -``), the UTC date and the event's UUID. Nothing a camera or a
request supplied (such as the plate text) becomes part of a file name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from streamer.config import RecordingsConfig
from streamer.events import PlateEvent
from streamer.retry import Outage
from streamer.sources.frame import Frame
from streamer.vision.track import PlateCrop
from streamer.vision.vehicles import Vehicle, annotate_vehicle, crop_of

logger = logging.getLogger(__name__)


class EvidenceWriter:
    """Writes JPEG evidence under ``recordings.directory/<camera>/<YYYY-MM-DD>/``.

    A vehicle's final event writes its images over its early event's (same names), each
    image to a new file renamed over the old one only once both are written: a write that
    fails (a full or read-only disk) leaves the early event's images as they were, so no
    file an event already named disappears.
    """

    def __init__(self, config: RecordingsConfig) -> None:
        """Make the folder, and check that files can be made in it.

        Raises:
            OSError: in one line, when it cannot be made or written to.
        """
        self.config = config
        self._outage = Outage(logger)
        try:
            config.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(
                f"recordings.directory: cannot create {config.directory} ({error.strerror})"
            ) from None
        try:
            with tempfile.TemporaryFile(dir=config.directory):
                pass
        except OSError as error:
            raise OSError(
                f"recordings.directory: cannot write in {config.directory} ({error.strerror})"
            ) from None

    def save(
        self,
        event: PlateEvent,
        crop: PlateCrop | None,
        vehicle: Vehicle | None = None,
        frame: Frame | None = None,
    ) -> tuple[str | None, str | None, str | None] | None:
        """Write the plate ``crop``, the ``vehicle``'s crop and the snapshot of their frame
        (the crop's, or ``frame`` for an event without a plate box) for ``event``; returns
        their paths (``None`` for an image that is off or missing), or ``None`` when they
        could not be written (one line says why when that starts, one when they are written
        again)."""
        folder = self.config.directory / event.camera / event.first_seen.strftime("%Y-%m-%d")
        frame = crop.frame if crop is not None else frame
        images: dict[Path, np.ndarray] = {}
        crop_file = folder / f"{event.event_id}-crop.jpg"
        vehicle_file = folder / f"{event.event_id}-vehicle.jpg"
        if self.config.save_crops and crop is not None:
            images[crop_file] = crop.image
        if self.config.save_crops and vehicle is not None and frame is not None:
            images[vehicle_file] = crop_of(frame.image, vehicle.box)
        labelled = crop.bbox if crop is not None else vehicle.box if vehicle is not None else None
        if self.config.save_snapshots and frame is not None and labelled is not None:
            image = annotate(frame.image, labelled, event.plate_number or event.reason or "")
            if vehicle is not None:
                annotate_vehicle(image, vehicle)
            images[folder / f"{event.event_id}-frame.jpg"] = image
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._write(images)
        except OSError as error:
            self._outage.failed(
                "evidence: images not saved in %s (%s): events name none (a final event "
                "keeps its early event's) until they can be written",
                folder,
                error.strerror or error,
            )
            return None
        self._outage.ended("evidence: images saved again in %s", self.config.directory)
        snapshot = folder / f"{event.event_id}-frame.jpg"
        return tuple(  # type: ignore[return-value]
            str(path) if path in images else None for path in (crop_file, snapshot, vehicle_file)
        )

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

    def _write(self, images: dict[Path, np.ndarray]) -> None:
        """Write every image to a new file, then rename each over its name: all of them,
        or (the new files removed again) none."""
        params = [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality]
        written: dict[Path, Path] = {}
        try:
            for path, image in images.items():
                ok, data = cv2.imencode(".jpg", image, params)
                if not ok:
                    raise OSError(f"cannot encode {path.name} as JPEG")
                new = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")
                # Made as cv2.imwrite made them: 0666 less the umask.
                descriptor = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                written[path] = new
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data.tobytes())
            for path, new in written.items():
                new.replace(path)
        except OSError:
            for new in written.values():
                with contextlib.suppress(OSError):
                    new.unlink(missing_ok=True)
            raise


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
