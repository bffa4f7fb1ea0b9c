"""The whole configuration: cameras, global sections, stores, HTTP."""

from __future__ import annotations

import logging
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from streamer.config.base import Section
from streamer.config.delivery import OutboxConfig, RecordingsConfig, WebhookConfig
from streamer.config.mqtt import MqttConfig
from streamer.config.rules import ListConfig, ListName, RuleConfig, lists_mapping
from streamer.config.sources import CAMERA_OVERRIDABLE, CameraConfig, CameraSections
from streamer.config.vision import ModelConfig

logger = logging.getLogger(__name__)

#: A name of ``http.allowed_hosts``: a host name, ``*.`` and a domain, or ``*``.
HOST_NAME = r"\*|(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?"


class HttpConfig(Section):
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
        "<token>' (or ?token=<token>, for the dashboard's live stream and images). "
        "Surrounding whitespace (a secret file's last newline) is not part of it.",
    )

    @field_validator("token")
    @classmethod
    def _token_text(cls, token: str | None) -> str | None:
        if token is None:
            return None
        stripped = token.strip()
        if not stripped:
            # An empty ${STREAMER_TOKEN} must not turn authentication off unnoticed.
            raise ValueError("must not be empty (an empty ${VAR}?); leave the key out for none")
        if stripped != token:
            logger.warning(
                "http.token: the spaces or line breaks around it are left out (read from a "
                "file with a final newline?); clients send the token without them"
            )
        return stripped

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Names besides localhost, IP addresses, the listen address and this "
        "machine's name by which the API may be reached, e.g. [gate.example.com, "
        "'*.example.com']. A request whose Host header names another is refused with 403, "
        "so that a web page cannot reach the API by rebinding its own name to this machine; "
        "'*' allows any name. Writes (POST, PUT, DELETE) from a browser page are accepted "
        "from the API's own address and from these names only.",
    )

    max_upload_mb: float = Field(
        10.0, gt=0, le=1000, description="Larger uploads are refused with 413."
    )
    max_image_pixels: int = Field(
        25_000_000,
        ge=100_000,
        le=100_000_000,
        description="Images whose header declares more pixels (width times height) are refused "
        "with 400 before decoding: a small file can declare a huge image.",
    )
    max_concurrent_images: int = Field(
        8,
        ge=1,
        le=64,
        description="Uploads to /detect, /ocr and /process handled at once; past it they "
        "get 503 with Retry-After.",
    )
    timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's headers, and then its body; "
        "an idle keep-alive connection is closed after the same time.",
    )
    max_connections: int = Field(
        256,
        ge=8,
        le=100_000,
        description="Open connections at most; past it the connection idle the longest "
        "(one that has not sent a whole request) is closed to make room.",
    )
    max_streams: int = Field(
        32,
        ge=1,
        le=100_000,
        description="Live streams (/api/events/stream: each open dashboard, each SSE client) "
        "at once, and never more than half of max_connections; past it they get 503 with "
        "Retry-After, so that streams never hold every connection and /health and the API "
        "always answer.",
    )
    recent_events: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Events kept in memory for /api/events and the dashboard (the events "
        "log has them all).",
    )

    @property
    def stream_limit(self) -> int:
        """Live streams at once: ``max_streams``, and never more than half the connections."""
        return max(1, min(self.max_streams, self.max_connections // 2))

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(HOST_NAME, name):
                raise ValueError(
                    f"{name[:80]!r} is not a host name (gate.example.com), *.domain or *; "
                    "give names without ports"
                )
        return names


class DuesConfig(Section):
    """The dues database."""

    database: Path = Field(
        Path("recordings/dues.sqlite"),
        description="SQLite file; created empty when missing. Manage it with `streamer dues`.",
    )


def default_node() -> str:
    """This node's name: ``$HOSTNAME`` (a Kubernetes pod's name), else the host name."""
    return (os.environ.get("HOSTNAME") or socket.gethostname() or "node")[:63]


class ClusterConfig(Section):
    """Several daemons acting as one system, on a shared PostgreSQL database: every node
    reads the same camera list, and each camera is read by the one node that holds its
    lease."""

    database: str = Field(
        ...,
        pattern=r"^postgres(ql)?://\S+$",
        description="postgresql://user:${PGPASSWORD}@host:5432/streamer: the dues, the plate "
        "lists, the events, the webhook outbox and the cameras' leases live there, shared by "
        "every node.",
    )
    node: str = Field(
        default_factory=default_node,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="This node's name, unique in the cluster; default: $HOSTNAME or the host name.",
    )
    lease_s: float = Field(
        10.0,
        ge=3,
        le=600,
        description="A camera's lease: renewed every third of it; a node that cannot renew "
        "stops the camera before the lease runs out, and another node takes it after.",
    )
    max_cameras: int = Field(
        13,
        ge=1,
        le=1000,
        description="Cameras this node reads at most (13: what one 2-core node held in "
        "bench/performance.py).",
    )


#: What the outbox queues deliveries for: a webhook, or the MQTT broker.
DeliveryTarget = WebhookConfig | MqttConfig

#: The camera of the embedded defaults: the demo recording.
DEFAULT_CAMERA = {"name": "gate-1", "source": "recordings/demo.mp4"}


def _default_cameras() -> list[CameraConfig]:
    return [CameraConfig.model_validate(DEFAULT_CAMERA)]


class Config(CameraSections):
    """The whole configuration of the daemon (the camera sections: every camera's, unless
    the camera overrides them)."""

    cameras: list[CameraConfig] = Field(default_factory=_default_cameras, min_length=1)
    events_log: Path = Field(
        Path("recordings/events.jsonl"), description="JSON-lines log of every event."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    model: ModelConfig = Field(default_factory=ModelConfig)
    shutdown_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="On SIGTERM/SIGINT, open tracks are read and written as events; the "
        "daemon exits after at most this long even if that is not finished.",
    )
    dues: DuesConfig = Field(default_factory=DuesConfig)
    cluster: ClusterConfig | None = Field(
        None, description="A PostgreSQL database shared by several daemons (off when not set)."
    )
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    http: HttpConfig = Field(default_factory=HttpConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    mqtt: MqttConfig | None = Field(
        None,
        description="Publish plate events and camera states to an MQTT broker, with Home "
        "Assistant discovery (off when not set).",
    )
    lists: dict[ListName, ListConfig] = Field(
        default_factory=dict,
        description="Named plate lists (residents, staff, banned …); each event says which "
        "lists its plate is on. Entries live in the dues database file.",
    )
    rules: list[RuleConfig] = Field(
        default_factory=list,
        description="What to do when a plate passes: HTTP requests and MQTT messages.",
    )
    events_log_max_bytes: int = Field(
        50_000_000,
        ge=0,
        le=10**12,
        description="Rotate the events log when it passes this size (0: never).",
    )
    events_log_backups: int = Field(
        5, ge=0, le=1000, description="Rotated events logs kept (events.jsonl.1, .2, …)."
    )

    @property
    def delivery_targets(self) -> list[DeliveryTarget]:
        """Where the outbox delivers: each webhook, then the MQTT broker when one is set."""
        return [*self.webhooks, *([self.mqtt] if self.mqtt is not None else [])]

    @property
    def list_files(self) -> dict[str, Path | None]:
        """Each declared list, with the file that is the list (``None``: managed by hand)."""
        return {name: entry.file for name, entry in self.lists.items()}

    def with_files_in(self, folder: Path) -> Config:
        """A copy whose files (events log, dues, outbox, evidence) all live in ``folder``."""
        return self.model_copy(
            update={
                "events_log": folder / "events.jsonl",
                "dues": self.dues.model_copy(update={"database": folder / "dues.sqlite"}),
                "outbox": self.outbox.model_copy(update={"database": folder / "outbox.sqlite"}),
                "recordings": self.recordings.model_copy(update={"directory": folder / "evidence"}),
            }
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

    _lists = field_validator("lists", mode="before")(lists_mapping)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (
            ("camera", [c.name for c in self.cameras]),
            ("webhook", [w.label for w in self.webhooks]),
            ("rule", [r.name for r in self.rules]),
        ):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"{kind} names must be unique: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _known_references(self) -> Config:
        """Rules and webhooks name cameras and lists that exist, and MQTT actions a broker."""
        cameras, lists = {c.name for c in self.cameras}, set(self.lists)
        declared = ", ".join(sorted(lists)) or "none"
        filters = [(f"webhooks.{i}.when", hook.when) for i, hook in enumerate(self.webhooks)]
        for index, rule in enumerate(self.rules):
            where = f"rules.{index}"
            filters.append((f"{where}.when", rule.when))
            for camera in sorted(set(rule.cameras or ()) - cameras):
                raise ValueError(f"{where}.cameras: unknown camera {camera!r}")
            for number, action in enumerate(rule.do):
                if action.mqtt is not None and self.mqtt is None:
                    raise ValueError(f"{where}.do.{number}.mqtt: needs the mqtt section (a broker)")
        ways = {"approaching", "receding", "left", "right"}
        ways |= {name for camera in self.cameras for name in camera.direction.values()}
        for where, when in filters:
            for name in sorted((when.named_lists() if when else set()) - lists):
                raise ValueError(
                    f"{where}: unknown list {name!r} (lists declared under lists: {declared})"
                )
            for way in sorted(set(when.direction or () if when else ()) - ways):
                raise ValueError(
                    f"{where}.direction: unknown direction {way!r} (approaching, receding, "
                    "left, right, or a name a camera's direction: gives one)"
                )
        return self
