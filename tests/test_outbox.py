"""The SQLite outbox: filters, order, the bound and its policy, retry and purge."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from streamer.config import MqttConfig, OutboxConfig, WebhookConfig
from streamer.delivery.eventlog import JsonLinesSink, OutboxSink
from streamer.delivery.outbox import Outbox
from streamer.delivery.outbox_schema import SCHEMA_VERSION
from streamer.delivery.queue import DEAD, DELIVERED, PENDING
from streamer.delivery.webhooks import retry_after_seconds, sign
from streamer.events import NOT_FOUND, CameraStatus, DuesResult, Phase, PlateEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_event(plate: str = "KA01AB1234", dues: bool = False) -> PlateEvent:
    result = DuesResult(True, True, 100.0, "Fine") if dues else NOT_FOUND
    return PlateEvent("gate", plate, 0.9, 0.8, (1, 2, 3, 4), T0, T0, 1.0, 10, True, result)


def make_outbox(tmp_path: Path, max_pending: int = 100) -> Outbox:
    webhooks = [
        WebhookConfig(url="http://127.0.0.1:1/a", name="all", include_status=True),
        WebhookConfig(url="http://127.0.0.1:1/b", name="alerts", only_dues=True),
    ]
    return Outbox(OutboxConfig(database=tmp_path / "o.sqlite", max_pending=max_pending), webhooks)


def test_filters_decide_the_targets(tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    assert outbox.add(make_event()) == ["all"]
    assert outbox.add(make_event(dues=True)) == ["all", "alerts"]
    assert outbox.add(CameraStatus("gate", "offline", "gone", T0)) == ["all"]
    assert outbox.counts() == {("all", PENDING): 3, ("alerts", PENDING): 1}


def test_adding_the_same_event_twice_queues_it_once(tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    event = make_event()
    assert outbox.add(event) == ["all"]
    assert outbox.add(event) == []
    assert outbox.counts() == {("all", PENDING): 1}


def test_oldest_first_and_outcomes(tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    first, second = make_event("AA11AA1111"), make_event("BB22BB2222")
    outbox.add(first)
    outbox.add(second)
    due = outbox.next_due("all")
    assert due is not None
    assert due.event_id == first.event_id
    assert due.payload["plate_number"] == "AA11AA1111"
    outbox.retry_later(due.id, "HTTP 500", next_at=due.next_at + 60)
    again = outbox.next_due("all")
    assert again is not None
    assert (again.id, again.attempts, again.last_error) == (due.id, 1, "HTTP 500")
    outbox.delivered(due.id)
    after = outbox.next_due("all")
    assert after is not None
    assert after.event_id == second.event_id
    outbox.dead(after.id, "HTTP 404")
    assert outbox.next_due("all") is None
    assert outbox.counts() == {("all", DELIVERED): 1, ("all", DEAD): 1}


def test_full_outbox_moves_the_oldest_to_dead_letters(tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path, max_pending=3)
    events = [make_event(f"KA01AB{n:04d}") for n in range(5)]
    for event in events:
        outbox.add(event)
    assert outbox.counts() == {("all", PENDING): 3, ("all", DEAD): 2}
    assert outbox.dropped_full == 2
    dead = outbox.list(DEAD)
    assert {d.event_id for d in dead} == {events[0].event_id, events[1].event_id}
    assert {d.last_error for d in dead} == {"outbox full"}
    assert outbox.retry() == 2
    assert outbox.counts() == {("all", PENDING): 5}


def test_retry_one_and_purge_dead(tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    outbox.add(make_event())
    due = outbox.next_due("all")
    assert due is not None
    outbox.dead(due.id, "HTTP 400")
    assert outbox.retry(due.id) == 1
    outbox.dead(due.id, "HTTP 400")
    assert outbox.purge(DEAD) == 1
    assert outbox.counts() == {}


def test_signature_is_hmac_of_timestamp_and_body() -> None:
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
    assert sign("secret", "1700000000", b'{"a":1}') == (
        "sha256=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), (None, None), ("soon", None), ("", None)],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert retry_after_seconds(header, now=now) == pytest.approx(30, abs=1)


def logged_ids(path: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


def test_an_event_a_crash_kept_out_of_the_log_is_logged_on_the_next_start(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.jsonl"
    alerts = [WebhookConfig(url="http://127.0.0.1:1/b", name="alerts", only_dues=True)]

    def start() -> OutboxSink:
        return OutboxSink(
            Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), alerts), JsonLinesSink(log)
        )

    sink = start()
    first, second = make_event("KA01AB1234", dues=True), make_event("MH12CD5678", dues=True)
    unwanted = make_event("DL07CR6158")  # no dues: the webhook does not take it
    sink.send(first)
    sink.outbox.add(second)  # committed; the crash came before the log line
    assert logged_ids(log) == [first.event_id]

    restarted = start()
    assert restarted.recover() == 1
    assert restarted.recover() == 0
    restarted.send(unwanted)  # logged all the same
    assert logged_ids(log) == [first.event_id, second.event_id, unwanted.event_id]

    lines = log.read_text().splitlines()
    assert json.loads(lines[1]) == second.to_json()


def test_an_event_logged_but_not_marked_before_a_crash_is_not_logged_twice(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.jsonl"
    outbox = Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), [])
    event = make_event("KA01AB1234")
    outbox.add(event)
    JsonLinesSink(log).send(event)  # the crash came before the outbox marked it
    assert OutboxSink(outbox, JsonLinesSink(log)).recover() == 0
    assert logged_ids(log) == [event.event_id]


def test_an_outbox_from_before_the_logged_column_opens(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "o.sqlite") as connection:
        connection.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
            "type TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        connection.execute("INSERT INTO events VALUES (1, 'old', 'plate', '{}', 0)")
    connection.close()
    outbox = make_outbox(tmp_path)
    assert outbox.unlogged() == []  # what was there before counts as logged
    assert outbox.add(make_event()) == ["all"]
    assert len(outbox.unlogged()) == 1


def test_an_outbox_of_schema_version_1_keeps_its_pending_deliveries(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "o.sqlite") as connection:
        connection.executescript(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
            "type TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL, "
            "logged INTEGER NOT NULL DEFAULT 1);"
            "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event INTEGER NOT NULL "
            "REFERENCES events(id) ON DELETE CASCADE, target TEXT NOT NULL, state TEXT NOT NULL, "
            "attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_error TEXT, "
            "updated_at REAL NOT NULL, UNIQUE (event, target));"
            "INSERT INTO events VALUES (7, 'old-id', 'plate', '{\"plate_number\": \"X\"}', 0, 1);"
            "INSERT INTO deliveries VALUES (3, 7, 'all', 'pending', 1, 0, 'HTTP 500', 0);"
        )
    connection.close()
    outbox = make_outbox(tmp_path)
    old = outbox.next_due("all")
    assert old is not None
    assert (old.id, old.key, old.event_id, old.attempts) == (3, "old-id", "old-id", 1)
    outbox.delivered(old.id)  # the foreign key still points at the events table
    final = make_event()
    early = replace(final, phase=Phase.EARLY)
    assert outbox.add(early) == ["all"]
    assert outbox.add(final) == ["all"]  # same event_id, another phase: its own delivery
    keys = [d.key for d in outbox.list(PENDING)]
    assert keys == [f"{final.event_id}:final", f"{final.event_id}:early"]
    with sqlite3.connect(tmp_path / "o.sqlite") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    connection.close()


def test_webhooks_choose_phases_and_only_dues_applies_to_each(tmp_path: Path) -> None:
    webhooks = [
        WebhookConfig(url="http://127.0.0.1:1/a", name="early", phases=["early"]),
        WebhookConfig(url="http://127.0.0.1:1/b", name="final", phases=["final"]),
        WebhookConfig(url="http://127.0.0.1:1/c", name="alerts", only_dues=True),
    ]
    outbox = Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), webhooks)
    final = make_event(dues=True)
    early = replace(final, phase=Phase.EARLY, dues_result=NOT_FOUND)  # misread early
    assert outbox.add(early) == ["early"]
    assert outbox.add(final) == ["final", "alerts"]


def test_an_early_event_without_its_final_one_is_an_orphan_until_then(tmp_path: Path) -> None:
    nobody = [WebhookConfig(url="http://127.0.0.1:1/a", name="alerts", only_dues=True)]
    outbox = Outbox(OutboxConfig(database=tmp_path / "o.sqlite", keep_delivered_s=0), nobody)
    final = make_event()
    early = replace(final, phase=Phase.EARLY)
    assert outbox.add(early) == []  # journalled, though no webhook wants it
    assert [record["event_id"] for record in outbox.orphans()] == [early.event_id]
    other = make_event("MH12CD5678")
    outbox.add(other)
    outbox.purge_delivered()  # retention drops the other event, not the open early one
    with sqlite3.connect(tmp_path / "o.sqlite") as connection:
        kept = connection.execute("SELECT key FROM events").fetchall()
    connection.close()
    assert kept == [(early.key,)]
    outbox.add(final)
    assert outbox.orphans() == []


def test_the_mqtt_broker_is_a_target_that_takes_every_event(tmp_path: Path) -> None:
    mqtt = MqttConfig(url="mqtt://127.0.0.1:1883")
    alerts = WebhookConfig(url="http://127.0.0.1:1/b", name="alerts", only_dues=True)
    outbox = Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), [alerts, mqtt])
    plain, owing = make_event(), make_event("MH12XY7395", dues=True)
    assert outbox.add(plain) == ["mqtt:127.0.0.1:1883"]
    assert outbox.add(replace(plain, phase=Phase.EARLY)) == ["mqtt:127.0.0.1:1883"]
    assert outbox.add(owing) == ["alerts", "mqtt:127.0.0.1:1883"]
    assert outbox.add(CameraStatus("gate", "offline", "gone", T0)) == ["mqtt:127.0.0.1:1883"]
    assert sorted(outbox.vehicles_since(0)) == sorted(
        [("gate", plain.event_id), ("gate", owing.event_id)]
    )
    assert outbox.vehicles_since(time.time() + 1) == []
