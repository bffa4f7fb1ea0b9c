"""Damaged recordings: each fails clearly, after its readable frames."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from streamer.config import CameraConfig
from streamer.sources import open_source
from streamer.sources.demo import DemoVehicle, render_video
from streamer.sources.frame import SourceError

from support.fuzz import SEED, Tally, shorten

# --- videos --------------------------------------------------------------------------------


def video_variants(rng: random.Random, video: bytes) -> list[tuple[str, bytes | None, bool]]:
    """Damaged copies of ``video`` (an MP4 whose index, ``moov``, is at its end), and files
    that are no video at all: (description, bytes or ``None`` for a directory, whether it
    is a copy of ``video``)."""
    moov, mdat, size = video.rfind(b"moov") - 4, video.find(b"mdat") - 4, len(video)
    middle = size // 2
    variants: list[tuple[str, bytes | None, bool]] = [
        ("empty file", b"", False),
        ("one byte", video[:1], False),
        ("64 kB of random bytes", rng.randbytes(65_536), False),
        ("a text file", b"this is not a video\n" * 100, False),
        ("a PNG", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(), False),
        ("a directory", None, False),
        ("first 32 bytes zeroed", bytes(32) + video[32:], True),
        ("first 4 kB zeroed", bytes(4096) + video[4096:], True),
        ("ftyp box only", video[:28], True),
        ("index (moov) removed", video[:moov], True),
        ("index size 0xFFFFFFFF", video[:moov] + b"\xff" * 4 + video[moov + 4 :], True),
        (
            "index size 1 (a 64-bit size of garbage)",
            video[:moov] + b"\0\0\0\1" + video[moov + 4 :],
            True,
        ),
        ("media size 0xFFFFFFFF", video[:mdat] + b"\xff" * 4 + video[mdat + 4 :], True),
        ("index twice", video + video[moov:], True),
        ("middle 4 kB zeroed", video[:middle] + bytes(4096) + video[middle + 4096 :], True),
    ]
    for cut in [*sorted(rng.sample(range(1, moov), 4)), moov + 8, size - 16]:
        variants.append((f"truncated at byte {cut} of {size}", video[:cut], True))
    for flips in (1, 10, 100, 1000):
        data = bytearray(video)
        for at in rng.sample(range(mdat + 8, moov), flips):
            data[at] ^= 1 << rng.randrange(8)
        variants.append((f"{flips} bits flipped in the frames", bytes(data), True))
    for count in (1, 10, 50):
        data = bytearray(video)
        for at in rng.sample(range(moov + 8, size), count):
            data[at] = rng.randrange(256)
        variants.append((f"{count} bytes of the index randomised", bytes(data), True))
    for table in (b"stsz", b"stco", b"stts", b"stsc"):
        at = video.rfind(table)
        garbage = b"\xff" * 4 + rng.randbytes(60)
        variants.append(
            (f"{table.decode()} table garbage", video[: at + 8] + garbage + video[at + 72 :], True)
        )
    return variants


def read_source(path: Path, timeout: float) -> tuple[int, BaseException | None, bool]:
    """Read ``path`` through the project's file source: the frames decoded, the error it
    raised, and whether it was still reading after ``timeout``."""
    raised: list[BaseException] = []
    try:
        source = open_source(CameraConfig(name="fuzz", source=str(path)))
    except Exception as error:
        return 0, error, False

    def drain() -> None:
        try:
            for _ in source.frames():
                pass
        except BaseException as error:
            raised.append(error)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    reader.join(timeout)
    hung = reader.is_alive()
    if hung:
        source.close()
        reader.join(5)
    return source.decoded, raised[0] if raised else None, hung


def replay_config(folder: Path) -> Path:
    """A config whose files all live in ``folder``."""
    config = folder / "replay.yaml"
    data = {
        "cameras": [{"name": "cam", "source": "unused.mp4"}],
        "events_log": str(folder / "replay-events.jsonl"),
        "dues": {"database": str(folder / "dues.sqlite")},
        "recordings": {"directory": str(folder / "evidence")},
        "outbox": {"database": str(folder / "outbox.sqlite")},
        "http": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(data))
    return config


def test_damaged_recordings_fail_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-video")
    tally = Tally("video", minimum=30)
    vehicle = (DemoVehicle("KA05MN4821", 0.0, ""),)
    clip = render_video(
        tmp_path / "clip.mp4",
        vehicle,
        fps=10.0,
        size=(320, 240),
        seconds_per_vehicle=1.0,
        gap_seconds=0.2,
        seed=SEED % 1000,
    )
    intact, error, _ = read_source(clip.path, 30)
    assert error is None
    assert intact == clip.frame_count
    caplog.set_level(logging.WARNING, logger="streamer")
    variants = video_variants(rng, clip.path.read_bytes())
    files = {}
    for number, (description, data, copy) in enumerate(variants):
        if tally.over_budget(number, len(variants)):
            break
        path = files[description] = tmp_path / f"damaged-{number}.mp4"
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
        name = f"video #{number} ({description}, {path.name})"
        caplog.clear()
        decoded, error, hung = read_source(path, 30)
        warned = any(
            r.levelno >= logging.WARNING and path.name in r.getMessage() for r in caplog.records
        )
        if hung:
            tally.count("hung")
            tally.fail(name, f"still reading after 30 s ({decoded} frames)")
        elif error is not None and not isinstance(error, SourceError):
            tally.count(type(error).__name__)
            tally.fail(name, f"raised {type(error).__name__}: {shorten(str(error))}")
        elif error is not None:
            tally.count("SourceError")
            if path.name not in str(error):
                tally.fail(name, f"its error does not name the file: {shorten(str(error))}")
        elif not copy or decoded >= intact - 1:
            tally.count("decoded")  # the README: one missing frame is the container's rounding
        elif warned:
            tally.count("partly decoded, with a warning")
        else:
            tally.count("partly decoded, silently")
            tally.fail(name, f"{decoded} of {intact} frames decoded without an error or a warning")
    damaged = [
        files[name]
        for name in ("empty file", "64 kB of random bytes", "index (moov) removed", "a directory")
    ]
    command = [sys.executable, "-m", "streamer", "replay", str(clip.path), *map(str, damaged)]
    command += ["--config", str(replay_config(tmp_path))]
    name = "streamer replay " + " ".join(path.name for path in [clip.path, *damaged])
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=180, check=False
        )
    except subprocess.TimeoutExpired:
        tally.fail(name, "still running after 180 s")
    else:
        tally.count(f"replay exit {result.returncode}")
        if "Traceback" in result.stderr or result.returncode != 1:
            tally.fail(
                name, f"exit {result.returncode}, stderr {shorten(result.stderr[-800:], 900)}"
            )
        for path in damaged:
            if path.name not in result.stderr:
                tally.fail(
                    name, f"its errors do not name {path.name}: {shorten(result.stderr[-400:])}"
                )
    tally.report(capsys)
    tally.verdict()
