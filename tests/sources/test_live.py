"""Live cameras against a real RTSP server (GStreamer's, run by Debian's python3).

Each case runs the daemon in-process with the real detector and Tesseract, except the
SIGTERM case, which runs the ``streamer`` command and signals it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from streamer.cameras import CameraStats
from streamer.config import Config
from streamer.node import ServiceOptions
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest, DemoVehicle, render_video
from streamer.vision.detect import YoloDetector

from support.daemon import make_config, vehicles
from support.rtsp import RtspServer, free_port

#: Fast reconnection for tests; the defaults suit real cameras.
FAST_LIVE = {
    "open_timeout_s": 3,
    "watchdog_s": 2,
    "reconnect_initial_s": 0.3,
    "reconnect_max_s": 1.0,
    "reconnect_jitter": 0.2,
}


@pytest.fixture(scope="module")
def second_clip(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """Two other vehicles, served after a restart."""
    vehicles = (DemoVehicle("KL07CD9012", 0.0, ""), DemoVehicle("AP28EF3456", 0.0, ""))
    return render_video(
        tmp_path_factory.mktemp("clip2") / "clip2.mp4",
        vehicles,
        seconds_per_vehicle=2.5,
        gap_seconds=0.8,
        seed=11,
    )


class Daemon:
    """The service running in the test's event loop, with helpers to wait on it."""

    def __init__(self, config: Config, detector: YoloDetector, engine: OcrEngine) -> None:
        options = ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
        self.service = Service(config, options)
        self.log = config.events_log
        self.task: asyncio.Task[dict[str, CameraStats]] | None = None

    async def __aenter__(self) -> Daemon:
        self.task = asyncio.create_task(self.service.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> dict[str, CameraStats]:
        assert self.task is not None
        if not self.task.done() and not self.service.stopping:
            self.service.request_stop()
        return await asyncio.wait_for(self.task, timeout=30)

    def records(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def plates(self, camera: str) -> list[object]:
        """The plates of the vehicles whose final events are in the log."""
        finals = [r for r in self.records() if r.get("phase") == "final"]
        return [r["plate_number"] for r in vehicles(finals) if r["camera"] == camera]

    def statuses(self, camera: str) -> list[tuple[object, object]]:
        return [
            (r["status"], r["reason"])
            for r in self.records()
            if r["type"] == "camera_status" and r["camera"] == camera
        ]

    async def until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.task is not None
            if self.task.done():
                self.task.result()
                pytest.fail(f"daemon ended before {what}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout} s waiting for {what}; log: {self.records()}"
                )
            await asyncio.sleep(0.1)


def live_camera(name: str, source: str, **extra: object) -> dict[str, object]:
    return {"name": name, "source": source, "live": FAST_LIVE, **extra}


def test_events_arrive_for_plates_shown_over_rtsp(
    tmp_path: Path,
    short_clip: DemoManifest,
    server_factory: Callable[..., RtspServer],
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    server = server_factory(short_clip.path)
    config = make_config(tmp_path, cameras=[live_camera("gate", server.url)])
    expected = [v.plate for v in short_clip.vehicles]

    async def scenario() -> None:
        async with Daemon(config, detector, engine) as daemon:
            await daemon.until(lambda: daemon.plates("gate") == expected, 60, "both plates")
            assert daemon.statuses("gate")[0] == ("online", None)

    asyncio.run(scenario())


def test_server_restart_reconnects_and_later_plates_arrive(
    tmp_path: Path,
    short_clip: DemoManifest,
    second_clip: DemoManifest,
    server_factory: Callable[..., RtspServer],
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    port = free_port()
    first = server_factory(short_clip.path, port=port)
    config = make_config(tmp_path, cameras=[live_camera("gate", first.url)])
    first_plate = short_clip.vehicles[0].plate
    later = [v.plate for v in second_clip.vehicles]

    async def scenario() -> None:
        async with Daemon(config, detector, engine) as daemon:
            await daemon.until(lambda: first_plate in daemon.plates("gate"), 60, "the first plate")
            first.kill()
            await daemon.until(
                lambda: "offline" in [s for s, _ in daemon.statuses("gate")], 20, "offline status"
            )
            restarted = time.monotonic()
            server_factory(second_clip.path, port=port)
            await daemon.until(
                lambda: [s for s, _ in daemon.statuses("gate")][-1] == "online", 30, "back online"
            )
            print(f"reconnected {time.monotonic() - restarted:.2f} s after the server returned")
            await daemon.until(lambda: daemon.plates("gate")[-2:] == later, 60, "later plates")
            states = [s for s, _ in daemon.statuses("gate")]
            assert states[0] == "online"
            assert "reconnecting" in states
            assert states.index("offline") < len(states) - 1 - states[::-1].index("reconnecting")

    asyncio.run(scenario())


def test_watchdog_notices_a_stream_that_goes_silent(
    tmp_path: Path,
    short_clip: DemoManifest,
    server_factory: Callable[..., RtspServer],
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    server = server_factory(short_clip.path, loop=True)
    config = make_config(tmp_path, cameras=[live_camera("gate", server.url)])

    async def scenario() -> None:
        async with Daemon(config, detector, engine) as daemon:
            await daemon.until(lambda: daemon.statuses("gate") == [("online", None)], 30, "online")
            server.pause()  # connection open, no more frames
            paused = time.monotonic()
            try:
                await daemon.until(lambda: len(daemon.statuses("gate")) >= 2, 20, "offline")
            finally:
                server.pause(False)
            silent_for = time.monotonic() - paused
            status, reason = daemon.statuses("gate")[1]
            assert status == "offline"
            assert "no frame from" in str(reason)
            assert FAST_LIVE["watchdog_s"] - 0.5 <= silent_for <= FAST_LIVE["watchdog_s"] + 3

    asyncio.run(scenario())


def test_dead_url_backs_off_while_another_camera_runs(
    tmp_path: Path,
    short_clip: DemoManifest,
    server_factory: Callable[..., RtspServer],
    detector: YoloDetector,
    engine: OcrEngine,
) -> None:
    server = server_factory(short_clip.path)
    dead = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/nothing"
    config = make_config(
        tmp_path, cameras=[live_camera("dead", dead), live_camera("gate", server.url)]
    )
    expected = [v.plate for v in short_clip.vehicles]

    async def scenario() -> None:
        async with Daemon(config, detector, engine) as daemon:
            await daemon.until(lambda: daemon.plates("gate") == expected, 60, "both plates")
            statuses = daemon.statuses("dead")
            assert statuses[0] == ("offline", f"cannot open {dead.replace('hunter2', '***')}")
            assert sum(1 for s, _ in statuses if s == "reconnecting") >= 2
            assert "hunter2" not in daemon.log.read_text()

    asyncio.run(scenario())


def test_missing_webcam_reports_and_keeps_retrying(
    tmp_path: Path, short_clip: DemoManifest, detector: YoloDetector, engine: OcrEngine
) -> None:
    config = make_config(
        tmp_path,
        cameras=[
            live_camera("webcam", "/dev/video77"),
            {"name": "file", "source": str(short_clip.path)},
        ],
    )

    async def scenario() -> None:
        async with Daemon(config, detector, engine) as daemon:
            await daemon.until(lambda: len(daemon.statuses("webcam")) >= 5, 20, "retries")
            await daemon.until(lambda: len(daemon.plates("file")) == 2, 60, "file plates")
            statuses = daemon.statuses("webcam")
            assert statuses[0] == ("offline", "cannot open /dev/video77")
            assert ("reconnecting", "attempt 2") in statuses

    asyncio.run(scenario())


def test_sigterm_flushes_open_tracks_and_exits_0(
    tmp_path: Path, short_clip: DemoManifest, server_factory: Callable[..., RtspServer]
) -> None:
    server = server_factory(short_clip.path, loop=True)
    # Tracks never time out on their own here: only the shutdown can end them.
    config = tmp_path / "live.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cameras": [live_camera("gate", server.url)],
                "tracker": {"lost_timeout_s": 60},
                "events_log": str(tmp_path / "events.jsonl"),
                "dues": {"database": str(tmp_path / "dues.sqlite")},
                "recordings": {"directory": str(tmp_path / "evidence")},
            }
        )
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "events.jsonl"
    try:
        deadline = time.monotonic() + 60
        while '"online"' not in (log.read_text() if log.exists() else ""):
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline, "camera never came online"
            time.sleep(0.1)
        time.sleep(4.0)  # the first vehicle has come and gone; its track is still open
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    plates = [json.loads(line).get("plate_number") for line in log.read_text().splitlines()]
    assert short_clip.vehicles[0].plate in plates
    assert "stopping (SIGTERM)" in err
