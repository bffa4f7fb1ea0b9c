"""The connection to the broker against real Mosquitto: a message the broker refuses is
dead-lettered alone, in MQTT 5 and through a broker that speaks MQTT 3.1.1 only, and a
broker that drops every connection is not hammered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer.config import Config
from streamer.delivery.homeassistant import ENTITIES
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import DeliveryState
from streamer.events import DuesResult

from support.daemon import make_config
from support.factories import make_event
from support.mosquitto import Broker, Subscriber, mosquitto_missing
from support.mqtt_proxy import Misbehaviour, MqttProxy

#: Reconnection in tests: fast, so an outage ends in seconds.
FAST = {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, "timeout_s": 3}


@pytest.fixture
def small_packets(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto that takes packets of at most 1,500 bytes."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    with Broker(tmp_path / "broker", settings=["max_packet_size 1500"]) as running:
        yield running


def config_for(tmp_path: Path, url: str, **mqtt: Any) -> Config:
    cameras = [{"name": "gate", "source": "gate.mp4"}]
    return make_config(tmp_path, cameras=cameras, mqtt={"url": url, **FAST, **mqtt})


async def deliver_all(config: Config, outbox: Outbox, timeout: float = 30) -> MqttSender:
    """Run a sender until nothing is pending, then stop it."""
    assert config.mqtt is not None
    sender = MqttSender(config.mqtt, outbox, config.cameras)
    task = asyncio.create_task(sender.run())
    try:
        await sender.first_attempt()
        await asyncio.wait_for(sender.settle(), timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return sender


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_oversize_event_is_dead_lettered_and_the_others_flow(
    tmp_path: Path, small_packets: Broker, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten events, the fourth with a dues message of 2,000 characters: it goes to the dead
    letters in one line that names its size, the other nine are delivered, and the
    broker's retained state is whole. Over MQTT 3.1.1 the broker says nothing: it drops the
    connection, twice, and then the event counts as refused."""
    with broker_url(small_packets, protocol) as url:
        config = config_for(tmp_path, url)
        outbox = Outbox(config.outbox, config.delivery_targets)
        events = [make_event(f"KA01AB{n:04d}") for n in range(10)]
        oversize = events[3] = make_event(
            "DL07CR6158", dues_result=DuesResult(True, True, 350.0, "x" * 2000)
        )
        for event in events:
            outbox.add(event)
        with Subscriber(small_packets) as subscriber:
            caplog.set_level(logging.INFO, logger="streamer")
            asyncio.run(deliver_all(config, outbox))
            subscriber.wait_for(lambda m: len(_plates(m)) >= 9, timeout=10)
            retained = subscriber.retained()
    counts = {state: n for (_, state), n in outbox.counts().items()}
    assert counts == {DeliveryState.DELIVERED: 9, DeliveryState.DEAD: 1}
    (dead,) = outbox.list(DeliveryState.DEAD)
    assert dead.event_id == oversize.event_id
    plates = [json.loads(text)["plate_number"] for text in _plates(subscriber.messages())]
    assert sorted(set(plates)) == sorted(e.plate_number for e in events if e is not oversize)
    # One line says so, with the size (and the broker's limit when it said it).
    lines = [r.getMessage() for r in caplog.records if "dead letters" in r.getMessage()]
    assert len(lines) == 1, lines
    assert oversize.event_id in lines[0]
    assert "bytes" in lines[0]
    if protocol == "5":
        assert "above the broker's limit of 1,500 bytes" in lines[0]
    # The broker holds the last event it took, and the discovery configs; nothing retained
    # holds the refused event, so it is not sent again on each connection.
    assert json.loads(retained["streamer/gate/last_plate"].text)["event_id"] == events[-1].event_id
    assert len([t for t in retained if t.startswith("homeassistant/")]) == len(ENTITIES)
    assert retained["streamer/gate/plates_today"].text == "10"
    # No reconnection loop: none in MQTT 5; in 3.1.1, one per drop the refusal took.
    reconnects = [r for r in caplog.records if "reconnected to" in r.getMessage()]
    assert len(reconnects) <= (0 if protocol == "5" else 2)


def _plates(messages: list[Any]) -> list[str]:
    return list(dict.fromkeys(m.text for m in messages if m.topic == "streamer/gate/plate"))


@contextlib.contextmanager
def broker_url(broker: Broker, protocol: str) -> Iterator[str]:
    """The broker's URL for MQTT 5; for 3.1.1, that of a 3.1.1-only proxy in front of it."""
    if protocol == "5":
        yield broker.url
        return
    with MqttProxy(broker, Misbehaviour.MQTT_311_ONLY) as proxy:
        yield proxy.url


def test_a_broker_that_speaks_mqtt_311_only_gets_311(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    with MqttProxy(broker, Misbehaviour.MQTT_311_ONLY) as proxy:
        config = config_for(tmp_path, proxy.url)
        outbox = Outbox(config.outbox, config.delivery_targets)
        outbox.add(make_event())
        caplog.set_level(logging.INFO, logger="streamer")
        with Subscriber(broker, "streamer/gate/plate") as subscriber:
            asyncio.run(deliver_all(config, outbox))
            subscriber.wait_for(lambda m: len(m) == 1, timeout=10)
    messages = [r.getMessage() for r in caplog.records]
    assert any("does not speak MQTT 5; connecting with MQTT 3.1.1" in m for m in messages)
    assert any(m.endswith("(MQTT 3.1.1)") and "connected to" in m for m in messages)
    assert not any(r.levelno >= logging.WARNING for r in caplog.records), messages


def test_a_broker_that_drops_every_connection_is_not_hammered(
    tmp_path: Path, broker: Broker
) -> None:
    """Each connection is accepted, and dropped 0.3 s later: the waits between attempts
    grow to reconnect_max_s, as they do for a broker that cannot be reached."""
    with MqttProxy(broker, Misbehaviour.DROP_SOON) as proxy:
        config = config_for(tmp_path, proxy.url, reconnect_initial_s=0.1, reconnect_max_s=1.6)
        assert config.mqtt is not None
        outbox = Outbox(config.outbox, config.delivery_targets)

        async def run_for(seconds: float) -> None:
            assert config.mqtt is not None
            sender = MqttSender(config.mqtt, outbox, config.cameras)
            task = asyncio.create_task(sender.run())
            await asyncio.sleep(seconds)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(run_for(6.0))
    gaps = [b - a for a, b in zip(proxy.connections, proxy.connections[1:], strict=False)]
    # 0.1, 0.2, 0.4, 0.8, 1.6 s (±20%) and the 0.3 s each connection lasts; not 0.1 s
    # after each (the backoff starts again only after a connection that lasted).
    assert 4 <= len(proxy.connections) <= 8, gaps
    assert max(gaps) > 1.2, gaps


def test_a_message_the_broker_does_not_take_is_not_marked_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's ACL lets the daemon publish for camera gate only: the events of camera
    lane are refused (an MQTT 3.1.1 broker would acknowledge them all the same) and go to
    the dead letters, and those of gate are delivered."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    acl = tmp_path / "acl"
    acl.write_text(
        "topic read #\ntopic write homeassistant/#\ntopic write streamer/availability\n"
        "topic write streamer/gate/#\n"
    )
    with Broker(tmp_path / "broker", settings=[f"acl_file {acl}"]) as broker:
        cameras = [{"name": "gate", "source": "gate.mp4"}, {"name": "lane", "source": "l.mp4"}]
        config = make_config(tmp_path, cameras=cameras, mqtt={"url": broker.url, **FAST})
        outbox = Outbox(config.outbox, config.delivery_targets)
        refused = make_event("MH12XY7395", camera="lane")
        for event in (make_event("KA01AB1234"), refused, make_event("TN09BC5678")):
            outbox.add(event)
        caplog.set_level(logging.INFO, logger="streamer")
        asyncio.run(deliver_all(config, outbox))
    counts = {state: n for (_, state), n in outbox.counts().items()}
    assert counts == {DeliveryState.DELIVERED: 2, DeliveryState.DEAD: 1}
    (dead,) = outbox.list(DeliveryState.DEAD)
    assert dead.event_id == refused.event_id
    assert dead.last_error is not None
    assert "the broker refused the message on streamer/lane/plate" in dead.last_error
    assert "Not authorized" in dead.last_error


def test_a_rules_retained_message_is_not_published_again(tmp_path: Path) -> None:
    """A rule's retained message goes out once: after the broker restarted (and lost its
    retained messages), the daemon publishes its own state again, not the rule's."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    broker = Broker(tmp_path / "broker").start()
    config = config_for(tmp_path, broker.url)
    assert config.mqtt is not None
    outbox = Outbox(config.outbox, config.delivery_targets)
    outbox.add(make_event())

    async def publish_then_reconnect() -> None:
        assert config.mqtt is not None
        sender = MqttSender(config.mqtt, outbox, config.cameras)
        task = asyncio.create_task(sender.run())
        try:
            await sender.ready()
            await sender.publish_now("gate/1/open", b"1", retain=True)
            await asyncio.wait_for(sender.settle(), 10)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            # Its own state published again: the availability, then the last plate.
            with Subscriber(broker, "streamer/#") as state:
                await asyncio.to_thread(
                    state.wait_for, lambda _: bool(state.messages("streamer/gate/last_plate")), 10
                )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        with Subscriber(broker) as subscriber:
            asyncio.run(publish_then_reconnect())
            retained = subscriber.retained()
    finally:
        broker.stop()
    assert "gate/1/open" not in retained
    assert json.loads(retained["streamer/gate/last_plate"].text)["plate_number"] == "KA01AB1234"
