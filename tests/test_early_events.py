"""Alerts while the vehicle is still there: early events, stationary plates, restarts.

End to end with the real detector and OCR, generated clips, a real webhook receiver, a
real RTSP server, and the ``streamer`` command for the SIGKILL case.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from receiver import Receiver
from rtsp import RtspServer, free_port

from streamer.config import Config
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.vision.detect import YoloDetector

from conftest import kill_when, make_config, restart_without_cameras, vehicles

#: The car of these clips; its plate has dues, so an alert is due while it waits.
CAR = DemoVehicle("MH12XY7395", 1500.0, "Unpaid parking charges")
#: It drives up for about two seconds, then waits at the barrier.
APPROACH_S, STOP_S = 3.0, 20.0


@pytest.fixture(scope="module")
def barrier_clip(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """A car drives up to the barrier, waits 20 s, and drives off."""
    path = tmp_path_factory.mktemp("barrier") / "barrier.mp4"
    return render_video(
        path, (CAR,), seconds_per_vehicle=APPROACH_S, stop_seconds=STOP_S, gap_seconds=1.0, seed=3
    )


@pytest.fixture(scope="module")
def standing_clip(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """The same car already waiting at the barrier in the first frame, for 8 s; then it
    drives off."""
    path = tmp_path_factory.mktemp("standing") / "standing.mp4"
    at_barrier = 1.0 + APPROACH_S  # past the approach: standing still
    return render_video(
        path,
        (CAR,),
        seconds_per_vehicle=APPROACH_S,
        stop_seconds=10.0,
        gap_seconds=1.0,
        seed=3,
        start_seconds=at_barrier,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(free_port()).start()
    yield server
    server.stop()


def read_log(config: Config) -> list[dict[str, object]]:
    log = config.events_log
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def logged(config: Config, kind: str, key: str) -> list[object]:
    """``key`` of each logged event of type ``kind``, in order."""
    return [record[key] for record in read_log(config) if record["type"] == kind]


def run(config: Config, detector: YoloDetector, engine: OcrEngine) -> Service:
    service = Service(
        config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    )
    asyncio.run(service.run())
    return service


def test_the_alert_reaches_the_receiver_while_the_car_waits(
    tmp_path: Path,
    barrier_clip: DemoManifest,
    receiver: Receiver,
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    config = make_config(
        tmp_path,
        cameras=[{"name": "gate", "source": str(barrier_clip.path), "realtime": True}],
        webhooks=[{"url": receiver.url, "only_dues": True}],
    )
    from streamer.stores.dues import SqlDues

    SqlDues(config.dues.database).set(CAR.plate, CAR.dues_amount, CAR.dues_message)
    started = time.time()
    run(config, detector, engine)
    (_, last) = barrier_clip.appearances[0]
    leaves = started + last  # no earlier than this, in the receiver's clock
    arrivals = {r.event["phase"]: r for r in receiver.requests}
    assert set(arrivals) == {"early", "final"}
    early, final = arrivals["early"], arrivals["final"]
    assert early.event["event_id"] == final.event["event_id"]
    assert early.event["plate_number"] == final.event["plate_number"] == CAR.plate
    assert early.event["dues_result"]["dues_pending"]
    assert early.at < leaves - STOP_S / 2  # well before the car left
    assert final.at > leaves
    assert early.headers["Idempotency-Key"] == f"{early.event['event_id']}:early"
    (vehicle,) = vehicles(read_log(config))  # one vehicle, one event_id, though it waited
    assert vehicle["plate_number"] == CAR.plate


def test_a_car_standing_in_view_when_the_camera_starts_is_read(
    tmp_path: Path, standing_clip: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> None:
    config = make_config(tmp_path, cameras=[{"name": "gate", "source": str(standing_clip.path)}])
    stats = run(config, detector, engine).node.cameras.running[0].stats
    (vehicle,) = vehicles(read_log(config))
    assert vehicle["plate_number"] == CAR.plate
    assert stats.events == 1


def test_a_standing_car_gives_one_event_across_a_reconnection(
    tmp_path: Path,
    server_factory: Callable[..., RtspServer],
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    port = free_port()
    # The car standing at the barrier for 30 s, served in a loop: it never leaves.
    still = render_video(
        tmp_path / "still.mp4",
        (CAR,),
        seconds_per_vehicle=APPROACH_S,
        stop_seconds=30.0,
        gap_seconds=1.0,
        seed=3,
        start_seconds=1.0 + APPROACH_S,
    )
    server = server_factory(still.path, port=port, loop=True)
    fast = {"open_timeout_s": 3, "watchdog_s": 2, "reconnect_initial_s": 0.3, "reconnect_max_s": 1}
    config = make_config(tmp_path, cameras=[{"name": "gate", "source": server.url, "live": fast}])

    async def scenario() -> list[dict[str, object]]:
        service = Service(
            config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
        )
        task = asyncio.create_task(service.run())

        async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                assert not task.done(), f"daemon ended before {what}"
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await asyncio.sleep(0.1)

        await until(lambda: "early" in logged(config, "plate", "phase"), "the early event")
        server.kill()
        # Offline: the vehicle's track ends with its final event.
        await until(lambda: "final" in logged(config, "plate", "phase"), "the final event")
        server.start()
        await until(
            lambda: logged(config, "camera_status", "status")[-2:] == ["reconnecting", "online"],
            "back online",
        )
        # Back online, the standing car is detected and read again: a repeat, merged.
        await until(
            lambda: service.node.cameras.running[0].stats.merged >= 1, "the repeat merged", 20
        )
        service.request_stop()
        await task
        return read_log(config)

    records = asyncio.run(scenario())
    (vehicle,) = vehicles(records)
    assert vehicle["plate_number"] == CAR.plate


def test_a_final_event_follows_its_early_one_across_a_sigkill(
    tmp_path: Path, barrier_clip: DemoManifest, receiver: Receiver
) -> None:
    config = make_config(
        tmp_path,
        cameras=[{"name": "gate", "source": str(barrier_clip.path), "realtime": True}],
        webhooks=[{"url": receiver.url, "retry_initial_s": 0.2, "retry_max_s": 1.0}],
    )
    path = tmp_path / "streamer.yaml"
    kill_when(config, path, lambda: bool(receiver.delivered))  # the early event; the car waits
    (early,) = receiver.delivered.values()
    assert early["phase"] == "early"
    restart_without_cameras(config, path)
    final = receiver.delivered[f"{early['event_id']}:final"]
    assert final["plate_number"] == early["plate_number"] == CAR.plate
    (vehicle,) = vehicles(read_log(config))
    assert vehicle["event_id"] == early["event_id"]
