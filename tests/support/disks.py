"""Real small disks for disk faults: a tmpfs of a set size mounted on a test's folder, filled
to the last byte (and freed again) while the daemon writes to it, or made read-only.

Mounting needs root; without it (or without ``mount``) the test is skipped.

    with tmpfs(tmp_path / "disk", "1m") as disk:
        filler = fill(disk)   # writes now fail with ENOSPC (SQLite: "database or disk is full")
        filler.unlink()       # room again
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``) on ``path``, unmounted afterwards; the test
    is skipped where none can be mounted."""
    try:
        mount(path, size)
    except RuntimeError as error:
        pytest.skip(str(error))
    try:
        yield path
    finally:
        unmount(path)


def mount(path: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` on ``path`` (a benchmark's disk; :func:`unmount` it).

    Raises:
        RuntimeError: when it cannot (not root, no ``mount``), saying why.
    """
    if os.geteuid() != 0:
        raise RuntimeError("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        raise RuntimeError(f"cannot mount a tmpfs: {error}") from None
    if done.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs: {done.stderr.strip()}")


def unmount(path: Path) -> None:
    """Unmount what is mounted on ``path`` (lazily: files still open let go later)."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(folder: Path, name: str = "filler") -> Path:
    """Fill the disk holding ``folder`` to the last byte with the file ``name``; returns
    it (delete it to make room again)."""
    filler = folder / name
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(descriptor, bytes(size))
    finally:
        os.close(descriptor)
    return filler


def read_only(path: Path) -> None:
    """Remount the tmpfs on ``path`` read-only (writes fail with EROFS, even for root)."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
