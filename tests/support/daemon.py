"""The daemon in tests: configs whose files live in a temporary folder, the daemon run
in-process (:class:`ServiceThread`) or as a process killed at a chosen moment, its MQTT
side alone (:class:`MqttSenderThread`), and what a consumer checks of its events
(:func:`vehicles`)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from streamer import node, threaded
from streamer.config import Config, parse_config
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox
from streamer.events import Event
from streamer.reading.ocr import OcrEngine
from streamer.vision.detect import YoloDetector

#: The repository, and the shared data beside it (absent in a user's clone).
ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


def frame_at(video: Path, seconds: float) -> np.ndarray:
    """The frame of ``video`` at ``seconds``."""

    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_MSEC, seconds * 1000)
    ok, image = capture.read()
    capture.release()
    assert ok, f"no frame at {seconds}s in {video}"
    return image


def vehicles(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The final plate event of each vehicle, in the order the vehicles first appeared.

    Checks what a consumer relies on: one ``event_id`` per vehicle, at most one early
    event and then exactly one final event per ``event_id``.
    """
    phases: dict[str, list[str]] = {}
    finals: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("type") != "plate":
            continue
        event_id = str(record["event_id"])
        phases.setdefault(event_id, []).append(str(record["phase"]))
        if record["phase"] == "final":
            finals[event_id] = record
    for event_id, seen in phases.items():
        assert seen in (["final"], ["early", "final"]), (event_id, seen)
    return [finals[event_id] for event_id in phases]


def write_yaml(config: Config, path: Path) -> Path:
    """``config`` as a YAML file the ``streamer`` command can load."""
    path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    return path


def without_cameras(config: Config) -> Config:
    """The same daemon with its cameras disabled: a restart that only delivers."""
    cameras = [camera.model_copy(update={"enabled": False}) for camera in config.cameras]
    return config.model_copy(update={"cameras": cameras})


def kill_when(config: Config, path: Path, condition: Callable[[], bool]) -> None:
    """Run ``streamer run`` on ``config`` (written to ``path``) and SIGKILL it as soon as
    ``condition()`` holds."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", "--config", str(write_yaml(config, path))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not condition():
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        daemon.send_signal(signal.SIGKILL)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        with daemon:  # waits, and closes its pipes
            pass


def restart_without_cameras(config: Config, path: Path) -> None:
    """``streamer run`` again on ``config`` with its cameras disabled, to its end (it
    delivers what the killed one left)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "run",
            "--config",
            str(write_yaml(without_cameras(config), path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def make_config(tmp_path: Path, **overrides: object) -> Config:
    """A config whose files all live in ``tmp_path``."""
    data: dict[str, object] = {
        "cameras": [{"name": "cam", "source": str(tmp_path / "missing.mp4")}],
        "events_log": str(tmp_path / "events.jsonl"),
        "dues": {"database": str(tmp_path / "dues.sqlite")},
        "recordings": {"directory": str(tmp_path / "evidence")},
        "outbox": {"database": str(tmp_path / "outbox.sqlite")},
        "http": {"enabled": False},
    }
    data.update(overrides)
    return parse_config(data)


class Clock:
    """A sink after the events log: when each event was logged."""

    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def send(self, event: Event) -> None:
        self.logged[event.key] = time.time()


class ServiceThread(threaded.ServiceThread):
    """The service in its own thread, with the session's detector and OCR engine, for tests
    that talk to its HTTP API from outside (HTTP clients, a browser)."""

    def __init__(
        self, config: Config, detector: YoloDetector, engine: OcrEngine, serve_only: bool = False
    ) -> None:
        options = node.ServiceOptions(detector=detector, engine=engine, serve_only=serve_only)
        super().__init__(config, options)


def streamer(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m streamer ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "streamer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        check=False,
    )


def write_config(tmp_path: Path, cameras: list[dict[str, object]], **extra: object) -> Path:
    data = {
        "cameras": cameras,
        "events_log": str(tmp_path / "events.jsonl"),
        "dues": {"database": str(tmp_path / "dues.sqlite")},
        "recordings": {"directory": str(tmp_path / "evidence")},
        "outbox": {"database": str(tmp_path / "outbox.sqlite")},
        "http": {"enabled": False},
        **extra,
    }
    path = tmp_path / "streamer.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def eventually(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first true value of ``condition()``; fails the test naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


class MqttSenderThread:
    """The daemon's MQTT side alone (:class:`MqttSender`, with the outbox of ``config``)
    in a thread and event loop of its own, once: connected from ``with`` to its end, then
    stopped as the daemon stops (it says ``offline``). :meth:`add` commits events as the
    pipeline does.

    Example:
        >>> with MqttSenderThread(config) as sender:
        ...     sender.add([make_event("KA01AB1234")])
    """

    def __init__(self, config: Config) -> None:
        assert config.mqtt is not None
        self.outbox = Outbox(config.outbox, config.delivery_targets)
        self.sender = MqttSender(config.mqtt, self.outbox, config.cameras)
        self._loop = asyncio.new_event_loop()
        self._started, self._stop = threading.Event(), asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    def add(self, events: Iterable[Event]) -> None:
        """Commit ``events`` to the outbox, and wake the sender."""
        for event in events:
            self.outbox.add(event)
        self._loop.call_soon_threadsafe(self.sender.wakeup.set)

    async def _main(self) -> None:
        task = asyncio.create_task(self.sender.run())
        await self.sender.first_attempt()
        self._started.set()
        await self._stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def __enter__(self) -> MqttSenderThread:
        self._thread.start()
        if not self._started.wait(20):
            raise TimeoutError("the MQTT sender did not make its first attempt in 20 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        self._loop.close()
