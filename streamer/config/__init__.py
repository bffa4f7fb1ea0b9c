"""Configuration: one pydantic tree loaded from YAML, every field defaulted and bounded.

Unknown keys are rejected, ``${VAR}`` / ``${VAR:-default}`` in string values are taken
from the environment, and errors name the key path and the value, e.g.
``cameras.0.source: must not be empty (got '')``.

Sections listed in :data:`CAMERA_OVERRIDABLE` may be repeated under a camera; the
camera's keys are merged over the global section, so a camera can change one setting
and inherit the rest. Each module holds the sections of one part of the program
(``vision``, ``reading``, ``sources``, ``delivery``, ``mqtt``); ``daemon`` the whole tree and
``loader`` the YAML loading.

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

from streamer.config.base import ConfigError, Section, mask_url
from streamer.config.daemon import (
    DEFAULT_CAMERA,
    ClusterConfig,
    Config,
    DeliveryTarget,
    DuesConfig,
    HttpConfig,
)
from streamer.config.delivery import OutboxConfig, RecordingsConfig, WebhookConfig
from streamer.config.loader import (
    format_validation_error,
    load_config,
    parse_config,
    substitute_env,
)
from streamer.config.mqtt import DiscoveryConfig, MqttConfig, MqttTlsConfig, topic_problem
from streamer.config.reading import DedupConfig, EventsConfig, PlatesConfig, ReaderConfig
from streamer.config.rules import (
    Action,
    HttpAction,
    ListConfig,
    MqttAction,
    RuleConfig,
    When,
    fill_placeholders,
)
from streamer.config.sources import CAMERA_OVERRIDABLE, CameraConfig, CameraSections, LiveConfig
from streamer.config.vision import DetectionConfig, ModelConfig, TrackerConfig, VehiclesConfig

__all__ = [
    "CAMERA_OVERRIDABLE",
    "DEFAULT_CAMERA",
    "Action",
    "CameraConfig",
    "CameraSections",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DedupConfig",
    "DeliveryTarget",
    "DetectionConfig",
    "DiscoveryConfig",
    "DuesConfig",
    "EventsConfig",
    "HttpAction",
    "HttpConfig",
    "ListConfig",
    "LiveConfig",
    "ModelConfig",
    "MqttAction",
    "MqttConfig",
    "MqttTlsConfig",
    "OutboxConfig",
    "PlatesConfig",
    "ReaderConfig",
    "RecordingsConfig",
    "RuleConfig",
    "Section",
    "TrackerConfig",
    "VehiclesConfig",
    "WebhookConfig",
    "When",
    "fill_placeholders",
    "format_validation_error",
    "load_config",
    "mask_url",
    "parse_config",
    "substitute_env",
    "topic_problem",
]
