"""Home Assistant's MQTT discovery: each camera is one device with six entities.

==============  ===============  ===============================  ==========================
entity          component        state from                       attributes
==============  ===============  ===============================  ==========================
Last plate      sensor           ``last_plate``: the plate number  the whole event
                                 (or why there is none)
Dues pending    binary_sensor    ``last_plate``: its dues          its ``dues_result``, plate
Online          binary_sensor    ``status``: online or a file      the status event
                                 being read
Plates today    sensor           ``plates_today``                  none
Plate crop      image            ``plate_crop``: the JPEG          none
Vehicle crop    image            ``vehicle_crop``: the JPEG        none
==============  ===============  ===============================  ==========================

Each entity's config is published retained to
``<discovery prefix>/<component>/<node_id>/<object_id>/config`` (HA's single-component
discovery, which every HA version with MQTT discovery reads), with a ``unique_id``, the
camera's ``device`` and the daemon's availability topic, so every entity is unavailable
while the daemon is offline. The configs the broker holds with that availability topic
for a camera no longer configured are removed (:func:`removed_entities`), and with them
the device.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamer import __version__
from streamer.config import MqttConfig
from streamer.delivery.crops import CONTENT_TYPE, CROPS
from streamer.delivery.topics import OFFLINE, ONLINE, Topics

#: The camera states in which frames are flowing (see ``CameraSnapshot.up``).
UP_STATES = ("online", "file")
#: The Last plate sensor's state: the plate, or for a vehicle whose plate could not be read,
#: why (``unreadable``, ``no plate``), in lower case, which no plate is written in. (Not
#: ``None``: HA would show that word.)
PLATE_TEMPLATE = (
    "{{ value_json.plate_number if value_json.plate_number is not none "
    "else value_json.get('reason') or 'unreadable' }}"
)
#: Each camera's entities: (component, object_id).
ENTITIES = (
    ("sensor", "last_plate"),
    ("binary_sensor", "dues_pending"),
    ("binary_sensor", "online"),
    ("sensor", "plates_today"),
    *(("image", crop.name) for crop in CROPS),
)


@dataclass(frozen=True)
class DiscoveryMessage:
    """One entity's discovery message."""

    topic: str
    payload: dict[str, Any]


def node_id(topic_prefix: str, camera: str) -> str:
    """The camera's ID in discovery topics and unique IDs: ``<prefix>_<camera>`` in the
    characters HA allows there (``[a-zA-Z0-9_-]``). Two daemons on one broker differ in
    their topic prefix, so their cameras' IDs differ too."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{topic_prefix}_{camera}")


def discovery_configs(config: MqttConfig, cameras: Sequence[str]) -> list[DiscoveryMessage]:
    """The discovery messages of every camera's entities (none when discovery is off)."""
    if not config.discovery.enabled:
        return []
    return [entity for camera in cameras for entity in _camera_entities(config, camera)]


def discovery_filters(config: MqttConfig) -> list[str]:
    """Subscription filters that match the discovery topics of any camera's entities."""
    prefix = config.discovery.prefix
    return [f"{prefix}/{component}/+/{object_id}/config" for component, object_id in ENTITIES]


def removed_entities(
    config: MqttConfig, cameras: Sequence[str], held: Mapping[str, bytes]
) -> list[str]:
    """The discovery topics among ``held`` (retained on the broker, by topic) that this
    daemon published, by their availability topic, for a camera not among ``cameras`` (for
    any camera when discovery is off): an empty retained message removes each from HA.

    Example:
        >>> removed_entities(config, ["gate-1"], held)
        ['homeassistant/sensor/streamer_gate-2/last_plate/config', …]
    """
    current = {message.topic for message in discovery_configs(config, cameras)}
    ours = Topics(config.topic_prefix).availability
    removed = []
    for topic, payload in held.items():
        if topic in current or not payload:
            continue
        try:
            entity = json.loads(payload)
        except ValueError:
            continue
        if isinstance(entity, dict) and entity.get("availability_topic") == ours:
            removed.append(topic)
    return sorted(removed)


def _camera_entities(config: MqttConfig, camera: str) -> list[DiscoveryMessage]:
    topics = Topics(config.topic_prefix)
    node = node_id(config.topic_prefix, camera)
    common: dict[str, Any] = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": {
            "identifiers": [node],
            "name": camera,
            "manufacturer": "streamer",
            "model": "ANPR camera",
            "sw_version": __version__,
        },
        "origin": {"name": "streamer", "sw_version": __version__},
        "qos": 1,
    }
    up = ", ".join(f"'{state}'" for state in UP_STATES)
    entities: dict[tuple[str, str], dict[str, Any]] = {
        ("sensor", "last_plate"): {
            "name": "Last plate",
            "icon": "mdi:car",
            "state_topic": topics.last_plate(camera),
            "value_template": PLATE_TEMPLATE,
            "json_attributes_topic": topics.last_plate(camera),
        },
        ("binary_sensor", "dues_pending"): {
            "name": "Dues pending",
            "device_class": "problem",
            "icon": "mdi:cash-alert",
            "state_topic": topics.last_plate(camera),
            "value_template": (
                "{{ 'ON' if (value_json.dues_result or {}).get('dues_pending') else 'OFF' }}"
            ),
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": topics.last_plate(camera),
            "json_attributes_template": (
                "{{ dict(value_json.dues_result or {}, plate_number=value_json.plate_number) "
                "| tojson }}"
            ),
        },
        ("binary_sensor", "online"): {
            "name": "Online",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": topics.status(camera),
            "value_template": f"{{{{ 'ON' if value_json.status in [{up}] else 'OFF' }}}}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "json_attributes_topic": topics.status(camera),
        },
        ("sensor", "plates_today"): {
            "name": "Plates today",
            "icon": "mdi:counter",
            "state_topic": topics.plates_today(camera),
            "state_class": "total_increasing",
            "unit_of_measurement": "plates",
        },
        **{
            ("image", crop.name): {
                "name": crop.title,
                "image_topic": topics.image(camera, crop.name),
                "content_type": CONTENT_TYPE,
            }
            for crop in CROPS
        },
    }
    prefix = config.discovery.prefix
    return [
        DiscoveryMessage(
            f"{prefix}/{component}/{node}/{object_id}/config",
            {**own, "unique_id": f"{node}_{object_id}", **common},
        )
        for (component, object_id), own in entities.items()
    ]
