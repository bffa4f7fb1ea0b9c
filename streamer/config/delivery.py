"""Settings of where events go: webhooks, their outbox, evidence images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from streamer.config.base import Section
from streamer.config.rules import When
from streamer.config.urls import http_url

#: A vehicle's plate events: while it is in view, and when its track has ended.
PhaseName = Literal["early", "final"]


class WebhookConfig(Section):
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
        False,
        description="Send only plate events whose dues are pending (alerts); the same "
        "as when: {dues_pending: true}.",
    )
    when: When | None = Field(
        None,
        description="Send only the plate events that pass, as a rule's when: (lists, "
        "not_lists, dues_pending, direction, unreadable). Without it, every plate event, "
        "those of vehicles whose plate was not read too.",
    )
    phases: list[PhaseName] = Field(
        default_factory=lambda: list(get_args(PhaseName)),
        min_length=1,
        description="Which of a vehicle's plate events to send: 'early' (while it is in view, "
        "for alerts that must act at once) and 'final' (when its track ends, with the voted "
        "plate). Both carry the same event_id.",
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

    _usable_url = field_validator("url")(http_url)

    @model_validator(mode="after")
    def _one_dues_filter(self) -> WebhookConfig:
        if self.only_dues and self.when is not None and self.when.dues_pending is False:
            raise ValueError("only_dues contradicts when.dues_pending: false")
        return self

    @property
    def filter(self) -> When:
        """Which plate events it receives: ``when``, with ``only_dues`` folded in."""
        when = self.when or When()
        return when.model_copy(update={"dues_pending": True}) if self.only_dues else when

    @property
    def label(self) -> str:
        """The webhook's name, or its URL's host and port."""
        if self.name:
            return self.name
        host = self.url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", host)


class OutboxConfig(Section):
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
        "events log keeps every event regardless. Also how many events wait beside the "
        "events log while the outbox cannot commit them (a full disk).",
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


class RecordingsConfig(Section):
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
