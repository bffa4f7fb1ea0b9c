"""The events log after a crash: what the outbox committed reaches the log once."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

from streamer.config import OutboxConfig, WebhookConfig
from streamer.delivery.eventlog import JsonLinesSink, OutboxSink
from streamer.delivery.outbox import Outbox

from support.factories import make_event


def logged_ids(path: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


def test_an_event_a_crash_kept_out_of_the_log_is_logged_on_the_next_start(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.jsonl"
    alerts = [WebhookConfig(url="http://127.0.0.1:1/b", name="alerts", only_dues=True)]

    def start() -> OutboxSink:
        sink = JsonLinesSink(log)
        opened.append(sink)
        return OutboxSink(Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), alerts), sink)

    opened: list[JsonLinesSink] = []

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
    for sink in opened:
        sink.close()


def test_an_event_logged_but_not_marked_before_a_crash_is_not_logged_twice(
    tmp_path: Path,
) -> None:
    log = tmp_path / "events.jsonl"
    outbox = Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), [])
    event = make_event("KA01AB1234")
    outbox.add(event)
    with closing(JsonLinesSink(log)) as crashed:
        crashed.send(event)  # the crash came before the outbox marked it
    with closing(JsonLinesSink(log)) as restarted:
        assert OutboxSink(outbox, restarted).recover() == 0
    assert logged_ids(log) == [event.event_id]
