"""One camera end to end: the speed settings (detection rate, motion gate, region), each
camera's own engine, and alerts while the vehicle is still there (early events, standing
plates, restarts) with the real detector and OCR, generated clips, a real webhook
receiver, a real RTSP server, and the ``streamer`` command for the SIGKILL case."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamer.cameras import CameraStats
from streamer.config import CameraConfig, Config, DetectionConfig
from streamer.node import ServiceOptions
from streamer.pipeline import CameraPipeline, Stages
from streamer.reading.engines import EnginePool
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.sources.frame import Frame
from streamer.stores.checks import PlateChecks
from streamer.stores.dues import SqlDues
from streamer.vision.detect import Detector, YoloDetector

from support.daemon import frame_at, kill_when, make_config, restart_without_cameras, vehicles
from support.receiver import Receiver
from support.rtsp import RtspServer, free_port


def replay(
    tmp_path: Path,
    video: Path,
    detector: Detector,
    engine: OcrEngine,
    **detection: object,
) -> CameraStats:
    config = make_config(
        tmp_path,
        cameras=[{"name": "cam", "source": str(video)}],
        detection=detection,
    )
    service = Service(
        config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    )
    return asyncio.run(service.run())["cam"]


def test_rate_and_motion_gate_read_the_same_plates_from_a_fraction_of_the_frames(
    tmp_path: Path, short_clip: DemoManifest, detector: Detector, engine: OcrEngine
) -> None:
    every = replay(
        tmp_path / "every", short_clip.path, detector, engine, rate_fps=0, motion_gate=False
    )
    gated = replay(tmp_path / "gated", short_clip.path, detector, engine)
    plates = sorted(v.plate for v in short_clip.vehicles)
    assert sorted(e.plate_number for e in every.events_list) == plates
    assert sorted(e.plate_number for e in gated.events_list) == plates
    assert every.frames == gated.frames == short_clip.frame_count
    assert every.detected == short_clip.frame_count
    seconds = short_clip.frame_count / short_clip.fps
    # rate_fps frames a second are examined; the empty road between vehicles is still.
    rate = DetectionConfig().rate_fps
    assert gated.detected + gated.still == pytest.approx(seconds * rate, abs=1)
    assert gated.still >= 4


def test_region_of_interest_limits_detection(
    tmp_path: Path, short_clip: DemoManifest, detector: Detector, engine: OcrEngine
) -> None:
    sky = replay(tmp_path / "sky", short_clip.path, detector, engine, roi=[0, 0, 1, 0.15])
    assert sky.events == 0
    road = replay(tmp_path / "road", short_clip.path, detector, engine, roi=[0, 0.3, 1, 1])
    assert sorted(e.plate_number for e in road.events_list) == sorted(
        v.plate for v in short_clip.vehicles
    )


def test_region_boxes_come_back_in_frame_coordinates(
    tmp_path: Path, short_clip: DemoManifest, detector: Detector, engine: OcrEngine
) -> None:
    first, last = short_clip.appearances[0]
    image = frame_at(short_clip.path, (first + last) / 2)
    frame = Frame("cam", 0, image, datetime.now(UTC), 0.0)
    stages = Stages(
        detector, EnginePool(engine), PlateChecks(SqlDues(tmp_path / "dues.sqlite")), [], None
    )

    def boxes(**detection: object) -> np.ndarray:
        camera = CameraConfig(name="cam", source="x.mp4", detection=DetectionConfig(**detection))
        detections = CameraPipeline(camera, stages).detect(frame)
        assert len(detections) == 1
        return detections.xyxy[0]

    whole = boxes()
    assert whole[1] > 0.3 * image.shape[0]  # the plate is inside the region below
    # The region is scaled differently for the detector, so the box moves a few pixels;
    # left in region coordinates it would be 0.3 x 720 = 216 pixels off.
    assert np.allclose(boxes(roi=(0, 0.3, 1, 1)), whole, atol=12)


def test_each_camera_reads_with_its_own_engine(tmp_path: Path, detector: Detector) -> None:
    config = make_config(
        tmp_path,
        cameras=[
            {"name": "fused", "source": str(tmp_path / "a.mp4")},
            {"name": "tess", "source": str(tmp_path / "b.mp4"), "reader": {"engine": "tesseract"}},
            {"name": "also-fused", "source": str(tmp_path / "c.mp4")},
            {"name": "paddle", "source": str(tmp_path / "d.mp4"), "reader": {"engine": "paddle"}},
            {"name": "vietnam", "source": str(tmp_path / "e.mp4"), "plates": {"formats": ["vn"]}},
        ],
    )
    service = Service(config, ServiceOptions(install_signal_handlers=False, detector=detector))
    stats = asyncio.run(service.run())
    assert all("no such file" in (s.error or "") for s in stats.values())
    engines = {p.camera.name: p.reporter.reader.engine for p in service.node.cameras.running}
    assert engines["fused"].name == "fused"
    assert engines["tess"].name in {"tesserocr", "pytesseract"}
    assert engines["paddle"].name == "paddle"
    assert engines["also-fused"] is engines["fused"]  # built once, shared
    # The fused engine weighs reads by a camera's formats: one per set of formats, over
    # the one PP-OCRv4 that the paddle camera uses too.
    assert engines["vietnam"] is not engines["fused"]
    assert engines["vietnam"].paddle is engines["paddle"] is engines["fused"].paddle


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


@pytest.fixture(scope="module")
def appearing_clip(tmp_path_factory: pytest.TempPathFactory, standing_clip: DemoManifest) -> Path:
    """An empty scene for 2 s, then the car standing at the barrier from one frame to the
    next, for 20 s: what a live stream shows after it froze for a few seconds (below the
    watchdog) while a car drove up, or after an infrared switch."""
    import cv2

    path = tmp_path_factory.mktemp("appearing") / "appearing.mp4"
    empty = frame_at(standing_clip.path, standing_clip.appearances[0][1] + 0.6)
    car = frame_at(standing_clip.path, 1.0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (1280, 720))
    for index in range(22 * 25):
        writer.write(empty if index < 2 * 25 else car)
    writer.release()
    return path


def test_a_car_that_appears_between_two_frames_and_stands_is_read_while_it_stands(
    tmp_path: Path, appearing_clip: Path, detector: YoloDetector, engine: OcrEngine
) -> None:
    config = make_config(tmp_path, cameras=[{"name": "gate", "source": str(appearing_clip)}])
    stats = run(config, detector, engine).node.cameras.running[0].stats
    records = read_log(config)
    (vehicle,) = vehicles(records)
    assert vehicle["plate_number"] == CAR.plate
    (early,) = [r for r in records if r["type"] == "plate" and r["phase"] == "early"]
    assert early["plate_number"] == CAR.plate
    # Early: the crop it was read from is from the car's first seconds (it appears at
    # 2 s), and the event came within max_event_delay_s of the first sighting.
    assert 2.0 <= float(early["media_time_s"]) <= 5.0
    seen, reported = (datetime.fromisoformat(str(early[k])) for k in ("first_seen", "last_seen"))
    assert (reported - seen).total_seconds() <= 3.5
    assert stats.detected < 0.2 * stats.frames  # and not by detecting every frame
