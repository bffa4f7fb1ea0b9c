"""Configuration: one pydantic tree loaded from YAML, every field defaulted and bounded.

Unknown keys are rejected, ``${VAR}`` / ``${VAR:-default}`` in string values are taken
from the environment, and errors name the key path and the value, e.g.
``cameras.0.source: must not be empty (got '')``.

Sections listed in :data:`CAMERA_OVERRIDABLE` may be repeated under a camera; the
camera's keys are merged over the global section, so a camera can change one setting
and inherit the rest.

Example::

    cameras:
      - name: gate-1
        source: recordings/demo.mp4
        tracker: {lost_timeout_s: 2.0}
    events_log: recordings/events.jsonl
    dues:
      database: recordings/dues.sqlite
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Global sections that a camera may override key by key.
CAMERA_OVERRIDABLE = ("detection", "tracker", "reader", "plates", "dedup", "live")

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """An invalid configuration; ``str()`` gives one ``key.path: reason (got value)`` per line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """The plate detector shared by every camera."""

    weights: Path | None = Field(
        None,
        description="YOLO weights (.pt) trained for plates. Empty: the default fastanpr "
        "YOLOv8n plate model fetched at set-up. Bring weights trained for your region.",
    )
    backend: Literal["auto", "openvino", "torch"] = Field(
        "auto",
        description="'auto' runs an OpenVINO export of the weights on CPU (made once and "
        "cached next to them): several times faster than torch and without torch's memory. "
        "It falls back to torch if the export cannot be made.",
    )
    image_size: int = Field(
        640,
        ge=160,
        le=1920,
        multiple_of=32,
        description="Inference size in pixels. Larger finds smaller, farther plates but "
        "costs time roughly with its square.",
    )


class DetectionConfig(_Section):
    """Which frames are detected, where, and which boxes are kept for tracking."""

    confidence: float = Field(
        0.25,
        ge=0.01,
        le=1.0,
        description="Minimum detector confidence. Lower keeps faint plates alive in the "
        "tracker (ByteTrack uses low-score boxes) at the price of more noise.",
    )
    min_area: int = Field(
        150,
        ge=0,
        le=1_000_000,
        description="Minimum box area in pixels; smaller plates are too small to read.",
    )
    rate_fps: float = Field(
        5.0,
        ge=0,
        le=120,
        description="Frames detected per second of the source's clock; the frames between "
        "are decoded but not converted or detected, and the tracker carries each plate "
        "across the gap. A vehicle at a gate is in view for a second or more, so 5 "
        "reads it as well as every frame does at a fraction of the cost; raise it for "
        "faster traffic (a track needs tracker.min_frames sightings). 0 detects every frame.",
    )
    motion_gate: bool = Field(
        True,
        description="Skip detection on frames where nothing moved in the region of interest "
        "since the last examined frame; open tracks stay alive meanwhile, so a vehicle "
        "waiting at a barrier remains one track. Saves most of the work on a quiet gate.",
    )
    motion_threshold: float = Field(
        0.002,
        ge=0.0,
        le=1.0,
        description="Fraction of the region's pixels (on a 160-pixel-wide grey copy) that "
        "must change for a frame to count as moving. Raise it for rain, foliage or a "
        "flickering light; 0 treats every change as motion.",
    )
    roi: tuple[float, float, float, float] | None = Field(
        None,
        description="Region of interest as fractions of the frame, [x1, y1, x2, y2] "
        "(e.g. [0, 0.4, 1, 1] for the lower 60%). Only this part is detected and watched "
        "for motion: faster, and no plates from the road behind the gate. Empty: the "
        "whole frame.",
    )

    @field_validator("roi")
    @classmethod
    def _roi_ordered(
        cls, roi: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if roi is None:
            return None
        x1, y1, x2, y2 = roi
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError("must be [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1, 0 <= y1 < y2 <= 1")
        return roi


class TrackerConfig(_Section):
    """ByteTrack settings and how a track ends."""

    lost_timeout_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="A track ends (and its plate is read) once it has not been seen for "
        "this long in media time. Longer survives occlusion; shorter emits sooner.",
    )
    activation_threshold: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="Detector confidence needed to start a new track.",
    )
    high_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Boxes at or above this are matched first; lower ones only extend tracks.",
    )
    minimum_iou: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Overlap needed to match a box to a track. Plates move fast relative to "
        "their size, so keep this low.",
    )
    min_frames: int = Field(
        3,
        ge=1,
        le=1000,
        description="Tracks seen in fewer frames are treated as noise and give no event.",
    )
    best_crops: int = Field(
        5,
        ge=1,
        le=50,
        description="How many of a track's best crops (by size, sharpness, confidence and "
        "distance from the frame edge) are kept for reading.",
    )


class ReaderConfig(_Section):
    """OCR of a finished track's best crops."""

    engine: Literal["paddle", "tesseract"] = Field(
        "paddle",
        description="OCR engine: 'paddle' (PP-OCRv4 recognition, OpenVINO) read 82% of "
        "real US plate crops exactly where 'tesseract' read 48% (see README, Accuracy).",
    )
    crops: int = Field(
        3,
        ge=1,
        le=50,
        description="How many of the best crops are read; the reads vote on the plate text.",
    )
    tessdata: Path | None = Field(
        None, description="Tesseract language data folder. Empty: found automatically."
    )
    min_confidence: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Reads whose OCR confidence (0..1) is below this are discarded.",
    )


class PlatesConfig(_Section):
    """What counts as a plate number."""

    formats: list[str] = Field(
        default_factory=lambda: ["in_rto"],
        description="Plate formats: preset names (see streamer.plates.PRESETS) or regular "
        "expressions on the normalised text. A read matching one has format_valid: true.",
    )
    require_valid_format: bool = Field(
        False, description="Drop reads that match no configured format instead of flagging them."
    )
    min_length: int = Field(4, ge=1, le=20, description="Shortest plate text accepted.")
    max_length: int = Field(10, ge=1, le=20, description="Longest plate text accepted.")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str]) -> list[str]:
        from streamer.plates import compile_format

        for entry in formats:
            compile_format(entry)
        return formats


class DedupConfig(_Section):
    """Merging repeats of one plate on one camera."""

    window_s: float = Field(
        60.0,
        ge=0.0,
        le=86_400,
        description="A plate seen again on the same camera within this many seconds of its "
        "last sighting is merged into the first event instead of giving a new one.",
    )


class LiveConfig(_Section):
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


class WebhookConfig(_Section):
    """One receiver of events over HTTP POST."""

    url: str = Field(
        ...,
        pattern=r"^https?://[^\s]+$",
        description="Where events are POSTed (http:// or https://).",
    )
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name in logs, metrics and `streamer outbox`; default: the URL's host.",
    )
    secret: str | None = Field(
        None,
        description="Signs each request: X-Streamer-Signature is HMAC-SHA256 of "
        "'<timestamp>.<body>' with this secret. Use ${ENV_VAR} to keep it out of the file.",
    )
    only_dues: bool = Field(
        False, description="Send only plate events whose dues are pending (alerts)."
    )
    include_status: bool = Field(
        False, description="Also send camera_status events (online/offline/reconnecting)."
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Per-request timeout.")
    attach_crop: Literal["none", "base64", "multipart"] = Field(
        "none",
        description="Attach the plate crop JPEG: as base64 in the JSON ('crop_jpeg_base64'), "
        "or as a multipart/form-data request with parts 'event' (JSON) and 'crop' (JPEG).",
    )
    retry_initial_s: float = Field(
        1.0, gt=0, le=3600, description="First wait after a failed delivery; doubles."
    )
    retry_max_s: float = Field(
        300.0, gt=0, le=86_400, description="Longest wait between delivery attempts."
    )

    @property
    def label(self) -> str:
        """The webhook's name, or its URL's host and port."""
        if self.name:
            return self.name
        host = self.url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", host)


class OutboxConfig(_Section):
    """The durable queue of webhook deliveries."""

    database: Path = Field(
        Path("recordings/outbox.sqlite"),
        description="SQLite (WAL) file; every event is committed here before it counts as "
        "emitted, and delivery resumes from it after a crash or restart.",
    )
    max_pending: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Pending deliveries kept per webhook. When a receiver is down so long "
        "that this fills, the oldest pending delivery is moved to the dead letters (reason "
        "'outbox full', counted in metrics; `streamer outbox retry` sends it again). The "
        "events log keeps every event regardless.",
    )
    keep_delivered_s: float = Field(
        86_400.0,
        ge=0,
        le=31_536_000,
        description="Delivered entries are purged after this long.",
    )
    drain_timeout_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="When the daemon stops, wait this long for pending deliveries; what is "
        "left is delivered on the next start.",
    )


class HttpConfig(_Section):
    """The HTTP API and dashboard served by the daemon (and by `streamer serve`)."""

    enabled: bool = Field(True, description="Serve the API and dashboard while running.")
    host: str = Field(
        "127.0.0.1",
        description="Address to listen on. The default keeps the API on this machine; set "
        "0.0.0.0 (with a token) to reach it from the network.",
    )
    port: int = Field(8003, ge=0, le=65535, description="TCP port (0: any free port).")
    token: str | None = Field(
        None,
        description="When set, every request but /health needs 'Authorization: Bearer "
        "<token>' (or ?token=<token>, for the dashboard's live stream and images).",
    )
    max_upload_mb: float = Field(
        10.0, gt=0, le=1000, description="Larger uploads are refused with 413."
    )
    recent_events: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Events kept in memory for /api/events and the dashboard (the events "
        "log has them all).",
    )


class DuesConfig(_Section):
    """The dues database."""

    database: Path = Field(
        Path("recordings/dues.sqlite"),
        description="SQLite file; created empty when missing. Manage it with `streamer dues`.",
    )


class RecordingsConfig(_Section):
    """Evidence images written for each event."""

    directory: Path = Field(Path("recordings/evidence"), description="Evidence folder.")
    save_crops: bool = Field(True, description="Write the best plate crop as JPEG.")
    save_snapshots: bool = Field(
        True, description="Write the annotated frame of the best crop as JPEG."
    )
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of evidence images.")
    max_age_days: float = Field(
        30.0,
        ge=0,
        le=36_500,
        description="Evidence older than this is deleted (0: keep forever).",
    )
    max_total_mb: float = Field(
        10_000.0,
        ge=0,
        le=100_000_000,
        description="When the evidence passes this total size, the oldest files are deleted "
        "first (0: no limit).",
    )


class CameraConfig(_Section):
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
    live: LiveConfig = Field(default_factory=LiveConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    reader: ReaderConfig = Field(default_factory=ReaderConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)

    @field_validator("source")
    @classmethod
    def _not_blank(cls, source: str) -> str:
        if not source.strip():
            raise ValueError("must not be empty")
        return source


#: The camera of the embedded defaults: the demo recording.
DEFAULT_CAMERA = {"name": "gate-1", "source": "recordings/demo.mp4"}


def _default_cameras() -> list[CameraConfig]:
    return [CameraConfig.model_validate(DEFAULT_CAMERA)]


class Config(_Section):
    """The whole configuration of the daemon."""

    cameras: list[CameraConfig] = Field(default_factory=_default_cameras, min_length=1)
    events_log: Path = Field(
        Path("recordings/events.jsonl"), description="JSON-lines log of every event."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    model: ModelConfig = Field(default_factory=ModelConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    reader: ReaderConfig = Field(default_factory=ReaderConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    shutdown_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="On SIGTERM/SIGINT, open tracks are read and written as events; the "
        "daemon exits after at most this long even if that is not finished.",
    )
    dues: DuesConfig = Field(default_factory=DuesConfig)
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    http: HttpConfig = Field(default_factory=HttpConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    events_log_max_bytes: int = Field(
        50_000_000,
        ge=0,
        le=10**12,
        description="Rotate the events log when it passes this size (0: never).",
    )
    events_log_backups: int = Field(
        5, ge=0, le=1000, description="Rotated events logs kept (events.jsonl.1, .2, …)."
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_camera_overrides(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "cameras" not in data:
            data = {**data, "cameras": [DEFAULT_CAMERA]}
        if not isinstance(data["cameras"], list):
            return data
        cameras = []
        for camera in data["cameras"]:
            if isinstance(camera, dict):
                camera = dict(camera)
                for section in CAMERA_OVERRIDABLE:
                    base = data.get(section) or {}
                    own = camera.get(section) or {}
                    if isinstance(base, dict) and isinstance(own, dict):
                        camera[section] = {**base, **own}
            cameras.append(camera)
        return {**data, "cameras": cameras}

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (
            ("camera", [c.name for c in self.cameras]),
            ("webhook", [w.label for w in self.webhooks]),
        ):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"{kind} names must be unique: {', '.join(duplicates)}")
        return self


def substitute_env(value: Any, path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree.

    Raises:
        ConfigError: when a variable without a default is not set.
    """
    if isinstance(value, dict):
        return {
            key: substitute_env(item, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            substitute_env(item, f"{path}.{index}" if path else str(index))
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")

    return _ENV_PATTERN.sub(replace, value)


def format_validation_error(error: ValidationError) -> str:
    """One ``key.path: message (got value)`` line per problem."""
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "<root>"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        got = problem.get("input")
        suffix = "" if problem["type"] in {"missing", "extra_forbidden"} else f" (got {got!r})"
        if isinstance(got, dict | list):
            suffix = ""
        lines.append(f"{location}: {message}{suffix}")
    return "\n".join(lines)


def parse_config(data: Any) -> Config:
    """Validate a parsed YAML tree (after ``${VAR}`` substitution) into a :class:`Config`.

    Raises:
        ConfigError: naming each bad key path and value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"<root>: expected a mapping of settings (got {type(data).__name__})")
    try:
        return Config.model_validate(substitute_env(data))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def load_config(path: Path | None) -> Config:
    """Load and validate the YAML file at ``path``; ``None`` gives the embedded defaults.

    Raises:
        ConfigError: when the file cannot be read or parsed, or a value is invalid.
    """
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {reason}") from None
    return parse_config(data)
