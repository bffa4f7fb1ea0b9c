"""Live sources: RTSP and HTTP streams and webcams, reconnected for as long as they run."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import cv2

from streamer.config import LiveConfig, mask_url
from streamer.retry import backoff
from streamer.sources.frame import DECODER_THREADS, CameraState, Frame, Sampler, StatusCallback

logger = logging.getLogger(__name__)

_CAPTURE_LOCK = threading.Lock()


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
        self._rng = random.Random()
        self.state: CameraState | None = None

    def _report(self, state: CameraState, reason: str | None = None) -> None:
        if state == self.state and state != CameraState.RECONNECTING:
            return
        self.state = state
        reason = mask_url(reason) if reason else None
        level = logging.INFO if state == CameraState.ONLINE else logging.WARNING
        logger.log(level, "camera %s: %s%s", self.camera, state, f" ({reason})" if reason else "")
        if self.on_status is not None:
            self.on_status(state, reason)

    def frames(self) -> Iterator[Frame]:
        """Frames for as long as the source runs, reconnecting whenever the stream fails."""
        sampler = Sampler(self.rate_fps)
        attempt = connection = 0
        while not self._closed.is_set():
            if attempt:
                live = self.config
                wait = backoff(
                    attempt,
                    live.reconnect_initial_s,
                    live.reconnect_max_s,
                    self._rng,
                    live.reconnect_jitter,
                )
                if self._closed.wait(wait):
                    break
                self._report(CameraState.RECONNECTING, f"attempt {attempt}")
            attempt += 1
            capture = _open_capture(self.target, self.config)
            try:
                if not capture.isOpened():
                    self._report(CameraState.OFFLINE, f"cannot open {self.description}")
                    continue
                connection += 1
                last_frame = time.monotonic()
                while not self._closed.is_set():
                    if not capture.grab():
                        silent = time.monotonic() - last_frame
                        self._report(
                            CameraState.OFFLINE,
                            f"no frame from {self.description} for "
                            f"{silent:.1f} s (stream ended or dropped)",
                        )
                        break
                    last_frame = time.monotonic()
                    index = self.decoded
                    self.decoded += 1
                    if self.state != CameraState.ONLINE:
                        self._report(CameraState.ONLINE)
                        attempt = 1
                    if not sampler.due(last_frame):
                        continue
                    ok, image = capture.retrieve()
                    if ok and image is not None:
                        yield Frame(self.camera, index, image, datetime.now(UTC), None, connection)
            finally:
                capture.release()

    def close(self) -> None:
        """Stop after the current read or wait."""
        self._closed.set()
