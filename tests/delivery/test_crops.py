"""The evidence images on MQTT: each plate event's crops, published before it on a real
Mosquitto, cleared when the event has none to show, and bounded."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.delivery.crops import CROPS, MAX_IMAGE_BYTES
from streamer.delivery.queue import DeliveryState
from streamer.events import Phase

from support.daemon import MqttSenderThread, make_config
from support.factories import make_event
from support.mosquitto import Broker, Received, Subscriber, mosquitto_missing

PLATE, PLATE_CROP = "streamer/gate/plate", "streamer/gate/plate_crop"
VEHICLE_CROP = "streamer/gate/vehicle_crop"
CAMERAS = [{"name": "gate", "source": "gate.mp4"}]


def jpeg(path: Path, seed: int, size: tuple[int, int] = (40, 160)) -> bytes:
    """A JPEG of noise (it compresses badly: large for its size) written to ``path``."""
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path.write_bytes(data.tobytes())
    return data.tobytes()


def held_at_each_plate(messages: list[Received], topic: str) -> list[bytes | None]:
    """What ``topic`` held (its last message) when each plate event arrived."""
    held: bytes | None = None
    seen = []
    for message in messages:
        if message.topic == topic:
            held = message.payload
        elif message.topic == PLATE:
            seen.append(held)
    return seen


def test_each_crop_is_found_where_the_event_names_it() -> None:
    plate, vehicle = CROPS
    record = {"crop_path": "/e/1-crop.jpg", "vehicle_crop_path": "/e/1-vehicle.jpg"}
    assert plate.path(record) == "/e/1-crop.jpg"
    assert vehicle.path(record) == "/e/1-vehicle.jpg"
    assert plate.path({"crop_path": None}) is None
    assert vehicle.path({}) is None


def test_the_crops_go_before_their_event(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A car's crops go just before its early event, not again with its final event when
    unchanged; one too large is scaled down; a car whose crop is gone (retention), is not
    an image, or was not saved clears the image, so that none stands for another car's."""
    config = make_config(tmp_path, cameras=CAMERAS, mqtt={"url": broker.url, "timeout_s": 3})
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    first = jpeg(evidence / "1-crop.jpg", 1)
    vehicle = jpeg(evidence / "1-vehicle.jpg", 2, (200, 300))
    assert len(jpeg(evidence / "3-vehicle.jpg", 3, (1500, 2000))) > MAX_IMAGE_BYTES
    (evidence / "4-crop.jpg").write_bytes(bytes(MAX_IMAGE_BYTES + 1))  # not a JPEG
    early = replace(
        make_event("KA01AB1234", phase=Phase.EARLY, crop_path=str(evidence / "1-crop.jpg")),
        vehicle_crop_path=str(evidence / "1-vehicle.jpg"),
    )  # an event that names its vehicle's crop too
    events = [
        early,
        replace(early, phase=Phase.FINAL),
        make_event("MH12XY7395", crop_path=str(evidence / "gone-crop.jpg")),  # removed
        replace(
            make_event("TN09BC5678", crop_path=str(evidence / "4-crop.jpg")),
            vehicle_crop_path=str(evidence / "3-vehicle.jpg"),
        ),
        make_event("DL3CAF0001"),  # none saved (recordings.save_crops: false)
    ]
    caplog.set_level(logging.WARNING, "streamer")
    with Subscriber(broker) as subscriber, MqttSenderThread(config) as daemon:
        daemon.add(events)
        subscriber.wait_for(lambda m: len([x for x in m if x.topic == PLATE]) == len(events))
    messages = subscriber.messages()
    assert held_at_each_plate(messages, PLATE_CROP) == [first, first, b"", b"", b""]
    vehicles = held_at_each_plate(messages, VEHICLE_CROP)
    assert vehicles[:3] == [vehicle, vehicle, b""]
    assert vehicles[4] == b""
    assert [m.payload for m in messages if m.topic == PLATE_CROP] == [first, b""]  # on changes
    assert {m.qos for m in messages} == {1}
    assert PLATE_CROP not in subscriber.retained()  # cleared: no picture of another car
    # The vehicle filling a 4K frame, scaled down to fit.
    assert len(vehicles[3]) <= MAX_IMAGE_BYTES
    shrunk = cv2.imdecode(np.frombuffer(vehicles[3], np.uint8), cv2.IMREAD_COLOR)
    assert shrunk is not None
    assert max(shrunk.shape[:2]) <= 1280
    assert shrunk.shape[1] / shrunk.shape[0] == pytest.approx(2000 / 1500, rel=0.01)
    (warning,) = [r.getMessage() for r in caplog.records if "JPEG" in r.getMessage()]
    assert warning == (
        f"mqtt: {evidence / '4-crop.jpg'} is not a JPEG image of at most 32 MB: its plate crop "
        "is not published (Home Assistant shows none; said once)"
    )


def test_a_crop_the_broker_refuses_is_cleared_and_the_event_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto with ``max_packet_size`` below a crop's size: the crop is not sent, the
    image is cleared, and the event is delivered (not a dead letter)."""
    if reason := mosquitto_missing():
        pytest.skip(reason)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    small = jpeg(evidence / "1-crop.jpg", 1)
    large = jpeg(evidence / "2-crop.jpg", 2, (200, 300))
    assert len(small) < 10_000 < len(large)
    events = [
        make_event("KA01AB1234", crop_path=str(evidence / "1-crop.jpg")),
        make_event("MH12XY7395", crop_path=str(evidence / "2-crop.jpg")),
    ]
    with Broker(tmp_path / "broker", settings=["max_packet_size 10000"]) as broker:
        config = make_config(tmp_path, cameras=CAMERAS, mqtt={"url": broker.url, "timeout_s": 3})
        with Subscriber(broker) as subscriber, caplog.at_level(logging.WARNING, "streamer"):
            with MqttSenderThread(config) as daemon:
                daemon.add(events)
                subscriber.wait_for(lambda m: len([x for x in m if x.topic == PLATE]) == 2)
            assert held_at_each_plate(subscriber.messages(), PLATE_CROP) == [small, b""]
    assert [d.state for d in daemon.outbox.list()] == [DeliveryState.DELIVERED] * 2
    (warning,) = [r.getMessage() for r in caplog.records if PLATE_CROP in r.getMessage()]
    assert "above the broker's limit of 10,000 bytes" in warning
    assert warning.endswith("the event goes without this image")
