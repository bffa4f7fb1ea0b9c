"""The Home Assistant automations of docs/mqtt.md, as written there, run against what a
subscriber receives from a real Mosquitto through the daemon's first start, a restart of
Home Assistant and a restart of the daemon, with the entities' states worked out as HA
does (:mod:`support.homeassistant`): each notifies of the cars it should, with their
plate, amount and picture, and of nothing on a restart; a vehicle whose plate was not
read too."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from streamer.events import NOT_FOUND, NOT_READ, UNREADABLE, DuesResult, Phase, PlateEvent
from streamer.vision.direction import Direction
from streamer.vision.vehicles import Vehicle

from support.daemon import MqttSenderThread, make_config
from support.factories import make_event
from support.homeassistant import HomeAssistant
from support.mosquitto import Broker, Received, Subscriber

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
FROM_THE_TOPIC = "Dues pending at gate-1"
FROM_THE_ENTITY = "Dues pending at gate-1, from the entity"
UNREAD = "Plate not read at gate-1"
#: The example the docs gave before: it fired on every start of HA and of the daemon.
BEFORE = """
- alias: before
  triggers:
    - trigger: state
      entity_id: binary_sensor.gate_1_dues_pending
      to: "on"
  actions:
    - action: notify.mobile_app_my_phone
      data:
        message: "{{ state_attr('binary_sensor.gate_1_dues_pending', 'plate_number') }}"
"""
PICTURE = "image.gate_1_plate_crop"
LAST, AVAILABILITY = "streamer/gate-1/last_plate", "streamer/availability"
OWED = DuesResult(True, True, 820.0, "Unpaid toll")


def documented() -> list[dict[str, Any]]:
    """Every automation docs/mqtt.md gives (its YAML blocks that are lists of them)."""
    automations = []
    for block in YAML_BLOCK.findall(DOCS.read_text()):
        loaded = yaml.safe_load(block)
        if isinstance(loaded, list) and all("alias" in entry for entry in loaded):
            automations += loaded
    return automations


def the_documented(alias: str) -> dict[str, Any]:
    """The automation docs/mqtt.md calls ``alias`` (in HA 2024.10's words: the first)."""
    return next(automation for automation in documented() if automation["alias"] == alias)


def jpeg(seed: int) -> bytes:
    """A small JPEG unlike any other seed's, as a plate crop."""
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 160, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


class Gate:
    """The cars of a gate camera (``gate-1``), their crops saved, and a config whose MQTT
    broker is ``broker``."""

    def __init__(self, tmp_path: Path, broker: Broker) -> None:
        self.folder = tmp_path
        self.config = make_config(
            tmp_path,
            cameras=[{"name": "gate-1", "source": str(tmp_path / "gate-1.mp4")}],
            mqtt={"url": broker.url, "timeout_s": 3, "reconnect_initial_s": 0.2},
        )
        self.crops: dict[str, bytes] = {}

    def car(self, plate: str, dues: DuesResult = NOT_FOUND) -> list[PlateEvent]:
        """A car's early and final events, its crop saved."""
        crop = self.folder / f"{plate}-crop.jpg"
        crop.write_bytes(jpeg(len(self.crops)))
        self.crops[plate] = crop.read_bytes()
        early = make_event(
            plate, phase=Phase.EARLY, camera="gate-1", crop_path=str(crop), dues_result=dues
        )
        return [early, replace(early, phase=Phase.FINAL)]


def texts(messages: list[Received], topic: str) -> list[str]:
    return [m.text for m in messages if m.topic == topic]


def final_of(plate: str) -> Callable[[list[Received]], bool]:
    def seen(messages: list[Received]) -> bool:
        return any(
            m.topic == "streamer/gate-1/plate" and plate in m.text and '"final"' in m.text
            for m in messages
        )

    return seen


@pytest.mark.parametrize("alias", [FROM_THE_TOPIC, FROM_THE_ENTITY])
def test_a_documented_automation_on_restarts(tmp_path: Path, broker: Broker, alias: str) -> None:
    automation = the_documented(alias)
    automations = [automation, *yaml.safe_load(BEFORE)]
    gate = Gate(tmp_path, broker)
    with Subscriber(broker) as live, contextlib.ExitStack() as later:
        ha = HomeAssistant(automations)  # running since before the daemon's first start
        with MqttSenderThread(gate.config) as daemon:
            daemon.add([*gate.car("HR26K4417", OWED), *gate.car("KA01AB1234")])
            daemon.add(gate.car("MH12XY7395", OWED))
            live.wait_for(final_of("MH12XY7395"))
            ha.follow(live)
            told = [n for n in ha.notifications if n.automation == alias]
            # The topic's automation tells of each car with dues; the entity's misses the
            # first, which found the entity unknown (a new installation).
            cars = ["HR26K4417", "MH12XY7395"] if alias == FROM_THE_TOPIC else ["MH12XY7395"]
            assert [n.data["message"] for n in told] == [
                f"{c} owes 820.0: Unpaid toll" for c in cars
            ]
            if alias == FROM_THE_TOPIC:  # with this car's picture
                for car, notification in zip(cars, told, strict=True):
                    image = notification.data["data"]["image"]
                    assert image.startswith(f"/api/image_proxy/{PICTURE}?token=")
                    assert notification.images[PICTURE] == gate.crops[car]

            # Home Assistant restarts, and finds the last car (with dues) retained.
            restarted = later.enter_context(Subscriber(broker))
            again = HomeAssistant(automations)
            restarted.wait_for(lambda m: {AVAILABILITY, LAST} <= {x.topic for x in m})
            again.follow(restarted)
            assert again.entity("binary_sensor.gate_1_dues_pending").now().state == "on"
        told_live = len(ha.notifications)

        # The daemon restarts, with nothing new to say, and stops.
        with MqttSenderThread(gate.config):
            live.wait_for(lambda m: texts(m, AVAILABILITY)[-1:] == ["online"])
        for subscriber in (live, restarted):
            subscriber.wait_for(lambda m: texts(m, AVAILABILITY)[-1:] == ["offline"])
        ha.follow(live)
        again.follow(restarted)
        # The example the docs gave before fired on each (what users saw); no documented one.
        assert [n.automation for n in ha.notifications[told_live:]] == ["before"]
        assert [n.automation for n in again.notifications] == ["before", "before"]

        # The next car with dues, after one without: each Home Assistant tells of it once.
        told_before = [len(ha.notifications), len(again.notifications)]
        with MqttSenderThread(gate.config) as daemon:
            daemon.add([*gate.car("TN09BC5678"), *gate.car("DL3CAF0001", OWED)])
            live.wait_for(final_of("DL3CAF0001"))
            restarted.wait_for(final_of("DL3CAF0001"))
        ha.follow(live)
        again.follow(restarted)
    for seen, since in zip((ha, again), told_before, strict=True):
        new = [n.data["message"] for n in seen.notifications[since:] if n.automation == alias]
        assert new == ["DL3CAF0001 owes 820.0: Unpaid toll"]
        assert all(not entity.ignored for entity in seen.entities.values())  # nothing HA logs


def test_the_older_form_of_an_automation_does_the_same(tmp_path: Path, broker: Broker) -> None:
    """The docs give the first automation in the words of Home Assistant before 2024.10."""
    modern, older = [a for a in documented() if a["alias"] == FROM_THE_TOPIC]
    assert "triggers" in modern
    assert "trigger" in older
    gate = Gate(tmp_path, broker)
    with Subscriber(broker) as live:
        first, second = HomeAssistant([modern]), HomeAssistant([older])
        with MqttSenderThread(gate.config) as daemon:
            daemon.add([*gate.car("HR26K4417", OWED), *gate.car("KA01AB1234")])
            live.wait_for(final_of("KA01AB1234"))
        first.follow(live)
        second.follow(live)
    assert len(first.notifications) == 1
    assert first.notifications == second.notifications


def test_a_vehicle_whose_plate_was_not_read(tmp_path: Path, broker: Broker) -> None:
    """The docs' automation for a plate not read tells of it with the vehicle's picture;
    the Last plate entity says why it has no plate; the dues automation stays silent."""
    automations = [the_documented(UNREAD), the_documented(FROM_THE_TOPIC)]
    gate = Gate(tmp_path, broker)
    vehicle = tmp_path / "unread-vehicle.jpg"
    vehicle.write_bytes(jpeg(99))
    unread = replace(
        make_event("UNREAD", phase=Phase.EARLY, camera="gate-1"),
        plate_number=None,
        reason=UNREADABLE,
        dues_result=NOT_READ,
        vehicle=Vehicle("car", 0.9, (1, 2, 3, 4), "red", 0.8),
        direction=Direction("approaching", 80.0),
        direction_name="entry",
        vehicle_crop_path=str(vehicle),
    )  # a vehicle whose plate was not read, as the pipeline makes it
    with Subscriber(broker) as live:
        ha = HomeAssistant(automations)
        with MqttSenderThread(gate.config) as daemon:
            daemon.add([*gate.car("KA01AB1234"), unread, replace(unread, phase=Phase.FINAL)])
            live.wait_for(lambda m: len(texts(m, "streamer/gate-1/plate")) == 4)
        live.wait_for(lambda m: texts(m, AVAILABILITY)[-1:] == ["offline"])
        ha.follow(live)
    (told,) = ha.notifications
    assert told.automation == UNREAD
    assert told.data["message"] == "unreadable: car entry"
    assert told.images["image.gate_1_vehicle_crop"] == vehicle.read_bytes()
    assert ha.history["sensor.gate_1_last_plate"][-2:] == ["unreadable", "unavailable"]
    assert ha.history["binary_sensor.gate_1_dues_pending"][-2:] == ["off", "unavailable"]
    assert all(not entity.ignored for entity in ha.entities.values())
