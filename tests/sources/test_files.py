"""Recorded files: every frame with its media time, damaged and unreadable files, identity."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streamer.sources.demo import DemoManifest
from streamer.sources.files import FileSource, damage, file_identity
from streamer.sources.frame import SourceError

from support.factories import damaged_copy


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
