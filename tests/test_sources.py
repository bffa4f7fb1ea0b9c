"""File sources: every frame, media timestamps, clear errors for bad files."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from streamer.config import CameraConfig, ConfigError, mask_url, parse_config
from streamer.retry import backoff
from streamer.sources import open_source
from streamer.sources.demo import DemoManifest
from streamer.sources.files import FileSource, damage, file_identity
from streamer.sources.frame import Sampler, SourceError
from streamer.sources.live import CaptureSource
from streamer.sources.threads import read_in_thread


def test_every_frame_with_media_time(short_clip: DemoManifest) -> None:
    frames = list(FileSource("cam", short_clip.path).frames())
    assert len(frames) == short_clip.frame_count
    assert [f.index for f in frames] == list(range(len(frames)))
    step = 1 / short_clip.fps
    assert frames[1].media_time_s == pytest.approx(step, abs=1e-3)
    assert frames[-1].media_time_s == pytest.approx((len(frames) - 1) * step, abs=1e-3)
    assert (frames[-1].captured_at - frames[0].captured_at).total_seconds() == pytest.approx(
        frames[-1].media_time_s, abs=1e-3
    )


@pytest.mark.parametrize(
    ("rate", "fps", "seconds", "due"),
    [(0, 25, 10, 250), (8, 25, 10, 80), (5, 18, 10, 50), (10, 25, 10, 100), (30, 25, 10, 250)],
)
def test_sampler_keeps_the_rate(rate: float, fps: float, seconds: float, due: int) -> None:
    sampler = Sampler(rate)
    assert sum(sampler.due(i / fps) for i in range(round(seconds * fps))) == due


def test_sampler_restarts_after_a_gap_without_a_burst() -> None:
    sampler = Sampler(5)
    times = [0.0, 0.1, 0.2, 0.3, 7.0, 7.04, 7.08, 7.12, 7.2, 7.24]
    assert [t for t in times if sampler.due(t)] == [0.0, 0.2, 7.0, 7.2]


def test_file_at_a_rate_decodes_every_frame_and_hands_on_the_due(
    short_clip: DemoManifest,
) -> None:
    source = FileSource("cam", short_clip.path, rate_fps=5)
    frames = list(source.frames())
    assert source.decoded == short_clip.frame_count
    seconds = short_clip.frame_count / short_clip.fps
    assert len(frames) == pytest.approx(seconds * 5, abs=1)
    # Indices and media times still say where each frame is in the file.
    assert [f.index for f in frames[:3]] == [0, 5, 10]
    assert frames[2].media_time_s == pytest.approx(10 / short_clip.fps, abs=1e-3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "cannot open as video"),
        (b"\x00\x00\x00\x18ftypmp42 this is not a video", "cannot open as video"),
    ],
    ids=["missing", "empty", "corrupt"],
)
def test_bad_files_name_the_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "gate.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=rf"gate\.mp4: {message}"):
        list(FileSource("cam", path).frames())


def damaged_copy(video: Path, path: Path, flips: int = 2000, seed: int = 1) -> Path:
    """``video`` with ``flips`` bytes inverted in its middle half (its header and index,
    at either end, stay intact, so that it still opens)."""
    data = bytearray(video.read_bytes())
    rng = random.Random(seed)
    for _ in range(flips):
        data[rng.randrange(len(data) // 4, 3 * len(data) // 4)] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_file_fails_after_its_readable_frames(
    tmp_path: Path, demo_video: DemoManifest
) -> None:
    source = FileSource("cam", damaged_copy(demo_video.path, tmp_path / "gate.mp4"))
    frames = []
    with pytest.raises(SourceError, match=r"gate\.mp4: damaged: \d+ of its 525 frames \(\d+%\)"):
        frames.extend(source.frames())
    assert 0 < len(frames) < 525


@pytest.mark.parametrize(
    ("decoded", "declared", "outcome"),
    [
        (525, 525, None),
        (524, 525, None),  # a container's rounding
        (500, 525, "damaged: 25 of its 525 frames (5%)"),  # a warning
        (0, 0, None),  # no frame count declared
    ],
)
def test_damage_below_the_limit_is_a_warning(
    decoded: int, declared: int, outcome: str | None
) -> None:
    found = damage(Path("gate.mp4"), decoded, declared)
    if outcome is None:
        assert found is None
    else:
        assert found is not None
        assert outcome in found
    with pytest.raises(SourceError, match="damaged: 100 of its 525 frames"):
        damage(Path("gate.mp4"), 425, 525)


def test_file_identity_depends_on_the_content_only(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3 << 20)
    first, copy, other = (tmp_path / name for name in ("a.mp4", "b.mp4", "c.mp4"))
    first.write_bytes(data)
    copy.write_bytes(data)
    other.write_bytes(data[:-1] + b"x")
    assert file_identity(first) == file_identity(copy) != file_identity(other)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("rtsp://admin:s3cret@10.0.0.7:554/stream1", "rtsp://admin:***@10.0.0.7:554/stream1"),
        (
            "cannot open http://u:p%40ss@cam.local/mjpg and rtsp://x:y@h/z",
            "cannot open http://u:***@cam.local/mjpg and rtsp://x:***@h/z",
        ),
        ("rtsp://10.0.0.7/stream1", "rtsp://10.0.0.7/stream1"),
        ("recordings/demo.mp4", "recordings/demo.mp4"),
        # Passwords that a regex over the URL's grammar got wrong: '@' and '/' in them.
        ("rtsp://admin:p@ssw0rd@10.0.0.7/s", "rtsp://admin:***@10.0.0.7/s"),
        ("rtsp://admin:pa/ss:w@10.0.0.7:554/s", "rtsp://admin:***@10.0.0.7:554/s"),
        ("rtsp://admin@10.0.0.7/s", "rtsp://admin@10.0.0.7/s"),  # no password
        ("no frame from rtsp://a:b/c@h/x for 2 s", "no frame from rtsp://a:***@h/x for 2 s"),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    assert mask_url(text) == masked


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff(failures, 1, 8, rng, jitter=0.2) for failures in range(1, 8)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8, 8], strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    assert len(set(delays)) == len(delays)  # jittered, not identical


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("recordings/demo.mp4", FileSource),
        ("rtsp://u:p@127.0.0.1:8554/gate", CaptureSource),
        ("http://127.0.0.1/video.mjpg", CaptureSource),
        ("0", CaptureSource),
        ("/dev/video3", CaptureSource),
    ],
)
def test_open_source_by_kind(source: str, kind: type) -> None:
    assert isinstance(open_source(CameraConfig(name="c", source=source)), kind)


def test_a_file_named_like_a_webcam_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_clip: DemoManifest
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").write_bytes(short_clip.path.read_bytes())
    assert isinstance(open_source(CameraConfig(name="c", source="0")), FileSource)


@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher"])
def test_an_unsupported_scheme_is_a_config_error_in_one_masked_line(scheme: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"cameras": [{"name": "c", "source": f"{scheme}://user:pw@host/x.mp4"}]})
    assert str(error.value) == (
        f"cameras.0.source: unsupported scheme '{scheme}' (use rtsp://, rtsps://, http://, "
        f"https://, rtmp://, a file or a webcam) (got '{scheme}://user:***@host/x.mp4')"
    )


def test_realtime_file_is_paced_and_drops_what_the_consumer_misses(
    short_clip: DemoManifest,
) -> None:
    async def slow_consumer() -> tuple[int, int, float]:
        dropped = 0

        def on_drop() -> None:
            nonlocal dropped
            dropped += 1

        started = time.monotonic()
        seen = 0
        async for _ in read_in_thread(
            FileSource("cam", short_clip.path, realtime=True), on_drop=on_drop
        ):
            seen += 1
            await asyncio.sleep(0.1)  # a consumer at 10 frames/s behind a 25 frames/s camera
        return seen, dropped, time.monotonic() - started

    seen, dropped, seconds = asyncio.run(slow_consumer())
    duration = short_clip.frame_count / short_clip.fps
    assert seconds == pytest.approx(duration, abs=1.0)  # paced, not as fast as possible
    assert seen + dropped == short_clip.frame_count
    assert seen < short_clip.frame_count / 2


def test_thread_reader_delivers_all_frames_and_errors(
    short_clip: DemoManifest, tmp_path: Path
) -> None:
    async def count(source: FileSource) -> int:
        return len([frame async for frame in read_in_thread(source, maxsize=2)])

    assert asyncio.run(count(FileSource("cam", short_clip.path))) == short_clip.frame_count
    with pytest.raises(SourceError, match="no such file"):
        asyncio.run(count(FileSource("cam", tmp_path / "nope.mp4")))


def test_thread_reader_stops_when_the_consumer_leaves(short_clip: DemoManifest) -> None:
    async def first_three() -> int:
        seen = 0
        async for _ in read_in_thread(FileSource("cam", short_clip.path), maxsize=1):
            seen += 1
            if seen == 3:
                break
        return seen

    assert asyncio.run(asyncio.wait_for(first_three(), timeout=30)) == 3


def test_masking_a_long_text_without_urls_is_fast() -> None:
    started = time.perf_counter()
    assert mask_url("x" * 1_000_000) == "x" * 1_000_000
    assert mask_url("a" * 100_000 + "://u:p@h") == "a" * 100_000 + "://u:***@h"
    assert time.perf_counter() - started < 1
