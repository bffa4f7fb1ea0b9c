"""Frame sources: video files, RTSP and HTTP streams, webcams, through OpenCV.

Each source is read in its own thread (OpenCV blocks) and handed to the asyncio pipeline
through :func:`read_in_thread`:

- a recorded file keeps every frame: when the pipeline is slower, the reading thread waits;
- a live source (or a file with ``realtime: true``) never builds latency: the freshest
  frame wins, and frames the pipeline had no time for are dropped and counted.

Every frame is decoded, but only frames due at the camera's detection rate
(``detection.rate_fps``) are converted to BGR and handed on (:class:`Sampler`): converting
costs as much as a third of decoding, and the frames between would not be detected.

Live sources never give up: when a stream cannot be opened or stops delivering frames,
the source reports ``offline`` with the reason, waits with exponential backoff and jitter,
reports ``reconnecting`` and tries again; ``online`` once frames flow. Credentials in URLs
are masked in every message (:func:`mask_url`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from streamer.config import CameraConfig, LiveConfig

logger = logging.getLogger(__name__)

# A camera that is down makes OpenCV and FFmpeg print a warning per attempt; the source's
# own status line says what is wrong, once. (Read when FFmpeg is first used.)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

#: Called from a source's thread when its state changes: (state, reason).
StatusCallback = Callable[[str, str | None], None]

ONLINE, OFFLINE, RECONNECTING = "online", "offline", "reconnecting"


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


_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``.

    Example:
        >>> mask_url("rtsp://admin:s3cret@10.0.0.7:554/stream1")
        'rtsp://admin:***@10.0.0.7:554/stream1'
    """
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)


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
        if self.decoded == 0 and not self._closed.is_set():
            raise SourceError(f"{self.path}: no frames could be decoded")

    def close(self) -> None:
        """Stop at the next frame."""
        self._closed.set()


_CAPTURE_LOCK = threading.Lock()

#: FFmpeg decodes each video on one thread. Its default, a thread per core, decodes one
#: video faster but costs a fifth more CPU per frame (720p MPEG-4: 0.92 against 0.71 ms),
#: and streamer decodes far below one thread's speed while the cores detect and read. It
#: also makes a stalled read's timeout the same on every machine (see ``_open_capture``).
DECODER_THREADS = [cv2.CAP_PROP_N_THREADS, 1]


def _open_capture(target: str | int, config: LiveConfig) -> cv2.VideoCapture:
    """Open a stream or webcam with the configured timeouts (may block up to the timeout)."""
    # FFmpeg gives up a stalled read only after the read timeout has passed once per
    # decoder thread plus once (measured on a paused RTSP server: 2 timeouts with one
    # thread, 3 with two). With one decoder thread, half the watchdog makes a silent
    # stream count as offline after watchdog_s, whatever the number of cores.
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(config.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(config.watchdog_s * 1000 / 2),
    ]
    if isinstance(target, int) or target.startswith("/dev/"):
        return cv2.VideoCapture(target, cv2.CAP_V4L2)
    # FFmpeg takes the RTSP transport only from this variable, read when a stream opens:
    # set it under a lock so cameras with different transports do not race.
    with _CAPTURE_LOCK:
        previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{config.transport}"
        try:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params + DECODER_THREADS)
        finally:
            if previous is None:
                os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
            else:
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous


def backoff_delays(config: LiveConfig, rng: random.Random | None = None) -> Iterator[float]:
    """Waits before each reconnection: doubling from the initial wait up to the cap, each
    randomised by ``±jitter``."""
    rng = rng or random.Random()
    delay = config.reconnect_initial_s
    while True:
        yield delay * rng.uniform(1 - config.reconnect_jitter, 1 + config.reconnect_jitter)
        delay = min(config.reconnect_max_s, delay * 2)


class CaptureSource:
    """A live stream (RTSP, HTTP/MJPEG) or webcam, reconnected for as long as it runs."""

    live = True

    def __init__(
        self,
        camera: str,
        source: str,
        config: LiveConfig,
        on_status: StatusCallback | None = None,
        rate_fps: float = 0.0,
    ) -> None:
        self.camera = camera
        self.target: str | int = int(source) if source.isdigit() else source
        self.description = mask_url(source) if isinstance(self.target, str) else f"webcam {source}"
        self.config = config
        self.on_status = on_status
        self.rate_fps = rate_fps
        self.decoded = 0
        self._closed = threading.Event()
        self.state: str | None = None

    def _report(self, state: str, reason: str | None = None) -> None:
        if state == self.state and state != RECONNECTING:
            return
        self.state = state
        reason = mask_url(reason) if reason else None
        level = logging.INFO if state == ONLINE else logging.WARNING
        logger.log(level, "camera %s: %s%s", self.camera, state, f" ({reason})" if reason else "")
        if self.on_status is not None:
            self.on_status(state, reason)

    def frames(self) -> Iterator[Frame]:
        """Frames for as long as the source runs, reconnecting whenever the stream fails."""
        delays = backoff_delays(self.config)
        sampler = Sampler(self.rate_fps)
        attempt = 0
        while not self._closed.is_set():
            if attempt:
                wait = next(delays)
                if self._closed.wait(wait):
                    break
                self._report(RECONNECTING, f"attempt {attempt}")
            attempt += 1
            capture = _open_capture(self.target, self.config)
            try:
                if not capture.isOpened():
                    self._report(OFFLINE, f"cannot open {self.description}")
                    continue
                last_frame = time.monotonic()
                while not self._closed.is_set():
                    if not capture.grab():
                        silent = time.monotonic() - last_frame
                        self._report(
                            OFFLINE,
                            f"no frame from {self.description} for "
                            f"{silent:.1f} s (stream ended or dropped)",
                        )
                        break
                    last_frame = time.monotonic()
                    index = self.decoded
                    self.decoded += 1
                    if self.state != ONLINE:
                        self._report(ONLINE)
                        delays, attempt = backoff_delays(self.config), 1
                    if not sampler.due(last_frame):
                        continue
                    ok, image = capture.retrieve()
                    if ok and image is not None:
                        yield Frame(self.camera, index, image, datetime.now(UTC), None)
            finally:
                capture.release()

    def close(self) -> None:
        """Stop after the current read or wait."""
        self._closed.set()


def is_live(source: str) -> bool:
    """Whether a configured source string names a stream or webcam rather than a file."""
    return "://" in source or source.isdigit() or source.startswith("/dev/video")


def open_source(camera: CameraConfig, on_status: StatusCallback | None = None) -> Source:
    """The :class:`Source` for a camera's configured ``source``.

    Raises:
        SourceError: for URL schemes OpenCV cannot read.
    """
    source = camera.source
    rate = camera.detection.rate_fps
    if not is_live(source):
        return FileSource(camera.name, Path(source), realtime=camera.realtime, rate_fps=rate)
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme and scheme not in {"rtsp", "rtsps", "http", "https", "rtmp"}:
        raise SourceError(
            f"{mask_url(source)}: unsupported scheme {scheme!r} "
            "(use rtsp://, http://, https://, rtmp://, a file or a webcam)"
        )
    return CaptureSource(camera.name, source, camera.live, on_status, rate_fps=rate)


_DONE = object()


async def read_in_thread(
    source: Source,
    stop: asyncio.Event | None = None,
    maxsize: int = 8,
    on_drop: Callable[[], None] | None = None,
) -> AsyncIterator[Frame]:
    """Iterate ``source.frames()`` in a dedicated thread, without blocking the event loop.

    For a file, the queue holds at most ``maxsize`` frames and the thread waits when it
    is full, so no frame is lost. For a live source the queue holds one frame: a new frame
    replaces an unread one, and ``on_drop`` is called for each replaced frame. An exception
    in the thread is re-raised here. Setting ``stop`` (or leaving the ``async for``) ends
    the iteration without waiting for the next frame.
    """
    loop = asyncio.get_running_loop()
    # Live: unbounded, but drained before each new frame, so it holds at most one frame
    # (plus the end marker, which must never be dropped).
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=0 if source.live else maxsize)
    closed = threading.Event()

    def offer_latest(frame: object) -> None:  # runs on the loop
        while not queue.empty():
            queue.get_nowait()
            if on_drop is not None:
                on_drop()
        queue.put_nowait(frame)

    def put(item: object) -> None:
        if closed.is_set():
            return
        if source.live:
            callback = offer_latest if isinstance(item, Frame) else queue.put_nowait
            try:
                loop.call_soon_threadsafe(callback, item)
            except RuntimeError:  # the loop closed while this thread was reading
                closed.set()
            return
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not closed.is_set():
            try:
                future.result(timeout=0.2)
                return
            except TimeoutError:
                continue
        future.cancel()

    def produce() -> None:
        try:
            for frame in source.frames():
                if closed.is_set():
                    return
                put(frame)
            put(_DONE)
        except Exception as error:  # handed to the consumer, which reports it
            put(error)

    thread = threading.Thread(target=produce, name=f"source-{source.camera}", daemon=True)
    thread.start()
    stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
    try:
        while True:
            getting = asyncio.ensure_future(queue.get())
            await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not getting.done():
                getting.cancel()
                return
            item = getting.result()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, Frame)
            yield item
    finally:
        stopping.cancel()
        closed.set()
        source.close()
        while not queue.empty():
            queue.get_nowait()
        # The thread may be blocked in OpenCV for up to a read timeout; it is a daemon
        # thread and releases its capture when that returns, so do not wait for it long.
        await asyncio.to_thread(thread.join, 1.0)
