"""File sources: every frame, media timestamps, clear errors for bad files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamer.demo import DemoManifest
from streamer.sources import FileSource, SourceError, open_source, read_in_thread


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


def test_live_sources_are_refused_clearly() -> None:
    with pytest.raises(SourceError, match="live sources are not supported yet"):
        open_source("cam", "rtsp://127.0.0.1:8554/gate")


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
