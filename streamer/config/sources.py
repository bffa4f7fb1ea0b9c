"""Settings of a camera and of live streams."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from streamer.config.base import Section
from streamer.config.reading import DedupConfig, EventsConfig, PlatesConfig, ReaderConfig
from streamer.config.vision import DetectionConfig, TrackerConfig, VehiclesConfig

#: The ways a vehicle can move in view (see ``streamer.vision.direction``).
Travel = Literal["approaching", "receding", "left", "right"]
#: What a camera calls one way of moving, e.g. ``entry``.
DirectionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]

#: URL schemes of the streams a camera can read (through FFmpeg).
STREAM_SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "rtmp"})


class LiveConfig(Section):
    """Live sources (RTSP, HTTP, webcams): timeouts and reconnection."""

    transport: Literal["tcp", "udp"] = Field(
        "tcp",
        description="RTSP transport. TCP survives lossy networks and NAT; UDP has less "
        "latency but loses frames when packets drop.",
    )
    open_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Give up opening a stream after this long."
    )
    watchdog_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A stream that delivers no frame for this long is offline and is reconnected.",
    )
    reconnect_initial_s: float = Field(
        1.0, gt=0, le=300, description="First wait before reconnecting; doubles per failure."
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait between reconnection attempts."
    )
    reconnect_jitter: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Each wait is randomised by up to this fraction, so cameras that "
        "dropped together do not all reconnect at the same instant.",
    )


class CameraSections(Section):
    """The sections set for all cameras and overridden per camera, key by key."""

    live: LiveConfig = Field(default_factory=LiveConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    reader: ReaderConfig = Field(default_factory=ReaderConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    vehicles: VehiclesConfig = Field(default_factory=VehiclesConfig)


#: Global sections that a camera may override key by key.
CAMERA_OVERRIDABLE = tuple(CameraSections.model_fields)


class CameraConfig(CameraSections):
    """One source of frames and its per-camera settings."""

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Unique name; used in events and evidence paths (letters, digits, _ . -).",
    )
    source: str = Field(
        ...,
        min_length=1,
        description="A video file path, an rtsp://, http:// or https:// URL, a webcam "
        "index (0) or a V4L2 device path (/dev/video0).",
    )
    enabled: bool = Field(True, description="Disabled cameras are not opened.")
    realtime: bool = Field(
        False,
        description="Pace a video file at its own frame rate and drop frames the pipeline "
        "cannot keep up with, as a live camera would (demos, tests). Files otherwise keep "
        "every frame.",
    )
    direction: dict[Travel, DirectionName] = Field(
        default_factory=dict,
        description="What each way of moving means at this camera, e.g. {approaching: entry, "
        "receding: exit}: events carry the name as direction_name, and rules and webhooks "
        "filter on it (when: {direction: entry}).",
    )

    @field_validator("source")
    @classmethod
    def _readable(cls, source: str) -> str:
        if not source.strip():
            raise ValueError("must not be empty")
        if "\x00" in source:
            raise ValueError("must not contain a NUL character")
        scheme, sep, _ = source.partition("://")
        if sep and scheme.lower() not in STREAM_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r} (use rtsp://, rtsps://, http://, https://, "
                "rtmp://, a file or a webcam)"
            )
        return source
