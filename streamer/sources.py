"""Frame sources: recorded files today, through OpenCV's FFmpeg backend.

A source is read in its own thread (OpenCV blocks) and handed to the asyncio pipeline
through a bounded queue. A recorded file keeps every frame: when the queue is full the
reading thread waits, so a slow detector slows the replay instead of losing frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame of a camera.

    Attributes:
        camera: the camera's configured name.
        index: position of the frame in the source, from 0.
        image: BGR pixels, ``(height, width, 3)``.
        captured_at: wall-clock time of the frame (for a file: start of the replay plus
            the frame's media time, so gaps in the media keep their length).
        media_time_s: position in a recorded file in seconds; ``None`` for live sources.
    """

    camera: str
    index: int
    image: np.ndarray = field(repr=False)
    captured_at: datetime
    media_time_s: float | None

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

    def frames(self) -> Iterator[Frame]:
        """Decoded frames in order; raises :class:`SourceError` when it cannot be read."""
        ...


class FileSource:
    """Every frame of a recorded video file, with its media timestamp."""

    def __init__(self, camera: str, path: Path) -> None:
        self.camera = camera
        self.path = path

    def open(self) -> cv2.VideoCapture:
        """Open the file, failing with one line that names it and the reason.

        Raises:
            SourceError: when the file is missing, unreadable or not a video.
        """
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.path}: cannot open as video (unreadable or corrupt)")
        return capture

    def frames(self) -> Iterator[Frame]:
        """Decode the file front to back; an empty file is an error, not a silent success."""
        capture = self.open()
        started = datetime.now(UTC)
        index = 0
        try:
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                media_time = max(0.0, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
                yield Frame(
                    camera=self.camera,
                    index=index,
                    image=image,
                    captured_at=started + timedelta(seconds=media_time),
                    media_time_s=media_time,
                )
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise SourceError(f"{self.path}: no frames could be decoded")


def open_source(camera: str, source: str) -> Source:
    """The :class:`Source` for a configured ``source`` string.

    Raises:
        SourceError: for kinds of source this build cannot read.
    """
    if "://" in source or source.isdigit() or source.startswith("/dev/video"):
        raise SourceError(f"{source}: live sources are not supported yet; give a video file")
    return FileSource(camera, Path(source))


_DONE = object()


async def read_in_thread(source: Source, maxsize: int = 8) -> AsyncIterator[Frame]:
    """Iterate ``source.frames()`` in a dedicated thread, without blocking the event loop.

    The queue between the thread and the loop holds at most ``maxsize`` frames; the thread
    waits when it is full, so no frame is lost. An exception in the thread is re-raised
    here. Leaving the ``async for`` early stops the thread.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item: object) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                future.result(timeout=0.2)
                return
            except TimeoutError:
                continue
        future.cancel()

    def produce() -> None:
        try:
            for frame in source.frames():
                if stop.is_set():
                    return
                put(frame)
            put(_DONE)
        except Exception as error:  # handed to the consumer, which reports it
            put(error)

    thread = threading.Thread(target=produce, name=f"source-{source.camera}", daemon=True)
    thread.start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, Frame)
            yield item
    finally:
        stop.set()
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:
                queue.get_nowait()
        await asyncio.to_thread(thread.join, 5.0)
