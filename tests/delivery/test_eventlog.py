"""The events log guarded by the outbox: after a crash what the outbox committed reaches
the log once, and a full disk under either loses no event and no delivery (the daemon on
a real clip, the disk a real 1 MB tmpfs, a real webhook receiver)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamer.config import Config, OutboxConfig, WebhookConfig
from streamer.delivery.eventlog import OutboxSink
from streamer.delivery.jsonlines import JsonLinesSink
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import DeliveryState
from streamer.delivery.sinks import Sink
from streamer.events import Event, Phase, PlateEvent, compact_json
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest
from streamer.sources.frame import Frame
from streamer.vision.detect import YoloDetector

from support.daemon import make_config, vehicles, without_cameras
from support.disks import fill, tmpfs
from support.factories import make_event
from support.receiver import Receiver
from support.rtsp import free_port


def logged_ids(path: Path) -> list[str]:
    return [json.loads(line)["event_id"] for line in path.read_text().split("\n") if line]


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


def test_a_message_with_unicode_line_separators_is_not_logged_twice_after_a_crash(
    tmp_path: Path,
) -> None:
    """The log's lines end at "\\n" only: U+2028, U+2029 or U+0085 inside a message are
    part of the line (a crash between writing it and marking it must not log it again)."""
    log = tmp_path / "events.jsonl"
    outbox = Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), [])
    event = make_event("KA01AB1234", dues=True)
    event = replace(event, dues_result=replace(event.dues_result, message="a\u2028b\u2029c\x85d"))
    outbox.add(event)
    with closing(JsonLinesSink(log)) as crashed:
        crashed.send(event)  # the crash came before the outbox marked it
    with closing(JsonLinesSink(log)) as restarted:
        assert OutboxSink(outbox, restarted).recover() == 0
    assert logged_ids(log) == [event.event_id]


def test_a_line_a_crash_cut_short_does_not_swallow_the_next_one(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    first, second = make_event("KA01AB1234"), make_event("MH12CD5678")
    log.write_text(compact_json(first.to_json()) + "\n" + compact_json(second.to_json())[:50])
    with closing(JsonLinesSink(log)) as restarted:
        restarted.send(second)
    lines = log.read_text().split("\n")
    assert json.loads(lines[0])["event_id"] == first.event_id
    assert json.loads(lines[2])["event_id"] == second.event_id


def test_a_crash_on_a_full_disk_loses_no_delivery_of_what_was_logged(tmp_path: Path) -> None:
    """The outbox and the log share a 1 MB tmpfs, filled to the last byte: the outbox
    cannot commit, the hold file cannot be made, but the log's last page has room for one
    more line. A crash then leaves a final event logged and nowhere else; the next start,
    on a freed disk, queues its delivery (and does not finish the vehicle a second time)."""
    alerts = [WebhookConfig(url="http://127.0.0.1:1/hook", name="alerts")]
    now = datetime.now(UTC)
    early = make_event("KA01AB1234", phase=Phase.EARLY, at=now)
    final = replace(early, phase=Phase.FINAL)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        outbox = OutboxConfig(database=disk / "outbox.sqlite")
        with closing(JsonLinesSink(disk / "events.jsonl")) as log:
            crashed = OutboxSink(Outbox(outbox, alerts), log)
            crashed.send(early)
            filler = fill(disk)
            crashed.send(final)  # logged; its deliveries in memory only, when the crash comes
            crashed.outbox.close()
        assert logged_ids(disk / "events.jsonl") == [early.event_id, final.event_id]
        held = disk / "events.jsonl.held"
        assert not held.exists() or not held.read_bytes()  # no room for it either
        filler.unlink()
        with closing(JsonLinesSink(disk / "events.jsonl")) as log:
            restarted = OutboxSink(Outbox(outbox, alerts), log)
            restarted.recover()
            assert restarted.outbox.orphans() == []  # its final event is known
            pending = restarted.outbox.list(DeliveryState.PENDING)
            restarted.outbox.close()
        assert sorted(d.key for d in pending) == sorted([early.key, final.key])
        assert logged_ids(disk / "events.jsonl") == [early.event_id, final.event_id]


def test_a_start_on_a_disk_still_full_delivers_what_was_logged_once_there_is_room(
    tmp_path: Path,
) -> None:
    """As above, but the next start comes while the disk is still full: the event the log
    took and the outbox never had waits, and is queued once the disk has room again."""
    alerts = [WebhookConfig(url="http://127.0.0.1:1/hook", name="alerts")]
    early = make_event("KA01AB1234", phase=Phase.EARLY, at=datetime.now(UTC))
    final = replace(early, phase=Phase.FINAL)
    with tmpfs(tmp_path / "disk", "1m") as disk:
        outbox = OutboxConfig(database=disk / "outbox.sqlite")
        with closing(JsonLinesSink(disk / "events.jsonl")) as log:
            crashed = OutboxSink(Outbox(outbox, alerts), log)
            crashed.send(early)
            filler = fill(disk)
            crashed.send(final)  # logged; its deliveries in memory only, when the crash comes
            with closing(JsonLinesSink(disk / "events.jsonl")) as log_again:
                restarted = OutboxSink(Outbox(outbox, alerts), log_again)
                restarted.recover()  # the disk is still full
                filler.unlink()
                restarted.catch_up()
                pending = restarted.outbox.list(DeliveryState.PENDING)
                restarted.outbox.close()
            crashed.outbox.close()
        assert sorted(d.key for d in pending) == sorted([early.key, final.key])
        assert logged_ids(disk / "events.jsonl") == [early.event_id, final.event_id]


# --- full disks, with the daemon on a real clip -------------------------------------------

FAST_RETRY = {"retry_initial_s": 0.2, "retry_max_s": 1.0}


class Trigger:
    """A sink after the events log: runs ``action`` once, at the first event ``when``
    accepts."""

    def __init__(self, when: Callable[[Event], bool], action: Callable[[], object]) -> None:
        self.when = when
        self.action = action
        self.done = False

    def send(self, event: Event) -> None:
        if not self.done and self.when(event):
            self.done = True
            self.action()


def is_final(event: Event) -> bool:
    return isinstance(event, PlateEvent) and event.phase == Phase.FINAL


def run_daemon(
    config: Config,
    detector: YoloDetector,
    engine: OcrEngine,
    on_frame: Callable[[Frame], None] | None = None,
    sinks: Sequence[Sink] = (),
) -> None:
    options = ServiceOptions(
        install_signal_handlers=False,
        detector=detector,
        engine=engine,
        on_frame=on_frame,
        extra_sinks=sinks,
    )
    asyncio.run(Service(config, options).run())


def logged_events(config: Config) -> dict[str, dict[str, object]]:
    """The plate events of the log by key, after checking each vehicle has one early and
    then one final event (none missing, none twice)."""
    records = [json.loads(line) for line in config.events_log.read_text().split("\n") if line]
    vehicles(records)
    return {f"{e['event_id']}:{e['phase']}": e for e in records if e["type"] == "plate"}


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines logged at ERROR and above; a traceback fails the test."""
    assert not [r.getMessage() for r in caplog.records if r.exc_info], "a traceback was logged"
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("disk", "reason"),
    [("outbox", "database or disk is full"), ("events log", "No space left on device")],
)
def test_a_full_disk_loses_no_event_and_no_delivery(
    tmp_path: Path,
    short_clip: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
    caplog: pytest.LogCaptureFixture,
    disk: str,
    reason: str,
) -> None:
    """The outbox's or the events log's disk (a 1 MB tmpfs) fills at the first frame and
    is freed after the first vehicle's final event: the log still has every event, the
    receiver gets every one once, and the outage is one line with the reason."""
    receiver = Receiver(free_port()).start()
    try:
        with tmpfs(tmp_path / "disk", "1m") as full:
            config = make_config(
                tmp_path,
                cameras=[{"name": "gate", "source": str(short_clip.path)}],
                webhooks=[{"url": receiver.url, **FAST_RETRY}],
                outbox={
                    "database": str((full if disk == "outbox" else tmp_path) / "outbox.sqlite"),
                    "drain_timeout_s": 30,
                },
                events_log=str((full if disk == "events log" else tmp_path) / "events.jsonl"),
            )
            filler: list[Path] = []

            def fill_at_first_frame(frame: Frame) -> None:
                if not filler:
                    filler.append(fill(full))

            free = Trigger(is_final, lambda: filler[0].unlink())
            with caplog.at_level(logging.INFO):
                run_daemon(config, detector, engine, fill_at_first_frame, [free])
            events = logged_events(config)
    finally:
        receiver.stop()
    assert free.done
    assert len(events) == 4  # two vehicles, each early and final
    assert receiver.delivered == events
    (outage,) = errors(caplog)
    assert reason in outage
    assert any(" again" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert not (tmp_path / "events.jsonl.held").exists()


def test_events_the_outbox_could_not_commit_are_delivered_after_a_restart(
    tmp_path: Path,
    short_clip: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The outbox's disk stays full to the end of the run: every event is logged and kept
    beside the log; freed, the next start commits and delivers them, once."""
    receiver = Receiver(free_port()).start()
    try:
        with tmpfs(tmp_path / "disk", "1m") as full:
            config = make_config(
                tmp_path,
                cameras=[{"name": "gate", "source": str(short_clip.path)}],
                webhooks=[{"url": receiver.url, **FAST_RETRY}],
                outbox={"database": str(full / "outbox.sqlite"), "drain_timeout_s": 30},
            )
            filler: list[Path] = []

            def fill_at_first_frame(frame: Frame) -> None:
                if not filler:
                    filler.append(fill(full))

            with caplog.at_level(logging.INFO):
                run_daemon(config, detector, engine, fill_at_first_frame)
            assert len(logged_events(config)) == 4
            assert receiver.delivered == {}
            held = tmp_path / "events.jsonl.held"
            assert len(held.read_text().splitlines()) == 4
            assert any("committed at the next start" in r.getMessage() for r in caplog.records)
            filler[0].unlink()
            run_daemon(without_cameras(config), detector, engine)
    finally:
        receiver.stop()
    events = logged_events(config)
    assert len(events) == 4
    assert receiver.delivered == events
    assert not held.exists()
    assert len(errors(caplog)) == 1
    assert any("committed 4 event(s) that waited in" in r.getMessage() for r in caplog.records)


def test_an_event_queued_before_is_not_logged_again(tmp_path: Path) -> None:
    """A file read again after a crash (or an early event a damaged row made look open)
    gives an event the outbox has: it is neither queued nor logged a second time."""
    log = tmp_path / "events.jsonl"
    with closing(JsonLinesSink(log)) as lines:
        sink = OutboxSink(Outbox(OutboxConfig(database=tmp_path / "o.sqlite"), []), lines)
        event = make_event("KA01AB1234")
        sink.send(event)
        sink.send(event)
    assert logged_ids(log) == [event.event_id]
