"""The retained MQTT state: plates today start again at local midnight; a camera that is
starting keeps its last state."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox
from streamer.delivery.retained import DailyCounts
from streamer.events import CameraSnapshot
from streamer.sources.frame import CameraState

from support.daemon import make_config
from support.homeassistant import HomeAssistant
from support.mosquitto import Broker, Received, Subscriber


def test_plates_today_start_again_at_local_midnight() -> None:
    evening = time.mktime((2026, 11, 24, 23, 59, 0, 0, 0, -1))
    counts = DailyCounts(now=evening)
    assert counts.add("gate", "a", evening, now=evening)
    assert not counts.add("gate", "a", evening + 1, now=evening + 1)  # the same vehicle
    assert counts.add("gate", "b", evening + 2, now=evening + 2)
    assert counts.count("gate") == 2
    morning = evening + 120
    assert not counts.add("gate", "c", evening + 30, now=morning)  # committed yesterday
    assert counts.count("gate") == 0
    assert counts.add("gate", "d", morning, now=morning)
    assert counts.count("gate") == 1
    assert counts.midnight == time.mktime((2026, 11, 25, 0, 0, 0, 0, 0, -1))


def test_a_starting_camera_keeps_its_last_state(tmp_path: Path, broker: Broker) -> None:
    """A camera that takes a while to start reading its file (over a look at its state),
    at a daemon's first start and at its restart: Home Assistant's Online entity is on,
    unavailable while the daemon is down, and on again, never off: the camera publishes
    no ``starting``, its last state stands."""
    camera = {"name": "gate-1", "source": str(tmp_path / "gate-1.mp4")}
    config = make_config(tmp_path, cameras=[camera], mqtt={"url": broker.url, "timeout_s": 3})
    assert config.mqtt is not None
    state, looks = CameraState.STARTING, 0

    def snapshots() -> list[CameraSnapshot]:
        nonlocal looks
        looks += 1
        return [CameraSnapshot("gate-1", "gate-1.mp4", state, 0, 0, 0, 0, 0, 0, 0, None, None)]

    def statuses(messages: list[Received]) -> list[str]:
        return [json.loads(m.text)["status"] for m in messages if m.topic.endswith("/status")]

    async def run(subscriber: Subscriber, times: int) -> None:
        nonlocal state, looks
        assert config.mqtt is not None
        state, looks = CameraState.STARTING, 0
        sender = MqttSender(config.mqtt, Outbox(config.outbox, []), config.cameras, snapshots)
        task = asyncio.create_task(sender.run())
        await sender.first_attempt()
        while looks < 2:  # at the connection, and once after it
            await asyncio.sleep(0.05)
        state = CameraState.FILE
        await asyncio.to_thread(subscriber.wait_for, lambda m: statuses(m).count("file") == times)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with Subscriber(broker) as subscriber:
        asyncio.run(run(subscriber, 1))
        asyncio.run(run(subscriber, 2))
        offline = ["online", "offline"] * 2
        subscriber.wait_for(
            lambda m: [x.text for x in m if x.topic.endswith("/availability")] == offline
        )
        home_assistant = HomeAssistant([])
        home_assistant.follow(subscriber)
    online = home_assistant.history["binary_sensor.gate_1_online"]
    assert online == ["unavailable", "unknown", "on", "unavailable", "on", "unavailable"]
