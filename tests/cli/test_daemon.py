"""End to end through the ``streamer`` command, with the real model, Tesseract and SQLite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml

from streamer.cli.daemon import camera_names
from streamer.config import DetectionConfig
from streamer.sources.demo import DEMO_VEHICLES, DemoManifest, seed_demo_dues
from streamer.stores.dues import SqlDues

from support.daemon import ROOT, frame_at, streamer, vehicles, write_config
from support.factories import damaged_copy


def read_events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def demo_replay(
    demo_video: DemoManifest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]], Path]:
    """``streamer replay`` of the demo recording with the demo dues seeded."""
    tmp_path = tmp_path_factory.mktemp("replay")
    config = write_config(tmp_path, [{"name": "gate-1", "source": "unused.mp4"}])
    seed_demo_dues(SqlDues(tmp_path / "dues.sqlite"))
    out = tmp_path / "out.jsonl"
    result = streamer("replay", demo_video.path, "--config", config, "--events-out", out)
    return result, vehicles(read_events(out)) if out.exists() else [], tmp_path


def test_replay_gives_one_correct_event_per_vehicle(
    demo_replay: tuple, demo_video: DemoManifest
) -> None:  # type: ignore[type-arg]
    result, events, _ = demo_replay
    assert result.returncode == 0, result.stderr
    assert [e["plate_number"] for e in events] == [v.plate for v in demo_video.vehicles]
    for event, vehicle, (first, last) in zip(
        events, demo_video.vehicles, demo_video.appearances, strict=True
    ):
        assert event["camera"] == "demo"
        assert event["format_valid"] is True
        assert first - 0.5 <= event["media_time_s"] <= last + 0.5  # type: ignore[operator]
        # Seen on most of the frames detected while it was in view (one track, not pieces).
        sightings = DetectionConfig().rate_fps * (last - first)
        assert event["frames"] >= 0.6 * sightings  # type: ignore[operator]
        assert 0.5 <= event["confidence"] <= 1.0  # type: ignore[operator]
        dues = event["dues_result"]
        assert isinstance(dues, dict)
        assert dues["dues_pending"] is (vehicle.dues_amount > 0)
        assert dues["amount"] == vehicle.dues_amount


def test_replay_dues_results_cover_pending_paid_and_unknown(demo_replay: tuple) -> None:  # type: ignore[type-arg]
    _, events, _ = demo_replay
    states = {(e["dues_result"]["found"], e["dues_result"]["dues_pending"]) for e in events}
    assert states == {(True, True), (True, False), (False, False)}


def test_replay_writes_evidence_and_a_summary(demo_replay: tuple) -> None:  # type: ignore[type-arg]
    result, events, tmp_path = demo_replay
    for event in events:
        crop = cv2.imread(str(event["crop_path"]))
        snapshot = cv2.imread(str(event["snapshot_path"]))
        assert crop is not None
        assert snapshot is not None
        assert snapshot.shape == (720, 1280, 3)
        assert Path(str(event["crop_path"])).is_relative_to(tmp_path / "evidence" / "demo")
    assert "525 frames in" in result.stdout
    assert "frames/s), 5 events" in result.stdout


def test_run_keeps_other_cameras_going_when_a_file_is_missing(
    short_clip: DemoManifest, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        [
            {"name": "broken", "source": str(tmp_path / "no-such-video.mp4")},
            {"name": "good", "source": str(short_clip.path)},
        ],
    )
    result = streamer("run", "--config", config)
    assert result.returncode == 1
    assert "no-such-video.mp4: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    events = vehicles(read_events(tmp_path / "events.jsonl"))
    assert [(e["camera"], e["plate_number"]) for e in events] == [
        ("good", v.plate) for v in short_clip.vehicles
    ]


def test_replay_of_a_corrupt_file_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    config = write_config(tmp_path, [{"name": "x", "source": "unused"}])
    result = streamer("replay", bad, "--config", config)
    assert result.returncode == 1
    assert "corrupt.mp4: cannot open as video" in result.stderr
    assert "Traceback" not in result.stderr


def test_process_prints_the_seed_shape_per_image(demo_video: DemoManifest, tmp_path: Path) -> None:
    images = []
    for index, (_, last) in enumerate(demo_video.appearances[:2]):
        path = tmp_path / f"frame{index}.png"
        cv2.imwrite(str(path), frame_at(demo_video.path, last - 0.3))
        images.append(path)
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello")
    config = write_config(tmp_path, [{"name": "x", "source": "unused"}])
    SqlDues(tmp_path / "dues.sqlite").set(DEMO_VEHICLES[1].plate, 1500, "Unpaid")
    result = streamer("process", *images, not_an_image, "--config", config)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in [*images, not_an_image]]
    for line, vehicle in zip(lines[:2], demo_video.vehicles, strict=False):
        assert line["success"] is True
        assert line["plate_number"] == vehicle.plate
        assert set(line) >= {"detector_confidence", "bbox", "dues_result"}
        assert len(line["bbox"]) == 4
    assert lines[0]["dues_result"]["found"] is False
    assert lines[1]["dues_result"] == {
        "found": True,
        "dues_pending": True,
        "amount": 1500.0,
        "message": "Unpaid",
    }
    assert lines[2]["success"] is False
    assert "not an image" in lines[2]["error"]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("cameras:\n  - name: gate\n    source: ''\n", "cameras.0.source:"),
        ("cameras:\n  - name: gate\n    source: a.mp4\n    fps: 5\n", "cameras.0.fps: unknown key"),
        (
            "tracker:\n  min_frames: 0\n",
            "tracker.min_frames: Input should be greater than or equal to 1 (got 0)",
        ),
        ("cameras:\n  - name: g\n    source: gopher://h/x\n", "unsupported scheme 'gopher'"),
        ('cameras:\n  - name: g\n    source: "a\\0.mp4"\n', "must not contain a NUL"),
        ('events_log: "events\\0.jsonl"\n', "events_log: must not contain a NUL"),
        ('lists:\n  banned:\n    file: "b\\0.csv"\n', "lists.banned.file: must not contain a NUL"),
        ("webhooks:\n  - url: http://h:99999/x\n", "webhooks.0.url: the port must be a number"),
        (
            "mqtt:\n  url: http://broker:1883\n",
            "mqtt.url: must be mqtt://host[:port] or mqtts://host[:port] (TLS) "
            "(got 'http://broker:1883')",
        ),
    ],
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_invalid_config_exits_2_naming_the_key(
    tmp_path: Path, config_text: str, message: str, command: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config_text)
    result = streamer(command, "--config", path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 2  # "invalid config:" and the line


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    root = ROOT
    result = streamer("check-config", "--config", root / "config" / "streamer.yaml")
    assert result.returncode == 0
    assert "config OK: 1 camera(s) enabled: gate-1 (recordings/demo.mp4)" in result.stdout


def test_check_config_names_the_broker_without_its_password(tmp_path: Path) -> None:
    path = tmp_path / "mqtt.yaml"
    path.write_text(
        "mqtt:\n  url: mqtt://broker.lan\n  username: anpr\n  password: hunter2\n"
        "  client_id: gate-pc\n"
    )
    result = streamer("check-config", "--config", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "mqtt: mqtt://anpr:***@broker.lan:1883 as gate-pc, topics under streamer/, "
        "discovery under homeassistant/"
    )
    assert "hunter2" not in result.stdout + result.stderr


def test_missing_weights_is_one_line(tmp_path: Path, short_clip: DemoManifest) -> None:
    config = write_config(
        tmp_path,
        [{"name": "x", "source": str(short_clip.path)}],
        model={"weights": str(tmp_path / "plates.pt")},
    )
    result = streamer("run", "--config", config)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(f"model.weights: no such file {tmp_path / 'plates.pt'}")
    )


@pytest.mark.parametrize(
    ("files", "names"),
    [
        (["a/cars.mp4", "b/cars.mp4"], ["cars", "cars-2"]),
        (["gate 1 (north).mp4"], ["gate_1__north"]),
        (["...mp4"], ["file"]),
    ],
)
def test_camera_names_from_files(files: list[str], names: list[str]) -> None:
    assert camera_names([Path(f) for f in files]) == names


@pytest.mark.parametrize("engine", ["fused", "plate", "paddle", "tesseract"])
def test_replay_reads_the_plates_with_each_engine(
    short_clip: DemoManifest, tmp_path: Path, engine: str
) -> None:
    config = write_config(tmp_path, [{"name": "x", "source": "unused"}], reader={"engine": engine})
    out = tmp_path / "events.jsonl"
    result = streamer("replay", short_clip.path, "--config", config, "--events-out", out)
    assert result.returncode == 0, result.stderr
    assert [e["plate_number"] for e in vehicles(read_events(out))] == [
        v.plate for v in short_clip.vehicles
    ]


def test_check_config_never_prints_a_password(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - name: gate\n    source: rtsp://admin:p@ss/w0rd@10.0.0.7/s\n")
    result = streamer("check-config", "--config", path)
    assert result.returncode == 0, result.stderr
    assert "rtsp://admin:***@10.0.0.7/s" in result.stdout
    assert "w0rd" not in result.stdout + result.stderr


def test_replay_of_a_damaged_file_says_so_and_exits_1(
    tmp_path: Path, demo_video: DemoManifest
) -> None:
    config = write_config(tmp_path, [{"name": "gate-1", "source": "unused.mp4"}])
    damaged = damaged_copy(demo_video.path, tmp_path / "gate.mp4")
    events_out = tmp_path / "out.jsonl"
    result = streamer("replay", damaged, "--config", config, "--events-out", events_out)
    assert result.returncode == 1, result.stderr
    assert re.search(r"gate\.mp4: damaged: \d+ of its 525 frames \(\d+%\)", result.stderr)
    assert "Traceback" not in result.stderr
    # The vehicles before the damage are reported.
    first = demo_video.vehicles[0].plate
    assert first in [event["plate_number"] for event in vehicles(read_events(events_out))]


def test_check_config_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "streamer.yaml"
    os.mkfifo(fifo)  # nothing writes it: reading it would wait forever
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "check-config", "--config", str(fifo)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1] == f"{fifo}: cannot read config (a FIFO, not a regular file)"
    )


def test_check_config_lists_webhooks_and_rules_with_their_secrets_masked(tmp_path: Path) -> None:
    token = "Q3hM9vTzL0pWk2sR7yBn4dGc"
    path = tmp_path / "ok.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "webhooks": [{"url": f"https://hooks.example.com/{token}?key=k3y", "name": "ops"}],
                "rules": [
                    {
                        "name": "gate",
                        "do": [{"http": {"url": "http://admin:s3cret@relay.lan/rpc?key=k3y&on=1"}}],
                    }
                ],
            }
        )
    )
    result = streamer("check-config", "--config", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "webhook ops: https://hooks.example.com/***?key=***",
        "rule gate: http POST http://admin:***@relay.lan/rpc?key=***&on=***",
    ]
    for secret in ("s3cret", "k3y", token):
        assert secret not in result.stdout + result.stderr


def test_check_config_refuses_urls_that_cannot_work_without_printing_their_secrets(
    tmp_path: Path,
) -> None:
    path = tmp_path / "urls.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "webhooks": [{"url": "http://hook:s3cret@[::1/events?key=k3y"}],
                "rules": [
                    {"name": "gate", "do": [{"http": {"url": "http://relay:99999/open?key=k3y"}}]},
                    {
                        "name": "alarm",
                        "do": [
                            {
                                "http": {
                                    "url": "http://siren.lan/on",
                                    "headers": {"X-Key": "s3cret\r\nX-Forged: 1"},
                                }
                            }
                        ],
                    },
                ],
            }
        )
    )
    result = streamer("check-config", "--config", path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[1:] == [
        "webhooks.0.url: an IPv6 host must be a valid address in closed brackets, e.g. "
        "http://[::1]:8080/ (got 'http://hook:***@[::1/events?key=***')",
        "rules.0.do.0.http.url: the port must be a number from 1 to 65535 "
        "(got 'http://relay:99999/open?key=***')",
        "rules.1.do.0.http.headers: header X-Key: the value must not hold a line break or "
        "control character",
    ]
    assert "s3cret" not in result.stdout + result.stderr
    assert "k3y" not in result.stdout + result.stderr
