"""What the benchmarks share: where the repository and its data are, a config whose files
live in a scratch folder, and the frame of a video at a given time."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from streamer.config import Config, parse_config
from streamer.sources.files import FileSource

ROOT = Path(__file__).resolve().parent.parent
#: The development videos (absent in a user's clone: the benchmarks then skip them).
SHARED_VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def bench_config(folder: Path, **settings: Any) -> Config:
    """The config of ``settings`` (no HTTP API unless asked for), its files in ``folder``."""
    return parse_config({"http": {"enabled": False}, **settings}).with_files_in(folder)


def frame_at(video: Path, seconds: float) -> np.ndarray:
    """The first frame of ``video`` at or after ``seconds``."""
    for frame in FileSource("bench", video).frames():
        if (frame.media_time_s or 0.0) >= seconds:
            return frame.image
    raise ValueError(f"{video} is shorter than {seconds} s")


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` in the markdown file ``path`` between ``<!-- name -->`` markers, in place
    of what a run before wrote there, or at the end; each benchmark writes its own."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# Performance\n\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def tests_helper(name: str) -> ModuleType:
    """A server helper of ``tests/support/`` (``rtsp``, ``receiver``, ``mosquitto``), with
    ``tests/`` on the module path as pytest has it, so that helpers can use each other."""
    folder = str(ROOT / "tests")
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module(f"support.{name}")


def describe(checkout: Path) -> str:
    """``<short commit>``, with ``+ uncommitted changes`` when its working tree has some."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("log", "-1", "--format=%h") or "?"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "streamer")
    return f"{commit} + uncommitted changes" if dirty else commit
