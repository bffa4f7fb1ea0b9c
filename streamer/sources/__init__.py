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

from pathlib import Path

from streamer.config import CameraConfig, mask_url
from streamer.config.sources import STREAM_SCHEMES
from streamer.sources.files import FileSource
from streamer.sources.frame import Source, SourceError, StatusCallback
from streamer.sources.live import CaptureSource


def is_live(source: str) -> bool:
    """Whether a configured source string names a stream or webcam rather than a file.
    A path that exists is a file, even one named ``0``."""
    if "://" not in source and Path(source).is_file():
        return False
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
    if scheme and scheme not in STREAM_SCHEMES:  # the config refuses them; a caller may not
        raise SourceError(
            f"{mask_url(source)}: unsupported scheme {scheme!r} "
            "(use rtsp://, http://, https://, rtmp://, a file or a webcam)"
        )
    return CaptureSource(camera.name, source, camera.live, on_status, rate_fps=rate)
