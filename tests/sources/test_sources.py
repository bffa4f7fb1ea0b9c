"""File sources: every frame, media timestamps, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import CameraConfig, ConfigError, parse_config
from streamer.sources import open_source
from streamer.sources.demo import DemoManifest
from streamer.sources.files import FileSource
from streamer.sources.live import CaptureSource


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
