"""Rules and their actions: a real HTTP server as the gate relay, Mosquitto for MQTT
actions, and the demo recording end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streamer.api.metrics import Metrics
from streamer.config import RuleConfig, When
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox
from streamer.delivery.rules import Publish, RuleRunner, no_broker, render
from streamer.events import NOT_FOUND, DuesResult, Event, ListMatch, Phase, PlateEvent
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest, seed_demo_dues
from streamer.stores.dues import SqlDues
from streamer.stores.lists import SqlLists
from streamer.vision.detect import YoloDetector
from streamer.vision.direction import Direction

from support.daemon import Clock, make_config, vehicles
from support.mosquitto import Broker, Subscriber
from support.receiver import Behaviour, Receiver, SilentRelay
from support.rtsp import free_port

T0 = datetime(2026, 11, 29, 8, tzinfo=UTC)
DUES = DuesResult(True, True, 350.0, "Toll")


@pytest.fixture
def relay() -> Iterator[Receiver]:
    server = Receiver(free_port()).start()
    yield server
    server.stop()


def plate_event(
    plate: str | None,
    phase: Phase = Phase.EARLY,
    *,
    event_id: str | None = None,
    camera: str = "gate-1",
    lists: tuple[str, ...] = (),
    dues: DuesResult = NOT_FOUND,
) -> PlateEvent:
    return PlateEvent(
        camera=camera,
        plate_number=plate,
        confidence=0.9,
        detector_confidence=0.8,
        bbox=(1, 2, 3, 4),
        first_seen=T0,
        last_seen=T0,
        media_time_s=None,
        frames=5,
        format_valid=True,
        dues_result=dues,
        lists=ListMatch(lists),
        event_id=event_id or str(uuid.uuid4()),
        phase=phase,
    )


def rule(name: str = "open-gate", **settings: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": name, **settings})


async def run_rules(
    rules: list[RuleConfig], events: list[Event], metrics: Metrics, publish: Publish = no_broker
) -> float:
    """Send ``events`` to a runner from a worker thread, as the pipeline does; wait for the
    actions; returns the longest time one ``send`` took."""
    runner = RuleRunner(rules, asyncio.get_running_loop(), publish, counter=metrics)

    def send_all() -> float:
        longest = 0.0
        for event in events:
            started = time.perf_counter()
            runner.send(event)
            longest = max(longest, time.perf_counter() - started)
        return longest

    longest = await asyncio.to_thread(send_all)
    await asyncio.sleep(0.05)  # the actions start on the loop
    await runner.close()
    return longest


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_when_filter() -> None:
    gate = When(lists=["residents", "staff"], dues_pending=False)
    assert gate.matches(["staff"], dues_pending=False)
    assert not gate.matches(["staff"], dues_pending=True)
    assert not gate.matches([], dues_pending=False)
    assert When(not_lists=["banned"]).matches([], dues_pending=True)
    assert not When(not_lists=["banned"]).matches(["staff", "banned"], dues_pending=False)
    assert When().matches([], dues_pending=False)


def test_a_gate_rule_never_fires_for_a_hidden_plate_an_operator_call_does(
    relay: Receiver,
) -> None:
    open_gate = relay.url.replace("/hook", "/relay/0?plate={plate_number}")
    call = relay.url.replace("/hook", "/relay/operator?why={reason}&way={direction}")
    rules = [
        rule("open-gate", when={"not_lists": ["banned"]}, do=[{"http": {"url": open_gate}}]),
        rule("call", when={"unreadable": True}, do=[{"http": {"url": call}}]),
    ]
    hidden = [
        replace(
            plate_event(None),
            reason=reason,
            direction=Direction("approaching", 270.0),
            direction_name="entry",
        )
        for reason in ("unreadable", "no plate")
    ]
    asyncio.run(run_rules(rules, [*hidden, plate_event("KA01AB1234")], Metrics()))
    calls = sorted((c.path, c.query.get("why"), c.query.get("plate")) for c in relay.relay_calls)
    assert calls == [
        ("/relay/0", None, "KA01AB1234"),
        ("/relay/operator", "no plate", None),
        ("/relay/operator", "unreadable", None),
    ]
    ways = {c.query.get("way") for c in relay.relay_calls if c.path == "/relay/operator"}
    assert ways == {"entry"}


def test_placeholders_are_filled_and_quoted_in_urls() -> None:
    event = plate_event("KA01AB1234", lists=("residents", "staff"), dues=DUES)
    text = "{plate_number} {camera} {phase} {lists} {dues_pending}"
    assert render(text, event) == "KA01AB1234 gate-1 early residents,staff true"
    assert render("http://r/?l={lists}", event, url=True) == "http://r/?l=residents%2Cstaff"


def test_the_log_line_of_an_action_masks_the_secrets_of_its_url(
    relay: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    token = "Q3hM9vTzL0pWk2sR7yBn4dGc"  # as a webhook service puts it in the path
    path = f"/relay/{token}/open?key=k3y&plate={{plate_number}}"
    gate = rule(do=[{"http": {"url": relay.url.replace("/hook", path), "method": "GET"}}])
    caplog.set_level(logging.INFO, logger="streamer.delivery.rules")
    asyncio.run(run_rules([gate], [plate_event("KA01AB1234")], Metrics()))
    (call,) = relay.relay_calls
    assert (call.path, call.query["key"]) == (f"/relay/{token}/open", "k3y")  # sent as written
    (line,) = [r.getMessage() for r in caplog.records if r.name == "streamer.delivery.rules"]
    assert "/relay/***/open?key=***&plate=*** → HTTP 200" in line
    assert token not in line
    assert "k3y" not in line


def test_a_rule_fires_once_per_vehicle_on_its_first_matching_event(relay: Receiver) -> None:
    url = relay.url.replace("/hook", "/relay/0?turn=on&plate={plate_number}&phase={phase}")
    gate = rule(when={"lists": ["residents"]}, do=[{"http": {"url": url, "method": "GET"}}])
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    events: list[Event] = [
        # Read early as a resident: fires on the early event, not again on the final.
        plate_event("KA01AB1234", Phase.EARLY, event_id=first, lists=("residents",)),
        plate_event("KA01AB1234", Phase.FINAL, event_id=first, lists=("residents",)),
        # Misread early, right in the final read: fires on the final event.
        plate_event("TN09CK2O46", Phase.EARLY, event_id=second),
        plate_event("TN09CK2046", Phase.FINAL, event_id=second, lists=("residents",)),
        # Not on the list: nothing.
        plate_event("MH12XY7395", Phase.FINAL, event_id=third),
    ]
    metrics = Metrics()
    asyncio.run(run_rules([gate], events, metrics))
    calls = [(c.method, c.path, c.query["plate"], c.query["phase"]) for c in relay.relay_calls]
    assert calls == [
        ("GET", "/relay/0", "KA01AB1234", "early"),
        ("GET", "/relay/0", "TN09CK2046", "final"),
    ]
    assert sample(metrics, "streamer_rules_total", rule="open-gate", outcome="fired") == 2
    ok = {"rule": "open-gate", "action": "http", "outcome": "ok"}
    assert sample(metrics, "streamer_rule_actions_total", **ok) == 2


def test_the_cooldown_holds_back_the_same_plate_on_the_same_camera(relay: Receiver) -> None:
    url = relay.url.replace("/hook", "/relay/{camera}")
    gate = rule(cooldown_s=30, do=[{"http": {"url": url, "method": "PUT", "body": "on"}}])
    events: list[Event] = [
        plate_event("KA01AB1234"),
        plate_event("KA01AB1234"),  # another vehicle id, the same car waiting at the gate
        plate_event("KA01AB1234", camera="gate-2"),
        plate_event("MH12XY7395"),
    ]
    metrics = Metrics()
    asyncio.run(run_rules([gate], events, metrics))
    assert sorted(c.path for c in relay.relay_calls) == [
        "/relay/gate-1",
        "/relay/gate-1",
        "/relay/gate-2",
    ]
    assert {c.body for c in relay.relay_calls} == {b"on"}
    assert sample(metrics, "streamer_rules_total", rule="open-gate", outcome="cooldown") == 1


def test_a_failing_action_blocks_neither_the_pipeline_nor_the_other_actions(
    relay: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    slow_relay = Receiver(free_port(), Behaviour(delay_s=3.0)).start()  # answers after 3 s
    dead = f"http://127.0.0.1:{free_port()}/relay/0"  # nothing listens
    slow = slow_relay.url.replace("/hook", "/relay/slow")
    alert = {"http": {"url": relay.url.replace("/hook", "/relay/alert")}}
    rules = [
        rule("dead", do=[{"http": {"url": dead, "method": "GET"}}]),
        rule("slow", do=[{"http": {"url": slow, "timeout_s": 0.5}}]),
        rule("alert", when={"dues_pending": True}, do=[alert]),
    ]
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="streamer.delivery.rules")
    started = time.monotonic()
    try:
        events: list[Event] = [plate_event("DL07CR6158", dues=DUES)]
        longest_send = asyncio.run(run_rules(rules, events, metrics))
        elapsed = time.monotonic() - started
    finally:
        slow_relay.stop()
    assert longest_send < 0.05  # the pipeline's thread does not wait for any action
    assert elapsed < 2.9  # nor does anything wait for the slow relay: its timeout is 0.5 s
    posted = [c for c in relay.relay_calls if c.path == "/relay/alert"]
    assert len(posted) == 1
    assert json.loads(posted[0].body)["plate_number"] == "DL07CR6158"  # the event's JSON
    outcomes = {
        name: sample(metrics, "streamer_rule_actions_total", rule=name, action="http", outcome=o)
        for name, o in [("dead", "failed"), ("slow", "failed")]
    }
    assert outcomes == {"dead": 1, "slow": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "streamer.delivery.rules"]
    assert any(
        line.startswith("rule dead: DL07CR6158 on gate-1 (early): http GET") and "failed:" in line
        for line in lines
    )
    assert any(line.startswith("rule slow:") and "TimeoutError" in line for line in lines)


def test_a_hung_relay_delays_no_action_to_another_target(relay: Receiver) -> None:
    """150 vehicles at once, each firing a rule on a relay that accepts and never answers
    and one on a healthy relay: every action to the healthy relay succeeds, in time."""
    healthy = relay.url.replace("/hook", "/relay/{plate_number}")
    with SilentRelay() as hung:
        rules = [
            rule("hung", do=[{"http": {"url": f"{hung.url}/relay/0", "timeout_s": 2}}]),
            rule("gate", do=[{"http": {"url": healthy, "method": "GET", "timeout_s": 2}}]),
        ]
        events: list[Event] = [plate_event(f"KA01AB{n:04d}") for n in range(150)]
        metrics = Metrics()
        asyncio.run(run_rules(rules, events, metrics))
    outcome = {"rule": "gate", "action": "http"}
    assert sample(metrics, "streamer_rule_actions_total", **outcome, outcome="ok") == 150
    assert sample(metrics, "streamer_rule_actions_total", **outcome, outcome="failed") == 0
    assert len(relay.relay_calls) == 150
    failed = {"rule": "hung", "action": "http", "outcome": "failed"}
    assert sample(metrics, "streamer_rule_actions_total", **failed) == 150


def test_json_bodies_and_payloads_are_sent_as_written(
    tmp_path: Path, relay: Receiver, broker: Broker
) -> None:
    """A Shelly relay's JSON body and a Zigbee2MQTT payload, without placeholders, go out
    as written; a name in double braces is that name in single braces."""
    shelly = '{"id":1,"method":"Switch.Set","params":{"id":0,"on":true}}'
    url = relay.url.replace("/hook", "/relay/rpc")
    config = make_config(
        tmp_path,
        mqtt={"url": broker.url, "timeout_s": 3},
        rules=[
            {
                "name": "gate",
                "do": [
                    {"http": {"url": url, "body": shelly}},
                    {"mqtt": {"topic": "zigbee2mqtt/gate/set", "payload": '{"state": "ON"}'}},
                    {
                        "mqtt": {
                            "topic": "gate/{camera}",
                            "payload": "{{plate_number}}={plate_number}",
                        }
                    },
                    {"mqtt": {"topic": "gate/{lists}", "payload": "no lists: no topic"}},
                ],
            }
        ],
    )
    assert config.mqtt is not None
    metrics = Metrics()

    async def fire() -> None:
        assert config.mqtt is not None
        sender = MqttSender(config.mqtt, Outbox(config.outbox, []), config.cameras)
        task = asyncio.create_task(sender.run())
        await sender.ready()
        await run_rules(config.rules, [plate_event("KA01AB1234")], metrics, sender.publish_now)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with Subscriber(broker, "zigbee2mqtt/#") as zigbee, Subscriber(broker, "gate/#") as gate:
        asyncio.run(fire())
        zigbee.wait_for(lambda m: len(m) == 1, timeout=5)
        gate.wait_for(lambda m: len(m) == 1, timeout=5)
    (call,) = relay.relay_calls
    assert call.body.decode() == shelly
    assert [m.text for m in zigbee.messages()] == ['{"state": "ON"}']
    assert [(m.topic, m.text) for m in gate.messages()] == [
        ("gate/gate-1", "{plate_number}=KA01AB1234")
    ]
    # {lists} was empty: "gate/" is no topic to publish to, and the action says so.
    failed = {"rule": "gate", "action": "mqtt", "outcome": "failed"}
    assert sample(metrics, "streamer_rule_actions_total", **failed) == 1


def test_a_restart_acts_on_no_vehicle_a_crash_left_open(
    tmp_path: Path, relay: Receiver, detector: YoloDetector, engine: OcrEngine
) -> None:
    """A crash ended a vehicle's track after its early event: the next start finishes it
    (its final event is logged and delivered), and opens no gate for it, as the vehicle
    has long gone."""
    relay_url = relay.url.replace("/hook", "/relay/0?plate={plate_number}&phase={phase}")
    config = make_config(
        tmp_path,
        cameras=[{"name": "gate-1", "source": str(tmp_path / "gate.mp4"), "enabled": False}],
        webhooks=[{"url": relay.url, "name": "hook"}],
        rules=[{"name": "open-gate", "do": [{"http": {"url": relay_url, "method": "GET"}}]}],
    )
    early = plate_event("KA05MN4821")
    Outbox(config.outbox, config.delivery_targets).add(early)  # as the crash left it
    options = ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    asyncio.run(Service(config, options).run())
    records = [json.loads(line) for line in config.events_log.read_text().splitlines()]
    assert [(r["event_id"], r["phase"]) for r in records] == [
        (early.event_id, "early"),  # the crash kept it out of the log
        (early.event_id, "final"),
    ]
    assert f"{early.event_id}:final" in relay.delivered
    assert relay.relay_calls == []


def test_the_demo_opens_the_gate_for_residents_and_alerts_on_banned_cars(
    tmp_path: Path,
    relay: Receiver,
    broker: Broker,
    demo_video: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    """The demo's five vehicles: two residents (one of them with dues), one banned car."""
    dues = SqlDues(tmp_path / "dues.sqlite")
    seed_demo_dues(dues)
    resident, resident_with_dues, _, _, banned = (v for v in demo_video.vehicles)
    assert resident.dues_amount == 0
    assert resident_with_dues.dues_amount > 0
    lists = SqlLists(tmp_path / "dues.sqlite", {"residents": None, "banned": None})
    lists.add("residents", resident.plate, "flat 4")
    lists.add("residents", resident_with_dues.plate, "flat 9")
    lists.add("banned", banned.plate, "stolen")
    relay_url = relay.url.replace("/hook", "/relay/0?turn=on&plate={plate_number}&phase={phase}")
    config = make_config(
        tmp_path,
        cameras=[{"name": "gate-1", "source": str(demo_video.path)}],
        lists={"residents": None, "banned": None},
        mqtt={"url": broker.url, "reconnect_initial_s": 0.2, "timeout_s": 3},
        webhooks=[{"url": relay.url, "name": "police", "when": {"lists": ["banned"]}}],
        rules=[
            {
                "name": "open-gate",
                "cameras": ["gate-1"],
                "when": {"lists": ["residents"], "dues_pending": False},
                "do": [
                    {"http": {"url": relay_url, "method": "GET"}},
                    {"mqtt": {"topic": "gate/1/open", "payload": "{plate_number}"}},
                ],
            },
        ],
        outbox={"database": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 30},
    )
    clock = Clock()
    options = ServiceOptions(
        install_signal_handlers=False, detector=detector, engine=engine, extra_sinks=[clock]
    )
    with Subscriber(broker, "gate/#") as subscriber:
        asyncio.run(Service(config, options).run())
        subscriber.wait_for(lambda m: len(m) >= 1, timeout=10)
    records = [json.loads(line) for line in config.events_log.read_text().splitlines()]
    finals = {e["plate_number"]: e for e in vehicles(records)}
    assert set(finals) == {v.plate for v in demo_video.vehicles}
    assert finals[resident.plate]["lists"] == ["residents"]
    assert finals[banned.plate]["lists"] == ["banned"]
    assert finals[banned.plate]["dues_result"]["dues_pending"]
    # The gate opened once, for the resident without dues, on the early event.
    calls = [(c.query["plate"], c.query["phase"]) for c in relay.relay_calls]
    assert calls == [(resident.plate, "early")]
    assert [m.text for m in subscriber.messages("gate/1/open")] == [resident.plate]
    # The police webhook got the banned car only (early and final).
    assert {e["plate_number"] for e in relay.unique().values()} == {banned.plate}
    early_key = next(
        f"{r['event_id']}:early" for r in records if r.get("plate_number") == resident.plate
    )
    to_relay = relay.relay_calls[0].at - clock.logged[early_key]
    to_mqtt = subscriber.messages("gate/1/open")[0].at - clock.logged[early_key]
    logging.getLogger(__name__).info(
        "event to rule action: http %.1f ms, mqtt %.1f ms", to_relay * 1000, to_mqtt * 1000
    )
    assert statistics.fmean([to_relay, to_mqtt]) < 1.0
