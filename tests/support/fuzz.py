"""The fuzzing harness: seeded inputs, a tally of outcomes per class with a time budget,
the daemon under attack with its memory and tracebacks watched, and image probes.

Hostile inputs from a seeded generator: the HTTP API of a running daemon (the lists API
among it), configs, damaged recordings, dues and list CSVs, damaged outbox files and full
disks.

Every input comes from ``random.Random`` seeded from :data:`SEED` (``STREAMER_FUZZ_SEED``
sets another), so a failure reproduces with the seed its message names. Each test runs all
of its inputs, collects every failure with a description of the input and what was
observed, prints its counts to the terminal (even under ``pytest -q``) and fails once at
the end, listing them all. Each class has a time budget; the file takes about a minute.

    STREAMER_FUZZ_SEED=7 .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SEED = int(os.environ.get("STREAMER_FUZZ_SEED", "20261129"))
#: The daemon's resident memory must stay below this, whatever it is sent.
RSS_LIMIT_MB = 1500.0
#: How long /health may take to answer between batches and under a connection flood.
HEALTH_TIMEOUT_S = 2.0
#: How long a complete request may wait for its answer before it counts as a hang.
ANSWER_TIMEOUT_S = 30.0
#: Wall-clock budget of each class of inputs; running out of it is itself a failure.
BUDGET_S = {"HTTP": 90.0, "config": 45.0, "video": 30.0, "dues CSV": 30.0}
BUDGET_S["rules and MQTT"] = 30.0
BUDGET_S["outbox file"] = 60.0
BUDGET_S["disk fault"] = 120.0
BUDGET_S["list CSV"] = 30.0
BUDGET_S["lists API"] = 60.0
#: The README's stream schemes: any other ``scheme://`` source must be refused.
STREAM_SCHEMES = {"rtsp", "rtsps", "http", "https", "rtmp"}
#: The README's rule for plates given to the dues database.
FOREIGN_RULE = "the README: a plate with letters or digits outside A-Z and 0-9 is refused"
#: Inputs run so far in this session, per class (for the summary lines).
TOTALS: Counter[str] = Counter()


def shorten(value: object, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


@dataclass
class Tally:
    """The inputs of one class, their outcomes and the failures among them."""

    kind: str
    minimum: int
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def count(self, outcome: str) -> None:
        """One input more, which ended as ``outcome``."""
        self.inputs += 1
        self.outcomes[outcome] += 1

    def fail(self, description: str, observed: str) -> None:
        """Record a failure of the input ``description``."""
        self.failures.append(f"{description}: {observed}")

    def over_budget(self, done: int, planned: int) -> bool:
        """Whether this class has used up its time budget (a failure, recorded once)."""
        budget = BUDGET_S[self.kind]
        if time.monotonic() - self.started <= budget:
            return False
        self.fail(f"{self.kind} inputs", f"only {done} of {planned} ran in the {budget:g} s budget")
        return True

    def report(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Print the counts of this class to the terminal, whatever pytest captures."""
        TOTALS[self.kind] += self.inputs
        outcomes = ", ".join(f"{name}: {n}" for name, n in sorted(self.outcomes.items()))
        with capsys.disabled():
            print(
                f"\nfuzz seed {SEED}: {self.inputs} hostile {self.kind} inputs in "
                f"{time.monotonic() - self.started:.1f} s ({outcomes}); "
                f"{len(self.failures)} failures; {sum(TOTALS.values())} inputs this session"
            )

    def verdict(self) -> None:
        """Fail, listing every failure, unless enough inputs ran and none failed."""
        assert self.inputs >= self.minimum, f"only {self.inputs} {self.kind} inputs ran"
        if self.failures:
            pytest.fail(
                f"{len(self.failures)} of {self.inputs} hostile {self.kind} inputs failed "
                f"(STREAMER_FUZZ_SEED={SEED} reproduces them):\n" + "\n".join(self.failures),
                pytrace=False,
            )


class OverrunError(Exception):
    """A bounded block ran too long or took too much memory."""


def rss_mb(pid: int | str = "self", key: str = "VmRSS") -> float | None:
    """A memory figure of a process from ``/proc/<pid>/status``, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


@contextlib.contextmanager
def bounded(seconds: float, megabytes: float) -> Iterator[None]:
    """Raise :class:`OverrunError` when the block runs longer than ``seconds`` or this
    process's resident memory grows by more than ``megabytes`` (main thread only).

    A watcher interrupts the block (with SIGUSR1: pytest-timeout's SIGALRM is left alone)
    once either bound is passed; a peak the watcher missed, while one C call held the
    GIL, is caught afterwards from the process's high-water mark."""
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    reason: list[str] = []

    def interrupt(signum: int, frame: object) -> None:
        raise OverrunError(reason[0] if reason else "interrupted")

    previous = signal.signal(signal.SIGUSR1, interrupt)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts here
    baseline = rss_mb() or 0.0
    deadline = time.monotonic() + seconds
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            grown = (rss_mb() or 0.0) - baseline
            if grown > megabytes:
                reason.append(f"memory grew by {grown:.0f} MB (bound {megabytes:g} MB)")
            elif time.monotonic() > deadline:
                reason.append(f"still running after {seconds:g} s")
            else:
                continue
            signal.pthread_kill(main, signal.SIGUSR1)
            return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGUSR1, previous)
    peak = (rss_mb(key="VmHWM") or 0.0) - baseline
    if peak > megabytes:
        raise OverrunError(f"memory peaked {peak:.0f} MB higher (bound {megabytes:g} MB)")


def log_problems(records: Iterable[logging.LogRecord]) -> list[str]:
    """What a user must never find in the log of an in-process daemon: a traceback, or a
    warning or error that is not one line."""
    found = []
    for record in records:
        message = record.getMessage()
        if record.exc_info:
            found.append(f"traceback with {shorten(message, 100)}: {record.exc_info[1]!r}")
        elif record.levelno >= logging.WARNING and "\n" in message:
            found.append(f"a {record.levelname} of several lines: {shorten(message, 200)}")
    return found


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.MULTILINE)


def tracebacks(log: str) -> list[str]:
    """Each log record of ``log`` that holds a traceback, as one line: its message, the
    last exception of the chain and the innermost frame in streamer (else the innermost)."""
    starts = [0, *(match.start() for match in _RECORD.finditer(log)), len(log)]
    found = []
    for start, end in itertools.pairwise(starts):
        lines = log[start:end].splitlines()
        if not any(line.startswith("Traceback (most recent") for line in lines):
            continue
        frames = [line.strip() for line in lines if line.startswith("  File ")]
        ours = [f for f in frames if "/streamer/" in f and "site-packages" not in f]
        skip = ("Traceback", "During handling", "The above exception")
        raised = [
            line for line in lines[1:] if line[:1] not in ("", " ") and not line.startswith(skip)
        ]
        message = lines[0].split(" ", 2)[-1] if _RECORD.match(lines[0]) else lines[0]
        where = (ours or frames or ["?"])[-1]
        found.append(f"{message!r} -> {(raised or ['?'])[-1]} [{where}]")
    return found or ["'Traceback' in the log"]


def mutate(rng: random.Random, data: bytes, rounds: int) -> tuple[bytes, str]:
    """``data`` with ``rounds`` random changes; the changes, described."""
    steps = []
    for _ in range(rounds):
        at = rng.randrange(len(data) + 1)
        op = rng.choice(["flip", "delete", "duplicate", "insert", "truncate", "separator", "zero"])
        size = rng.randint(1, 64)
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
        elif op == "delete":
            data, op = data[:at] + data[at + size :], f"delete {size}"
        elif op == "duplicate":
            data, op = (
                data[: at + size] + data[at : at + size] + data[at + size :],
                f"repeat {size}",
            )
        elif op == "insert":
            data, op = data[:at] + rng.randbytes(size) + data[at:], f"insert {size} random"
        elif op == "truncate":
            data = data[:at]
        elif op == "separator":
            inserted = rng.choice([b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"--", b";", b'"'])
            data, op = data[:at] + inserted + data[at:], f"insert {inserted!r}"
        elif op == "zero":
            data, op = (
                data[:at] + bytes(len(data[at : at + size])) + data[at + size :],
                f"zero {size}",
            )
        steps.append(f"{op} at {at}")
    return data, ", ".join(steps)


# --- hostile values shared by the config fuzzers ------------------------------------------

SOURCES = ["\x00", "gate\x00.mp4", "gopher://192.0.2.1/x", "file:///etc/passwd", "ftp://h/x.mp4"]
SOURCES += ["FILE://x", "javascript:alert(1)", "rtsp://u:p@h:99999/x", "rtsp://", "", " "]
HOSTILE_STRINGS = [*SOURCES, "${FUZZ_UNSET}", "${FUZZ_UNSET:-}", "${FUZZ_UNSET:-${OTHER}}", "${"]
HOSTILE_STRINGS += ["$${X}", "../../../../etc/passwd", "/dev/zero", "0", "x" * 100_000]
HOSTILE_STRINGS += ["\u041a\u0410", "\ud800"]
HOSTILE_NUMBERS: list[Any] = [math.nan, math.inf, -math.inf, -1, 0, 10**100, -(10**100), 1e-320]
HOSTILE_NUMBERS += [2**63, True]
HOSTILE_VALUES: list[Any] = [None, [], [1, [2]], {}, {"a": 1}, "x", 1.5, *HOSTILE_NUMBERS[:4]]


def node_paths(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node below ``tree`` (mapping keys and list indices)."""
    if isinstance(tree, dict):
        items = list(tree.items())
    elif isinstance(tree, list):
        items = list(enumerate(tree))
    else:
        return []
    paths = []
    for key, value in items:
        paths += [(*path, key), *node_paths(value, (*path, key))]
    return paths
