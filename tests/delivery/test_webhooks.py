"""Webhook delivery through the durable outbox, against a real aiohttp receiver.

The daemon runs in-process on a two-vehicle clip (the second vehicle has dues), except
for the SIGKILL case, which kills and restarts the ``streamer`` command.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import Config
from streamer.delivery.outbox import Outbox
from streamer.delivery.webhooks import retry_after_seconds, sign
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest
from streamer.stores.dues import SqlDues
from streamer.vision.detect import YoloDetector

from support.daemon import (
    kill_when,
    make_config,
    restart_without_cameras,
    streamer,
    vehicles,
    without_cameras,
    write_yaml,
)
from support.factories import make_event
from support.receiver import Behaviour, Receiver, verify
from support.rtsp import free_port

FAST_RETRY = {"retry_initial_s": 0.2, "retry_max_s": 1.0}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(free_port()).start()
    yield server
    server.stop()


def config_for(
    tmp_path: Path, clip: DemoManifest, webhooks: list[dict[str, object]], **extra: object
) -> Config:
    SqlDues(tmp_path / "dues.sqlite").set(clip.vehicles[1].plate, 250, "Toll")
    settings: dict[str, object] = {
        "cameras": [{"name": "gate", "source": str(clip.path)}],
        "webhooks": webhooks,
        "outbox": {"database": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 30},
        **extra,
    }
    return make_config(tmp_path, **settings)


def run_daemon(config: Config, detector: YoloDetector, engine: OcrEngine) -> Service:
    service = Service(
        config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    )
    asyncio.run(service.run())
    return service


def logged_events(config: Config) -> dict[str, dict[str, object]]:
    """The plate events of the log by their Idempotency-Key (``<event_id>:<phase>``), after
    checking that each vehicle has one event_id, an early event and then a final one."""
    records = [json.loads(line) for line in config.events_log.read_text().splitlines()]
    assert all(e["phase"] == "final" for e in vehicles(records))
    return {f"{e['event_id']}:{e['phase']}": e for e in records if e["type"] == "plate"}


@pytest.mark.parametrize(
    ("behaviour", "webhook"),
    [
        (Behaviour(fail_first=3, fail_status=500), {}),
        (Behaviour(fail_first=2, fail_status=503, retry_after="1"), {}),
        (Behaviour(fail_first=1, fail_status=429), {}),
        (Behaviour(delay_s=2.0, slow_first=2), {"timeout_s": 0.5}),
    ],
    ids=["500-then-recovers", "503-retry-after", "429", "times-out"],
)
def test_every_event_arrives_despite_failures(
    tmp_path: Path,
    short_clip: DemoManifest,
    receiver: Receiver,
    behaviour: Behaviour,
    webhook: dict[str, object],
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    receiver.behaviour = behaviour
    config = config_for(tmp_path, short_clip, [{"url": receiver.url, **FAST_RETRY, **webhook}])
    service = run_daemon(config, detector, engine)
    events = logged_events(config)
    assert len(events) == 4  # two vehicles, each early and final
    assert receiver.delivered == events  # exactly once after dedup on Idempotency-Key
    assert len(receiver.requests) > len(events)  # failures were retried
    assert service.node.deliveries.senders[0].stats.failed_attempts >= 1
    started = min(r.at for r in receiver.requests)
    if behaviour.retry_after:  # the receiver asked for 1 s and got it
        assert receiver.requests[1].at - started >= 0.9


def test_refused_connections_until_the_receiver_starts(
    tmp_path: Path, short_clip: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> None:
    late = Receiver(free_port())
    config = config_for(tmp_path, short_clip, [{"url": late.url, **FAST_RETRY}])

    async def scenario() -> None:
        service = Service(
            config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
        )
        task = asyncio.create_task(service.run())
        await asyncio.sleep(3)  # connections are refused meanwhile
        assert not task.done()
        late.start()
        await asyncio.wait_for(task, 60)

    try:
        asyncio.run(scenario())
    finally:
        late.stop()
    assert late.delivered == logged_events(config)


def test_signature_verifies_and_dues_filter_applies(
    tmp_path: Path, short_clip: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> None:
    everything, alerts = Receiver(free_port()).start(), Receiver(free_port()).start()
    try:
        config = config_for(
            tmp_path,
            short_clip,
            [
                {"url": everything.url, "secret": "s3cret", "name": "all"},
                {"url": alerts.url, "secret": "other", "only_dues": True, "name": "alerts"},
            ],
        )
        run_daemon(config, detector, engine)
    finally:
        everything.stop()
        alerts.stop()
    events = logged_events(config)
    assert everything.delivered == events
    alerted = [(e["plate_number"], e["phase"]) for e in alerts.delivered.values()]
    assert alerted == [
        (short_clip.vehicles[1].plate, "early"),
        (short_clip.vehicles[1].plate, "final"),
    ]
    for request in everything.requests:
        assert verify("s3cret", request.headers, request.body)
        assert not verify("wrong", request.headers, request.body)
        assert not verify("s3cret", request.headers, request.body + b" ")
        event = request.event
        assert request.headers["Idempotency-Key"] == f"{event['event_id']}:{event['phase']}"
    for request in alerts.requests:
        assert verify("other", request.headers, request.body)


@pytest.mark.parametrize("mode", ["base64", "multipart"])
def test_crop_attachment(
    tmp_path: Path,
    short_clip: DemoManifest,
    receiver: Receiver,
    mode: str,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    config = config_for(
        tmp_path, short_clip, [{"url": receiver.url, "attach_crop": mode, "secret": "k"}]
    )
    run_daemon(config, detector, engine)
    assert len(receiver.requests) == 4  # two vehicles, each early and final
    for request in receiver.requests:
        jpeg = (
            base64.b64decode(request.event["crop_jpeg_base64"])
            if mode == "base64"
            else request.crop
        )
        assert jpeg is not None
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape[1] > image.shape[0]  # a plate: wider than tall
        assert verify("k", request.headers, request.body)


def test_refused_for_good_goes_to_dead_letters_and_can_be_retried(
    tmp_path: Path,
    short_clip: DemoManifest,
    receiver: Receiver,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    receiver.behaviour = Behaviour(status=422)
    config = config_for(tmp_path, short_clip, [{"url": receiver.url, "name": "crm"}])
    service = run_daemon(config, detector, engine)
    assert len(receiver.requests) == 4  # no retries of a 4xx (two vehicles, two phases)
    assert service.node.deliveries.senders[0].stats.dead == 4
    config_file = write_yaml(config, tmp_path / "streamer.yaml")
    cli = [sys.executable, "-m", "streamer", "outbox"]
    listing = subprocess.run(
        [*cli, "list", "--state", "dead", "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listing.count("dead") == 4
    assert "HTTP 422" in listing
    retried = subprocess.run(
        [*cli, "retry", "--all", "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert retried.startswith("4 deliveries pending again")
    receiver.behaviour = Behaviour(status=200)
    run_daemon(without_cameras(config), detector, engine)  # a restart delivers what is pending
    assert receiver.delivered == logged_events(config)
    purged = subprocess.run(
        [*cli, "purge", "--dead", "--config", str(config_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert purged.strip() == "purged 0 dead deliveries"


def test_dead_receiver_does_not_slow_the_events_log(
    tmp_path: Path,
    short_clip: DemoManifest,
    receiver: Receiver,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    receiver.behaviour = Behaviour(delay_s=30)  # accepts, then hangs
    config = config_for(
        tmp_path,
        short_clip,
        [{"url": receiver.url, "timeout_s": 60}],
        outbox={"database": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 0},
    )
    started = time.monotonic()
    service = run_daemon(config, detector, engine)
    assert len(logged_events(config)) == 4
    assert receiver.delivered == {}
    assert time.monotonic() - started < 25  # did not wait for the hanging receiver
    deliveries = service.node.deliveries
    assert deliveries.counts()[(deliveries.senders[0].label, "pending")] >= 1


def test_sigkill_during_delivery_loses_nothing(
    tmp_path: Path, short_clip: DemoManifest, receiver: Receiver
) -> None:
    receiver.behaviour = Behaviour(delay_s=1.5)  # each delivery takes a while
    config = config_for(tmp_path, short_clip, [{"url": receiver.url, **FAST_RETRY}])
    path = tmp_path / "streamer.yaml"
    kill_when(config, path, lambda: bool(receiver.requests))  # the first delivery is in flight
    assert len(receiver.delivered) < 4  # killed before everything went out
    receiver.behaviour = Behaviour()
    restart_without_cameras(config, path)
    events = logged_events(config)
    # Every event that was logged before the kill reached the receiver at least once;
    # deduplicated on Idempotency-Key, exactly once.
    assert events
    assert set(receiver.delivered) >= set(events)
    assert receiver.unique().keys() == events.keys()


def test_a_file_read_again_after_sigkill_keeps_its_event_ids(
    tmp_path: Path, demo_video: DemoManifest, receiver: Receiver
) -> None:
    """A daemon killed mid-file reads the file from the start again: the vehicles get the
    same event ids, so those delivered are not sent again under new ones."""
    config = config_for(tmp_path, demo_video, [{"url": receiver.url, **FAST_RETRY}])
    path = tmp_path / "streamer.yaml"
    kill_when(config, path, lambda: len(receiver.delivered) >= 2)
    before = dict(receiver.delivered)
    assert len({event["plate_number"] for event in before.values()}) < 5  # killed mid-file
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "was queued before (the same recording read again)" in result.stderr
    plates: dict[str, set[str]] = {}
    for received in receiver.requests:
        plates.setdefault(received.event["plate_number"], set()).add(received.event["event_id"])
    expected = {vehicle.plate for vehicle in demo_video.vehicles}
    assert set(plates) == expected
    assert all(len(ids) == 1 for ids in plates.values()), plates  # one id per vehicle
    # Nothing sent twice, but the one delivery the kill may have caught between the
    # receiver's 2xx and the outbox's record of it (a webhook sends one at a time).
    assert len(receiver.requests) - len(receiver.unique()) <= 1
    assert set(before) <= set(receiver.delivered)


def test_a_file_processed_again_after_its_pass_ended_is_delivered_again(
    tmp_path: Path,
    short_clip: DemoManifest,
    receiver: Receiver,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    """The same recording run twice on purpose, with the same outbox: the second pass's
    vehicles are new events (the pass number is in their ids), and they are delivered."""
    config = config_for(tmp_path, short_clip, [{"url": receiver.url, **FAST_RETRY}])
    run_daemon(config, detector, engine)
    first = dict(receiver.delivered)
    run_daemon(config, detector, engine)
    second = {key: event for key, event in receiver.delivered.items() if key not in first}
    plates = sorted(str(event["plate_number"]) for event in first.values())
    assert plates == sorted(str(event["plate_number"]) for event in second.values())
    assert {v.plate for v in short_clip.vehicles} <= set(plates)
    assert not {e["event_id"] for e in first.values()} & {e["event_id"] for e in second.values()}
    assert len(logged_events(config)) == len(first) + len(second)


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


def test_an_unreadable_outbox_row_is_dead_lettered_and_the_others_delivered(
    tmp_path: Path,
    receiver: Receiver,
    detector: YoloDetector,
    engine: OcrEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The oldest of 20 pending deliveries has a payload that is not JSON (a damaged or
    hand-edited row): it goes to the dead letters in one line, the 19 others arrive, and
    ``streamer outbox list`` shows it."""
    config = make_config(
        tmp_path,
        webhooks=[{"url": receiver.url, "name": "crm", **FAST_RETRY}],
        outbox={"database": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 30},
    )
    outbox = Outbox(config.outbox, config.delivery_targets)
    events = [make_event(f"KA01AB{number:04d}") for number in range(20)]
    for event in events:
        outbox.add(event, logged=True)
    outbox.close()
    with sqlite3.connect(config.outbox.database) as connection:
        connection.execute(
            "UPDATE events SET payload = '{\"type\": pl' WHERE key = ?", (events[0].key,)
        )
    connection.close()
    with caplog.at_level(logging.INFO):
        run_daemon(without_cameras(config), detector, engine)
    assert set(receiver.delivered) == {event.key for event in events[1:]}
    (line,) = [r.getMessage() for r in caplog.records if events[0].key in r.getMessage()]
    assert "payload is not JSON" in line
    assert "moved to the dead letters" in line
    assert not [r for r in caplog.records if r.exc_info]
    listing = streamer(
        "outbox", "list", "--state", "dead", "--config", write_yaml(config, tmp_path / "s.yaml")
    )
    assert listing.returncode == 0, listing.stderr
    (dead,) = listing.stdout.splitlines()
    assert events[0].key in dead
    assert "payload is not JSON" in dead
