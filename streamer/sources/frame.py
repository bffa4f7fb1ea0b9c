"""What every source shares: the :class:`Frame`, the :class:`Source` protocol, the
detection-rate :class:`Sampler`, and URL masking."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import cv2
import numpy as np


class CameraState(StrEnum):
    """Where a camera stands. A live camera is ``online``, ``offline`` or ``reconnecting``
    (the states its :class:`CameraStatus` events report); a recorded file is ``file``
    while it is read, then ``finished``, or ``failed`` when it could not be read."""

    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"
    RECONNECTING = "reconnecting"
    FILE = "file"
    FINISHED = "finished"
    FAILED = "failed"


# A camera that is down makes OpenCV and FFmpeg print a warning per attempt; the source's
# own status line says what is wrong, once. (Read when FFmpeg is first used.)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

#: Called from a source's thread when its state changes: (state, reason).
StatusCallback = Callable[[CameraState, str | None], None]

#: FFmpeg decodes each video on one thread. Its default, a thread per core, decodes one
#: video faster but costs more CPU per frame, and streamer decodes far below one thread's
#: speed while the cores detect and read. It also makes a stalled read's timeout the same
#: on every machine (see ``_open_capture``).
DECODER_THREADS = [cv2.CAP_PROP_N_THREADS, 1]


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame of a camera.

    Attributes:
        camera: the camera's configured name.
        index: position of the frame among the frames the source decoded, from 0.
        image: BGR pixels, ``(height, width, 3)``.
        captured_at: wall-clock time of the frame (for a file: start of the replay plus
            the frame's media time, so gaps in the media keep their length).
        media_time_s: position in a recorded file in seconds; ``None`` for live sources.
        connection: which connection of the source delivered it: 0 for a file, counting
            up from 1 with each (re)connection of a live source.
    """

    camera: str
    index: int
    image: np.ndarray = field(repr=False)
    captured_at: datetime
    media_time_s: float | None
    connection: int = 0

    @property
    def clock_s(self) -> float:
        """Seconds on the source's own clock: media time for files, else the wall clock."""
        if self.media_time_s is not None:
            return self.media_time_s
        return self.captured_at.timestamp()


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message names it and says why."""


class Source(Protocol):
    """Something that yields frames; ``frames()`` blocks and runs in a thread."""

    camera: str
    #: True when the freshest frame should win (frames may be dropped).
    live: bool
    #: Frames decoded so far, including those not handed on (see :class:`Sampler`).
    decoded: int

    def frames(self) -> Iterator[Frame]:
        """Decoded frames in order; a file raises :class:`SourceError` when unreadable."""
        ...

    def close(self) -> None:
        """Ask ``frames()`` to end soon (called from another thread)."""
        ...


class Sampler:
    """Says which frames are due at ``rate_fps`` on the source's clock (0: every frame).

    The schedule keeps the average rate when frames arrive unevenly, and restarts after a
    gap (a reconnection, a pause in the media) instead of catching up with a burst.

    Example:
        >>> sampler = Sampler(10)
        >>> [sampler.due(t / 25) for t in range(6)]
        [True, False, False, True, False, True]
    """

    def __init__(self, rate_fps: float) -> None:
        self.interval = 1.0 / rate_fps if rate_fps > 0 else 0.0
        self._next: float | None = None

    def due(self, clock_s: float) -> bool:
        """Whether the frame at ``clock_s`` (seconds, increasing) should be handed on."""
        if self.interval == 0.0:
            return True
        if self._next is not None and clock_s < self._next - 1e-6:
            return False
        start = self._next
        if start is None or clock_s - start >= self.interval:
            start = clock_s
        self._next = start + self.interval
        return True
