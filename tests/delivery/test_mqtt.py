"""MQTT output against a real broker (Debian's Mosquitto) and a real subscriber.

The daemon runs in-process on the demo recording or the two-vehicle clip, except for the
last will, which needs a ``streamer run`` killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer.config import Config
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox
from streamer.events import Event, PlateEvent
from streamer.node import ServiceOptions, StartupError
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest, seed_demo_dues
from streamer.stores.dues import SqlDues
from streamer.vision.detect import YoloDetector

from support.daemon import Clock, kill_when, make_config, vehicles, without_cameras
from support.factories import make_event
from support.mosquitto import Broker, Received, Subscriber, mosquitto_missing

USER, PASSWORD = "streamer", "s3cret:p@ss"
#: Reconnection in tests: fast, so an outage ends in seconds.
FAST = {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, "timeout_s": 3}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto that takes only :data:`USER` with :data:`PASSWORD`."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    with Broker(tmp_path / "broker", users={USER: PASSWORD}) as running:
        yield running


def config_for(
    tmp_path: Path, cameras: list[dict[str, Any]], mqtt: dict[str, Any], **extra: object
) -> Config:
    outbox = {"database": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 30}
    settings: dict[str, Any] = {"cameras": cameras, "mqtt": {**FAST, **mqtt}, "outbox": outbox}
    return make_config(tmp_path, **{**settings, **extra})


def run_daemon(config: Config, detector: YoloDetector, engine: OcrEngine, *sinks: Any) -> Service:
    options = ServiceOptions(
        install_signal_handlers=False, detector=detector, engine=engine, extra_sinks=sinks
    )
    service = Service(config, options)
    asyncio.run(service.run())
    return service


def log_lines(config: Config) -> list[str]:
    """The plate events of the events log, as written."""
    lines = config.events_log.read_text().splitlines()
    return [line for line in lines if json.loads(line)["type"] == "plate"]


def first_of_each(messages: list[Received]) -> list[str]:
    """The payloads in order of arrival, each once (a message may come twice after an
    outage: the broker had it, its acknowledgement was lost)."""
    seen: set[str] = set()
    return [m.text for m in messages if not (m.text in seen or seen.add(m.text))]


def test_the_demo_recording_on_the_broker(
    tmp_path: Path,
    secured: Broker,
    demo_video: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_demo_dues(SqlDues(tmp_path / "dues.sqlite"))
    monkeypatch.setenv("MQTT_PASSWORD", PASSWORD)
    mqtt = {"url": secured.url, "username": USER, "password": "${MQTT_PASSWORD}"}
    config = config_for(tmp_path, [{"name": "gate-1", "source": str(demo_video.path)}], mqtt)
    clock, crops = Clock(), Crops()
    with Subscriber(secured, user=(USER, PASSWORD)) as subscriber:
        run_daemon(config, detector, engine, clock, crops)
        subscriber.wait_for(lambda m: bool(m) and m[-1].text == "offline")
    messages = subscriber.messages()
    assert {m.qos for m in messages} == {1}  # all published with QoS 1
    # Each plate event, early and final, exactly as the events log has it, in its order.
    plates = subscriber.messages("streamer/gate-1/plate")
    assert [m.text for m in plates] == log_lines(config)
    assert len(vehicles(json.loads(m.text) for m in plates)) == 5
    counts = [m.text for m in subscriber.messages("streamer/gate-1/plates_today")]
    assert counts == ["0", "1", "2", "3", "4", "5"]
    statuses = [json.loads(m.text)["status"] for m in subscriber.messages("streamer/gate-1/status")]
    assert statuses[-1] == "finished"
    availability = [m.text for m in subscriber.messages("streamer/availability")]
    assert availability == ["online", "offline"]  # a clean stop says offline itself
    # What the broker keeps for a subscriber that comes later.
    retained = subscriber.retained()
    assert retained["streamer/gate-1/last_plate"].text == log_lines(config)[-1]
    assert json.loads(retained["streamer/gate-1/status"].text)["status"] == "finished"
    assert retained["streamer/gate-1/plates_today"].text == "5"
    assert retained["streamer/availability"].text == "offline"
    discovery = {t: json.loads(m.text) for t, m in retained.items() if t.startswith("homeass")}
    assert sorted(discovery) == [
        "homeassistant/binary_sensor/streamer_gate-1/dues_pending/config",
        "homeassistant/binary_sensor/streamer_gate-1/online/config",
        "homeassistant/image/streamer_gate-1/plate_crop/config",
        "homeassistant/image/streamer_gate-1/vehicle_crop/config",
        "homeassistant/sensor/streamer_gate-1/last_plate/config",
        "homeassistant/sensor/streamer_gate-1/plates_today/config",
    ]
    # Each plate event's crop, as the evidence writer saved it, is on the image topic when
    # the event arrives (a final event's only when it differs from its early event's).
    held, pictures = b"", []
    for message in messages:
        if message.topic == "streamer/gate-1/plate_crop":
            held = message.payload
        elif message.topic == "streamer/gate-1/plate":
            pictures.append(held)
    assert pictures == [crops.saved[_key(m)] for m in plates]
    assert all(picture.startswith(b"\xff\xd8") for picture in pictures)  # JPEG
    assert retained["streamer/gate-1/plate_crop"].payload == pictures[-1]
    sizes = sorted(len(picture) for picture in pictures)
    logging.getLogger(__name__).info("plate crops: %d to %d bytes", sizes[0], sizes[-1])
    # From the event's line in the log to the subscriber (the sender is woken before the
    # line is written, so a message can even come first).
    latencies = [m.at - clock.logged[_key(m)] for m in plates]
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]
    logging.getLogger(__name__).info("log to subscriber: p50 %.4f s, p95 %.4f s", p50, p95)
    assert p95 < 1.0


class Crops:
    """A sink after the events log: the bytes of each event's crop as it was logged."""

    def __init__(self) -> None:
        self.saved: dict[str, bytes] = {}

    def send(self, event: Event) -> None:
        if isinstance(event, PlateEvent) and event.crop_path is not None:
            self.saved[event.key] = Path(event.crop_path).read_bytes()


def _key(message: Received) -> str:
    event = json.loads(message.text)
    return f"{event['event_id']}:{event['phase']}"


def test_wrong_credentials_stop_the_start_in_one_line(
    tmp_path: Path, secured: Broker, detector: YoloDetector, engine: OcrEngine
) -> None:
    mqtt = {"url": secured.url, "username": USER, "password": "wrong-secret"}
    config = config_for(tmp_path, [{"name": "gate", "source": "unused.mp4"}], mqtt)
    with pytest.raises(StartupError) as error:
        run_daemon(config, detector, engine)
    message = str(error.value)
    assert message.startswith(
        f"mqtt: the broker at mqtt://{USER}:***@127.0.0.1:{secured.port} refused the connection"
    )
    assert "\n" not in message
    assert "wrong-secret" not in message


def test_events_wait_in_the_outbox_for_a_broker_that_is_down(
    tmp_path: Path,
    short_clip: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker is down when the daemon starts: one error line at start, the events wait
    in the outbox, and the next start (with the broker up) publishes them, in order."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    later = Broker(tmp_path / "broker")  # its port is chosen, nothing listens yet
    cameras = [{"name": "gate", "source": str(short_clip.path)}]
    config = config_for(
        tmp_path,
        cameras,
        {"url": later.url},
        outbox={"database": str(tmp_path / "outbox.sqlite"), "drain_timeout_s": 0.5},
    )
    with caplog.at_level(logging.INFO, logger="streamer"):
        run_daemon(config, detector, engine)
    (error,) = [r for r in caplog.records if "cannot reach the broker" in r.getMessage()]
    assert error.levelno == logging.ERROR
    assert error.getMessage().startswith(f"mqtt: cannot reach the broker at {later.url} (")
    assert "\n" not in error.getMessage()
    outbox = Outbox(config.outbox, config.delivery_targets)
    first_event = min(d.created_at for d in outbox.list())
    assert error.created < first_event  # at start, not at the first event
    assert len(log_lines(config)) == 4
    with later, Subscriber(later) as subscriber:
        run_daemon(without_cameras(config), detector, engine)
        subscriber.wait_for(lambda m: bool(m) and m[-1].text == "offline")
    assert [m.text for m in subscriber.messages("streamer/gate/plate")] == log_lines(config)


def test_a_broker_outage_loses_nothing_and_keeps_each_cameras_order(
    tmp_path: Path, demo_video: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> None:
    """The broker is stopped for 20 s while two cameras read the demo in real time; a
    subscriber with a persistent session (on a broker that keeps it) sees every event."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    cameras = [
        {"name": name, "source": str(demo_video.path), "realtime": True}
        for name in ("gate-1", "gate-2")
    ]
    broker = Broker(tmp_path / "broker", persistent=True).start()
    config = config_for(tmp_path, cameras, {"url": broker.url})
    clock = Clock()
    options = ServiceOptions(
        install_signal_handlers=False, detector=detector, engine=engine, extra_sinks=[clock]
    )
    daemon = threading.Thread(target=asyncio.run, args=(Service(config, options).run(),))
    try:
        with Subscriber(broker, "streamer/+/plate", persistent=True, client_id="sub") as sub:
            daemon.start()
            sub.wait_for(bool)  # the first plate event is through
            broker.stop()
            stopped = time.time()
            time.sleep(20)
            broker.start()
            restarted = time.time()
            daemon.join(120)
            assert not daemon.is_alive()
            logged = log_lines(config)
            sub.wait_for(lambda m: len(first_of_each(m)) >= len(logged))
    finally:
        broker.stop()
    # Logged well inside the outage (an event committed as the broker stopped may have
    # been published before it was logged).
    during = {key for key, at in clock.logged.items() if stopped + 1 < at < restarted}
    assert len(during) >= 4, "too few events came while the broker was down"
    arrived: dict[str, float] = {}
    for message in sub.messages():
        arrived.setdefault(_key(message), message.at)
    assert all(arrived[key] > restarted for key in during)
    for camera in ("gate-1", "gate-2"):
        expected = [line for line in logged if json.loads(line)["camera"] == camera]
        received = first_of_each(sub.messages(f"streamer/{camera}/plate"))
        assert received == expected  # nothing lost, none out of order
        assert len(vehicles(json.loads(line) for line in expected)) == 5


def test_offline_is_the_last_will_when_the_daemon_is_killed(
    tmp_path: Path, broker: Broker, short_clip: DemoManifest
) -> None:
    cameras = [{"name": "gate", "source": str(short_clip.path), "realtime": True}]
    config = config_for(tmp_path, cameras, {"url": broker.url})
    with Subscriber(broker, "streamer/availability") as subscriber:
        kill_when(
            config,
            tmp_path / "streamer.yaml",
            lambda: [m.text for m in subscriber.messages()] == ["online"],
        )
        killed = time.time()
        subscriber.wait_for(lambda m: bool(m) and m[-1].text == "offline", timeout=10)
    (_, offline) = subscriber.messages()
    assert offline.at - killed < 2  # the broker saw the connection drop at once
    assert subscriber.retained()["streamer/availability"].text == "offline"


def test_tls_with_a_private_certificate(
    tmp_path: Path, detector: YoloDetector, engine: OcrEngine
) -> None:
    if reason := mosquitto_missing():
        pytest.skip(reason)
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test certificate)")
    certificate, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(certificate), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    with Broker(tmp_path / "broker", tls=(certificate, key)) as broker:
        mqtt = {"url": broker.tls_url, "tls": {"ca_file": str(certificate)}}
        config = config_for(tmp_path, [{"name": "gate", "source": "unused.mp4"}], mqtt)
        with Subscriber(broker, "streamer/availability") as subscriber:
            run_daemon(without_cameras(config), detector, engine)
            subscriber.wait_for(lambda m: [x.text for x in m] == ["online", "offline"])


def test_a_restart_takes_the_count_of_the_day_from_the_outbox(
    tmp_path: Path, broker: Broker
) -> None:
    config = config_for(tmp_path, [{"name": "gate", "source": "gate.mp4"}], {"url": broker.url})
    assert config.mqtt is not None
    outbox = Outbox(config.outbox, config.delivery_targets)
    for plate in ("KA01AB1234", "MH12XY7395"):
        outbox.add(make_event(plate))

    async def connect_once() -> None:
        assert config.mqtt is not None
        sender = MqttSender(config.mqtt, outbox, config.cameras)
        task = asyncio.create_task(sender.run())
        await sender.first_attempt()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with Subscriber(broker, "streamer/gate/plates_today") as subscriber:
        asyncio.run(connect_once())
        subscriber.wait_for(lambda m: [x.text for x in m] == ["2"], timeout=5)
