"""The processes of the soak: the daemon under soak (``streamer run`` as a child process
on the config of :func:`daemon_config`, started again after each SIGKILL, and what
``/proc`` and ``/metrics`` say about it every few seconds), the RTSP servers it reads, and
the soak's own end on SIGTERM."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from streamer.config import Config

from common import bench_config
from soak_faults import (
    TOPIC_PREFIX,
    WEBHOOK_TIMEOUT_S,
    DroppingBroker,
    FlakyReceiver,
    Relays,
)

#: How long the daemon may take to drain its outbox when stopped at the end.
DRAIN_S = 120.0


#: A rule action's timeout (the hung relay's actions end so).
ACTION_TIMEOUT_S = 5.0


def daemon_config(
    work: Path,
    files: Path,
    cameras: dict[str, str],
    receiver: FlakyReceiver,
    broker: DroppingBroker | None,
    relays: Relays | None,
    http_port: int,
) -> Config:
    """The daemon's config: its outbox and events log in ``files``, the rest in ``work``."""
    settings: dict[str, Any] = {}
    if broker is not None:
        settings["mqtt"] = {
            "url": broker.url,
            "topic_prefix": TOPIC_PREFIX,
            "timeout_s": 5,
            "reconnect_max_s": 10,
        }
    if relays is not None:
        settings["rules"] = relays.rules(ACTION_TIMEOUT_S)
    config = bench_config(
        work,
        cameras=[{"name": name, "source": url} for name, url in cameras.items()],
        # The recording loops every 21 s: each pass of a vehicle is its own event.
        dedup={"window_s": 10.0},
        webhooks=[
            {
                "url": receiver.url,
                "name": "soak",
                "timeout_s": WEBHOOK_TIMEOUT_S,
                "retry_initial_s": 1.0,
                "retry_max_s": 10.0,
            }
        ],
        outbox={"drain_timeout_s": DRAIN_S},
        http={"enabled": True, "port": http_port},
        **settings,
    )
    return config.model_copy(
        update={
            "events_log": files / "events.jsonl",
            "outbox": config.outbox.model_copy(update={"database": files / "outbox.sqlite"}),
        }
    )


@dataclass(frozen=True)
class Sample:
    """The daemon's process at one moment."""

    at: float
    rss_mb: float
    fds: int
    threads: int
    pending: int | None  # outbox deliveries waiting (None: /metrics did not answer)
    faults: str  # the faults on at that moment ("-": none)


@dataclass
class Lifetime:
    """One run of the daemon's process, from its start to its kill or stop."""

    number: int
    started: float
    ended: float = math.inf
    how: str = "running"
    samples: list[Sample] = field(default_factory=list)

    def contains(self, moment: float) -> bool:
        """Whether the process ran at ``moment``."""
        return self.started <= moment < self.ended


def process_usage(pid: int) -> tuple[float, int, int] | None:
    """Resident memory (MB), open file descriptors and threads of ``pid``, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    exiting = fields.get("State", "").strip()[:1] in ("Z", "X")
    if "VmRSS" not in fields or exiting or fields["VmRSS"].split()[0] == "0":
        return None  # exiting: its memory is being released
    return int(fields["VmRSS"].split()[0]) / 1024, fds, int(fields["Threads"])


def outbox_pending(port: int) -> int | None:
    """Deliveries pending in the daemon's outbox, from its ``/metrics``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    return sum(
        round(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("streamer_outbox_depth{") and 'state="pending"' in line
    )


class Daemon:
    """``streamer run`` on one config, started again after each kill; its output is
    appended to ``log``."""

    def __init__(self, config_file: Path, log: Path, http_port: int) -> None:
        self.config_file = config_file
        self.log = log
        self.http_port = http_port
        self.lifetimes: list[Lifetime] = []
        self._process: subprocess.Popen[bytes] | None = None
        script = Path(sys.executable).with_name("streamer")
        self._command = [str(script)] if script.exists() else [sys.executable, "-m", "streamer"]

    @property
    def running(self) -> bool:
        """Whether a lifetime is open (its process may have exited by itself since)."""
        return bool(self.lifetimes) and self.lifetimes[-1].ended == math.inf

    def start(self) -> Lifetime:
        """A new process on the same config."""
        lifetime = Lifetime(len(self.lifetimes) + 1, time.time())
        with self.log.open("ab") as log:
            log.write(f"--- lifetime {lifetime.number}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [*self._command, "run", "--config", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config_file.parent,
                start_new_session=True,  # Ctrl-C reaches this script, which cleans up
            )
        self.lifetimes.append(lifetime)
        return lifetime

    def kill(self) -> None:
        """SIGKILL the process."""
        if self._process is not None and self.running:
            self.lifetimes[-1].ended, self.lifetimes[-1].how = time.time(), "SIGKILL"
            self._process.kill()
            self._process.wait()

    def stop(self, timeout: float) -> None:
        """SIGTERM, and SIGKILL after ``timeout`` seconds."""
        if self._process is None or not self.running:
            return
        lifetime = self.lifetimes[-1]
        lifetime.ended = time.time()
        self._process.terminate()
        try:
            lifetime.how = f"SIGTERM (exit {self._process.wait(timeout)})"
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            lifetime.how = f"SIGTERM, SIGKILL after {timeout:.0f} s"

    def exited(self) -> bool:
        """Whether the process of the open lifetime has ended by itself (then closed)."""
        if self._process is None or not self.running or self._process.poll() is None:
            return False
        self.lifetimes[-1].ended = time.time()
        self.lifetimes[-1].how = f"exited {self._process.returncode} by itself"
        return True

    def sample(self, faults: str) -> None:
        """Note the process's memory, descriptors, threads and outbox depth."""
        if self._process is None or not self.running:
            return
        usage = process_usage(self._process.pid)
        if usage is not None:
            rss, fds, threads = usage
            pending = outbox_pending(self.http_port)
            sample = Sample(time.time(), rss, fds, threads, pending, faults)
            self.lifetimes[-1].samples.append(sample)

    def close(self) -> None:
        """Kill whatever still runs (an interrupted soak)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class StreamServer(Protocol):
    """What the soak uses of ``tests/support/rtsp.py``'s ``RtspServer``."""

    url: str

    def start(self, timeout: float = 20.0) -> None:
        """Start serving; return once it listens."""

    def stop(self) -> None:
        """Stop serving."""


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM ends the soak as Ctrl-C does (so every ``finally`` cleans up)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
