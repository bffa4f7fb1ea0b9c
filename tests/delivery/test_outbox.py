"""The SQLite outbox: filters, order, the bound and its policy, retry and purge, and the
files it refuses (damaged, newer) or reads with care (an unreadable row)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamer.config import MqttConfig, OutboxConfig, WebhookConfig
from streamer.delivery.outbox import Outbox, OutboxError
from streamer.delivery.outbox_file import SCHEMA_VERSION
from streamer.delivery.queue import DEAD, DELIVERED, PENDING
from streamer.events import NOT_FOUND, CameraStatus, Phase

from support.factories import make_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


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
    assert outbox.add(event) is None
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


def test_a_newer_schema_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    make_outbox(tmp_path).add(make_event())
    path = tmp_path / "o.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(OutboxError) as refused:
        make_outbox(tmp_path)
    assert str(refused.value) == (
        f"outbox.database: {path} is of schema version {SCHEMA_VERSION + 1}, newer than this "
        f"streamer's ({SCHEMA_VERSION}): upgrade streamer, or point outbox.database at another "
        "file (this one is left as it is)"
    )
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
        assert connection.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (1,)
    connection.close()


def test_a_lost_version_number_keeps_the_keys_of_early_and_final_events(tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    final = make_event()
    outbox.add(replace(final, phase=Phase.EARLY))
    outbox.add(final)
    with sqlite3.connect(tmp_path / "o.sqlite") as connection:
        connection.execute("PRAGMA user_version = 0")
    connection.close()
    keys = [d.key for d in make_outbox(tmp_path).list(PENDING)]
    assert keys == [final.key, f"{final.event_id}:early"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{not json", "payload is not JSON"),
        ("[1, 2]", "payload is not an event"),
        ('{"type": "plate"}', "payload is not an event"),
    ],
)
def test_an_unreadable_payload_is_read_as_such_not_raised(
    tmp_path: Path, payload: str, reason: str
) -> None:
    outbox = make_outbox(tmp_path)
    bad, good = make_event("AA11AA1111"), make_event("BB22BB2222")
    outbox.add(bad)
    outbox.add(good)
    with sqlite3.connect(tmp_path / "o.sqlite") as connection:
        connection.execute("UPDATE events SET payload = ? WHERE key = ?", (payload, bad.key))
    connection.close()
    first = outbox.next_due("all")
    assert first is not None
    assert (first.key, first.payload) == (bad.key, {})
    assert first.unreadable is not None
    assert first.unreadable.startswith(reason)
    assert [d.unreadable is None for d in outbox.list()] == [True, False]
    assert outbox.unlogged() == [(bad.key, {}), (good.key, good.to_json())]
