"""Reading the files a user names (a config, a dues or list CSV): regular files only, and
no more than a bound, so that a FIFO, a device such as ``/dev/zero`` or a runaway file
gives one line saying so instead of a hang or an exhausted memory."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: What a file that is not a regular one is, by its type.
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, when it holds at most ``limit`` bytes.

    The file is opened without blocking (a FIFO with no writer would block ``open``) and
    checked on the open descriptor, so it cannot be swapped between check and read.

    Raises:
        OSError: as ``open`` raises it, or with a ``strerror`` saying that the file is not
            a regular one (``a FIFO, not a regular file``) or is larger than ``limit``.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
            raise OSError(errno.EINVAL, f"{kind}, not a regular file")
        too_large = OSError(errno.EFBIG, f"larger than {describe_size(limit)}")
        if info.st_size > limit:
            raise too_large
        # Read to the bound only: a file may grow meanwhile (and /proc's say they are empty).
        chunks, size = [], 0
        while chunk := os.read(descriptor, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise too_large
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def describe_size(size: int) -> str:
    """``size`` bytes in words: ``10 MB``, ``512 kB``."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:g} MB"
    return f"{size / 1000:g} kB"
