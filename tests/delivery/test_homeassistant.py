"""Home Assistant discovery payloads, checked against HA's documented MQTT discovery schema
and with their templates rendered by Jinja, as HA renders them; a removed camera's
entities cleared on a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamer.config import MqttConfig, parse_config
from streamer.delivery.homeassistant import (
    ENTITIES,
    DiscoveryMessage,
    discovery_configs,
    discovery_filters,
    node_id,
)
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox
from streamer.delivery.topics import Topics
from streamer.events import NOT_FOUND, CameraStatus, DuesResult, Phase, PlateEvent
from streamer.sources.frame import CameraState

from support.daemon import make_config
from support.homeassistant import render
from support.mosquitto import Broker, Received, Subscriber

# From HA's documentation of MQTT discovery (integrations/mqtt, "Discovery messages") and
# of the two components (integrations/sensor.mqtt, integrations/binary_sensor.mqtt):
# the options each one takes, those it requires, and the values some of them allow.
COMMON_OPTIONS = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "device_class",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "expire_after",
    "force_update",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "qos",
    "state_topic",
    "unique_id",
    "value_template",
}
OPTIONS = {
    "sensor": COMMON_OPTIONS
    | {
        "last_reset_value_template",
        "options",
        "state_class",
        "suggested_display_precision",
        "unit_of_measurement",
    },
    "binary_sensor": COMMON_OPTIONS | {"off_delay", "payload_off", "payload_on"},
    # integrations/image.mqtt: no state topic, no value template; one of image_topic and
    # url_topic, content_type only with the first.
    "image": COMMON_OPTIONS
    - {"device_class", "expire_after", "force_update", "state_topic", "value_template"}
    | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "image": {"image_topic"}}
DEVICE_OPTIONS = {
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
}
ORIGIN_OPTIONS = {"name", "sw_version", "support_url"}
BINARY_SENSOR_CLASSES = {
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
#: ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``, IDs in [a-zA-Z0-9_-].
TOPIC = re.compile(r"^(?P<prefix>.+)/(?P<component>[a-z_]+)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$")

T0 = datetime(2026, 11, 24, 7, 2, 6, tzinfo=UTC)
EVENT = PlateEvent(
    "gate-1", "MH12XY7395", 0.86, 0.78, (549, 350, 690, 402), T0, T0, 5.64, 67, True, NOT_FOUND
)
DUES = DuesResult(True, True, 1500.0, "Unpaid parking charges of Rs 1500")


def mqtt_config(**extra: object) -> MqttConfig:
    config = parse_config({"mqtt": {"url": "mqtt://broker.local", **extra}}).mqtt
    assert config is not None
    return config


@pytest.fixture
def configs() -> list[DiscoveryMessage]:
    return discovery_configs(mqtt_config(), ["gate-1", "exit.lane"])


def test_each_payload_follows_the_documented_schema(configs: list[DiscoveryMessage]) -> None:
    assert len(configs) == 12  # six entities per camera
    unique_ids = [message.payload["unique_id"] for message in configs]
    assert len(set(unique_ids)) == len(unique_ids)
    for message in configs:
        match = TOPIC.match(message.topic)
        assert match, message.topic
        assert match["prefix"] == "homeassistant"
        component, payload = match["component"], message.payload
        assert REQUIRED[component] <= payload.keys(), message.topic
        assert payload.keys() <= OPTIONS[component], payload.keys() - OPTIONS[component]
        assert not {"availability", "availability_topic"} <= payload.keys()  # one or the other
        device = payload["device"]  # needs unique_id, and identifiers or connections
        assert payload["unique_id"]
        assert device.keys() <= DEVICE_OPTIONS
        assert isinstance(device["identifiers"], list)
        assert device["identifiers"]
        assert payload["origin"].keys() <= ORIGIN_OPTIONS
        assert payload["origin"]["name"]
        assert payload["qos"] in (0, 1, 2)
        assert payload.get("entity_category") in (None, "diagnostic")
        if component == "binary_sensor":
            assert payload["payload_on"] != payload["payload_off"]
            assert payload.get("device_class") in BINARY_SENSOR_CLASSES
        elif component == "image":
            assert payload["content_type"] == "image/jpeg"
            assert "url_topic" not in payload
        else:
            assert payload.get("state_class") in STATE_CLASSES | {None}
        for key, value in payload.items():
            if key.endswith("_topic"):
                assert not set("#+") & set(value), (key, value)
                assert value.startswith("streamer/")
        json.dumps(payload)  # the discovery payload is a JSON object


def test_one_device_per_camera_with_six_entities(configs: list[DiscoveryMessage]) -> None:
    devices: dict[str, list[str]] = {}
    for message in configs:
        (identifier,) = message.payload["device"]["identifiers"]
        devices.setdefault(identifier, []).append(message.payload["name"])
    assert devices == {
        node_id("streamer", camera): [
            "Last plate",
            "Dues pending",
            "Online",
            "Plates today",
            "Plate crop",
            "Vehicle crop",
        ]
        for camera in ("gate-1", "exit.lane")
    }
    assert node_id("streamer", "exit.lane") == "streamer_exit_lane"  # HA's characters only


@pytest.mark.parametrize(
    ("event", "plate", "dues"),
    [
        (EVENT, "MH12XY7395", "OFF"),
        (replace(EVENT, dues_result=DUES, phase=Phase.EARLY), "MH12XY7395", "ON"),
    ],
    ids=["no-dues", "dues-early"],
)
def test_templates_give_the_states_of_a_plate_event(
    configs: list[DiscoveryMessage], event: PlateEvent, plate: str, dues: str
) -> None:
    by_name = {m.payload["name"]: m.payload for m in configs if "gate-1" in m.topic}
    payload = json.dumps(event.to_json()).encode()
    last_plate, dues_pending = by_name["Last plate"], by_name["Dues pending"]
    topic = Topics("streamer").last_plate("gate-1")
    assert last_plate["state_topic"] == last_plate["json_attributes_topic"] == topic
    assert render(last_plate["value_template"], payload) == plate
    assert dues_pending["state_topic"] == topic
    assert render(dues_pending["value_template"], payload) == dues
    attributes = json.loads(render(dues_pending["json_attributes_template"], payload))
    assert attributes == {**event.dues_result.to_json(), "plate_number": plate}


@pytest.mark.parametrize(
    ("changes", "plate", "dues"),
    [
        ({"plate_number": None, "reason": "unreadable"}, "unreadable", "OFF"),
        ({"plate_number": None, "reason": "no plate", "dues_result": None}, "no plate", "OFF"),
        ({"plate_number": None}, "unreadable", "OFF"),  # no reason given
        ({"reason": None}, "MH12XY7395", "OFF"),
    ],
    ids=["unreadable", "no-plate-no-dues", "no-reason", "read"],
)
def test_a_vehicle_whose_plate_was_not_read(
    configs: list[DiscoveryMessage], changes: dict[str, object], plate: str, dues: str
) -> None:
    """Last plate says why there is no plate (not ``None``, which HA would show), in lower
    case as no plate is written; Dues pending is off; nothing a template lacks."""
    by_name = {m.payload["name"]: m.payload for m in configs if "gate-1" in m.topic}
    payload = json.dumps({**EVENT.to_json(), **changes}).encode()
    last_plate, dues_pending = by_name["Last plate"], by_name["Dues pending"]
    assert render(last_plate["value_template"], payload) == plate
    assert render(dues_pending["value_template"], payload) == dues
    attributes = json.loads(render(dues_pending["json_attributes_template"], payload))
    assert attributes["plate_number"] == json.loads(payload)["plate_number"]


@pytest.mark.parametrize(
    ("state", "online"),
    [
        (CameraState.ONLINE, "ON"),
        (CameraState.FILE, "ON"),
        (CameraState.OFFLINE, "OFF"),
        (CameraState.RECONNECTING, "OFF"),
        (CameraState.FINISHED, "OFF"),
        (CameraState.FAILED, "OFF"),
    ],
)
def test_the_online_sensor_follows_the_camera_status(
    configs: list[DiscoveryMessage], state: CameraState, online: str
) -> None:
    (sensor,) = [m.payload for m in configs if m.topic.endswith("streamer_gate-1/online/config")]
    assert sensor["state_topic"] == Topics("streamer").status("gate-1")
    status = CameraStatus("gate-1", state, None, T0)
    assert render(sensor["value_template"], json.dumps(status.to_json()).encode()) == online


def test_prefixes_and_switching_discovery_off() -> None:
    config = mqtt_config(topic_prefix="site/a", discovery={"prefix": "ha"})
    (first, *_) = discovery_configs(config, ["gate-1"])
    assert first.topic == "ha/sensor/site_a_gate-1/last_plate/config"
    assert first.payload["state_topic"] == "site/a/gate-1/last_plate"
    assert first.payload["availability_topic"] == "site/a/availability"
    assert discovery_configs(mqtt_config(discovery={"enabled": False}), ["gate-1"]) == []


def test_every_entity_matches_the_filters_that_find_removed_ones(
    configs: list[DiscoveryMessage],
) -> None:
    filters = [re.escape(f).replace(r"\+", "[^/]+") for f in discovery_filters(mqtt_config())]
    for message in configs:
        assert any(re.fullmatch(pattern, message.topic) for pattern in filters), message.topic


def test_a_removed_camera_leaves_home_assistant(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera removed from the config: at the next start its entities' discovery configs
    are cleared on the broker (HA then removes them and the device); another daemon's (its
    own topic prefix) stay. With discovery off, every entity of the daemon goes."""
    caplog.set_level(logging.INFO, logger="streamer")
    with Subscriber(broker, "homeassistant/#") as subscriber:

        def connect(cameras: list[str], node: str, published: bool, **mqtt: object) -> None:
            """Run a daemon's MQTT sender until ``node``'s configs are published (or
            cleared: empty)."""
            config = make_config(
                tmp_path,
                cameras=[{"name": name, "source": f"{name}.mp4"} for name in cameras],
                mqtt={"url": broker.url, "timeout_s": 3, **mqtt},
            )
            assert config.mqtt is not None
            seen = len(subscriber.messages())

            def done(messages: list[Received]) -> bool:
                new = [m for m in messages[seen:] if f"/{node}/" in m.topic]
                return len([m for m in new if bool(m.payload) == published]) == len(ENTITIES)

            async def run() -> None:
                assert config.mqtt is not None
                sender = MqttSender(config.mqtt, Outbox(config.outbox, []), config.cameras)
                task = asyncio.create_task(sender.run())
                await asyncio.to_thread(subscriber.wait_for, done, 10)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            asyncio.run(run())

        def devices() -> dict[str, int]:
            held = [topic for topic, m in subscriber.retained().items() if m.payload]
            return dict(Counter(topic.split("/")[2] for topic in held))

        connect(["gate-1", "gate-2"], "streamer_gate-2", published=True)
        connect(["exit"], "site-b_exit", published=True, topic_prefix="site-b")  # another daemon
        assert devices() == {"streamer_gate-1": 6, "streamer_gate-2": 6, "site-b_exit": 6}
        connect(["gate-1"], "streamer_gate-2", published=False)
        assert devices() == {"streamer_gate-1": 6, "site-b_exit": 6}
        connect(["gate-1"], "streamer_gate-1", published=False, discovery={"enabled": False})
        assert devices() == {"site-b_exit": 6}
    lines = [r.getMessage() for r in caplog.records if "no longer configured" in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith("mqtt: removed 6 Home Assistant entities of cameras no longer")
    assert "homeassistant/sensor/streamer_gate-2/last_plate/config" in lines[0]
