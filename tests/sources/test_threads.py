"""Sources read in a thread: every frame of a file, the freshest of a live source, a stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from streamer.sources.demo import DemoManifest
from streamer.sources.files import FileSource
from streamer.sources.frame import SourceError
from streamer.sources.threads import read_in_thread


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
