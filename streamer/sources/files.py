"""Recorded video files, with their media timestamps, damage reports and identities."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

from streamer.sources.frame import DECODER_THREADS, Frame, Sampler, SourceError

logger = logging.getLogger(__name__)

#: A file whose decoding stops short of its declared frame count by more than this share
#: is damaged: its camera fails (a non-zero exit). Less than this, and more than a frame,
#: is a warning. Either way the vehicles in the frames decoded are reported.
DAMAGED_LIMIT = 0.10

#: Bytes hashed at each end of a file for :func:`file_identity`.
IDENTITY_BYTES = 1 << 20


def file_identity(path: Path) -> str:
    """A fingerprint of a file's content that is cheap for large files: its size and a
    SHA-256 of its first and last MiB. The same recording copied elsewhere keeps it.

    Raises:
        OSError: when the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as file:
        size = file.seek(0, 2)
        digest.update(str(size).encode())
        file.seek(0)
        digest.update(file.read(IDENTITY_BYTES))
        file.seek(max(IDENTITY_BYTES, size - IDENTITY_BYTES))
        digest.update(file.read(IDENTITY_BYTES))
    return digest.hexdigest()[:16]


def damage(path: Path, decoded: int, declared: int) -> str | None:
    """What to say of a file that decoded ``decoded`` of its ``declared`` frames: ``None``
    when nothing is missing (a frame of difference is the container's rounding).

    Raises:
        SourceError: when more than :data:`DAMAGED_LIMIT` of the frames are missing.
    """
    missing = declared - decoded
    if declared <= 0 or missing <= 1:
        return None
    message = (
        f"{path}: damaged: {missing} of its {declared} frames ({missing / declared:.0%}) "
        f"could not be decoded; the {decoded} before were processed"
    )
    if missing / declared > DAMAGED_LIMIT:
        raise SourceError(message)
    return message


class FileSource:
    """The frames of a recorded video file, with their media timestamps.

    With ``realtime``, frames are released at their media time (as a camera would deliver
    them) and the source counts as live, so a slow pipeline drops frames instead of lagging.
    With ``rate_fps``, only the frames due at that rate are converted and handed on.
    """

    def __init__(
        self, camera: str, path: Path, realtime: bool = False, rate_fps: float = 0.0
    ) -> None:
        self.camera = camera
        self.path = path
        self.live = realtime
        self.rate_fps = rate_fps
        self.decoded = 0
        self._closed = threading.Event()

    def open(self) -> cv2.VideoCapture:
        """Open the file, failing with one line that names it and the reason.

        Raises:
            SourceError: when the file is missing, unreadable or not a video.
        """
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, DECODER_THREADS)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.path}: cannot open as video (unreadable or corrupt)")
        return capture

    def frames(self) -> Iterator[Frame]:
        """Decode the file front to back; an empty file is an error, not a silent success."""
        capture = self.open()
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        sampler = Sampler(self.rate_fps)
        started = datetime.now(UTC)
        started_clock = time.monotonic()
        try:
            while not self._closed.is_set():
                if not capture.grab():
                    break
                index = self.decoded
                self.decoded += 1
                media_time = max(0.0, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
                if self.live:
                    delay = started_clock + media_time - time.monotonic()
                    if delay > 0 and self._closed.wait(delay):
                        break
                if not sampler.due(media_time):
                    continue
                ok, image = capture.retrieve()
                if not ok:
                    continue
                yield Frame(
                    self.camera, index, image, started + timedelta(seconds=media_time), media_time
                )
        finally:
            capture.release()
        if self._closed.is_set():
            return
        if self.decoded == 0:
            raise SourceError(f"{self.path}: no frames could be decoded")
        if (warning := damage(self.path, self.decoded, declared)) is not None:
            logger.warning("camera %s: %s", self.camera, warning)

    def close(self) -> None:
        """Stop at the next frame."""
        self._closed.set()
