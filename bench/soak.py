"""Soak: the daemon with live cameras, a flaky webhook receiver and SIGKILLs, for minutes.

``streamer run`` runs as a child process on ``--cameras`` live RTSP cameras (the real
GStreamer server of ``tests/support/rtsp.py``, one per camera, each looping the demo recording at
its own 25 frames per second) and posts every plate event to a webhook receiver on
localhost. The receiver answers 500 to a share of the requests (``--fail-share``) and, now
and then, is down (its port closed: connections refused) or slow (it answers after the
webhook's timeout) for 15 to 35 s. About every ``--kill-every-s`` seconds (±25%, seeded)
the daemon is SIGKILLed and started again, a few seconds later, on the same config, outbox
and events log; at the end it is stopped with SIGTERM and given time to drain its outbox.

Every 10 s: the daemon's resident memory (``VmRSS``), open file descriptors and threads
from ``/proc``, and its outbox depth from ``/metrics``.

*Vehicle passes.* An RTSP connection plays the recording from its start, so each camera's
``online`` status event (in the events log) fixes where the recording's timeline lies in
wall time, and the recording's manifest says when each vehicle's plate is in view. A pass
is *expected* when it was in view, and its final event due (``SETTLE_S`` later), while
its camera stayed online in one lifetime of the daemon; a pass cut by a kill, a camera
reconnection or the final stop is *at risk* (delivered or not, it is not counted as
lost). The receiver's accepted requests (2xx) are matched to passes by camera and the
event's ``first_seen``.

    .venv/bin/python bench/soak.py [--minutes 30] [--cameras 3] [--kill-every-s 240]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Protocol

import yaml
from aiohttp import web

from streamer.delivery.outbox import Outbox
from streamer.sources.demo import DemoManifest, render_video, seed_demo_dues
from streamer.stores.dues import SqlDues
from streamer.vision.hardware import this_machine

from common import ROOT, bench_config, tests_helper, write_section

#: Seconds between samples of the daemon's memory, descriptors, threads and outbox.
SAMPLE_EVERY_S = 10.0
#: A lifetime's memory "at start" is its first sample this long after it started.
WARM_UP_S = 60.0
#: A vehicle's final event is out this long after its plate left the view (the tracker's
#: ``lost_timeout_s`` of 1 s, then the reading).
SETTLE_S = 4.0
#: How far from a pass an event's ``first_seen`` may lie and still belong to it.
MATCH_TOLERANCE_S = 1.0
#: The webhook's timeout, and how long the receiver takes to answer when slow.
WEBHOOK_TIMEOUT_S, SLOW_ANSWER_S = 2.0, 3.0
#: How long the daemon may take to drain its outbox when stopped at the end.
DRAIN_S = 120.0
#: No kill and no receiver trouble this close to the end, so the last lifetime settles.
QUIET_END_S = 45.0


class StreamServer(Protocol):
    """What the soak uses of ``tests/support/rtsp.py``'s ``RtspServer``."""

    url: str

    def start(self, timeout: float = 20.0) -> None:
        """Start serving; return once it listens."""

    def stop(self) -> None:
        """Stop serving."""


@dataclass(frozen=True)
class Request:
    """One POST as the receiver answered it."""

    at: float  # when it was answered
    key: str  # its Idempotency-Key
    event: dict[str, Any]
    status: int
    slow: bool  # answered after the webhook's timeout

    @property
    def accepted(self) -> bool:
        """Whether the receiver answered 2xx (took the event)."""
        return 200 <= self.status < 300


class FlakyReceiver:
    """A webhook receiver on 127.0.0.1 in its own thread that misbehaves on purpose: it
    answers 500 to ``fail_share`` of the requests, and :meth:`set_mode` makes it ``down``
    (port closed) or ``slow`` (each answer after ``slow_s``). Records every answer."""

    def __init__(self, port: int, fail_share: float, slow_s: float, seed: int) -> None:
        self.port = port
        self.fail_share = fail_share
        self.slow_s = slow_s
        self.mode = "up"
        self._requests: list[Request] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the daemon posts."""
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def requests(self) -> list[Request]:
        """Every answered request so far, in order."""
        with self._lock:
            return list(self._requests)

    def start(self) -> FlakyReceiver:
        """Listen; returns once it does."""
        self._thread.start()
        self._call(self._open())
        return self

    def stop(self) -> None:
        """Close the port and end the thread."""
        if self._thread.is_alive():
            self._call(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def set_mode(self, mode: str) -> None:
        """``up``, ``down`` or ``slow`` from now on."""
        if mode == self.mode:
            return
        if mode == "down":
            self._call(self._close())
        elif self.mode == "down":
            self._call(self._open())
        self.mode = mode

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(30)

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # also drops the daemon's kept-alive connection
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        slow = self.mode == "slow"
        if slow:
            await asyncio.sleep(self.slow_s)
        status = 500 if self._rng.random() < self.fail_share else 200
        key = request.headers.get("Idempotency-Key", "")
        with self._lock:
            self._requests.append(Request(time.time(), key, json.loads(body), status, slow))
        return web.Response(status=status)


@dataclass(frozen=True)
class Spell:
    """A while in which the receiver is ``down`` or ``slow``."""

    mode: str
    start: float
    end: float


def receiver_spells(rng: random.Random, start: float, end: float) -> list[Spell]:
    """Spells of 15 to 35 s, down and slow in turn, 40 to 120 s apart, none near the end."""
    spells: list[Spell] = []
    at, mode = start + rng.uniform(20, 60), rng.choice(["down", "slow"])
    while True:
        length = rng.uniform(15, 35)
        if at + length > end - QUIET_END_S:
            return spells
        spells.append(Spell(mode, at, at + length))
        mode = "slow" if mode == "down" else "down"
        at += length + rng.uniform(40, 120)


@dataclass(frozen=True)
class Sample:
    """The daemon's process at one moment."""

    at: float
    rss_mb: float
    fds: int
    threads: int
    pending: int | None  # outbox deliveries waiting (None: /metrics did not answer)
    receiver: str


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

    def sample(self, receiver: str) -> None:
        """Note the process's memory, descriptors, threads and outbox depth."""
        if self._process is None or not self.running:
            return
        usage = process_usage(self._process.pid)
        if usage is not None:
            rss, fds, threads = usage
            pending = outbox_pending(self.http_port)
            sample = Sample(time.time(), rss, fds, threads, pending, receiver)
            self.lifetimes[-1].samples.append(sample)

    def close(self) -> None:
        """Kill whatever still runs (an interrupted soak)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


@dataclass
class Run:
    """What a soak leaves for the report."""

    minutes: float
    cameras: list[str]
    manifest: DemoManifest
    lifetimes: list[Lifetime]
    spells: list[Spell]
    requests: list[Request]
    records: list[dict[str, Any]]  # the events log, every line
    outbox: Counter[str]  # deliveries per state at the end
    detector: str
    log_problems: list[str]


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


def soak(args: argparse.Namespace, work: Path, rtsp: ModuleType) -> Run:
    """Run the soak in ``work``; every child process and thread is gone when it returns."""
    rng = random.Random(args.seed)
    print("rendering the demo recording ...", file=sys.stderr)
    manifest = render_video(work / "demo.mp4")
    seed_demo_dues(SqlDues(work / "dues.sqlite"))
    with ExitStack() as stack:
        servers: list[StreamServer] = []
        for number in range(1, args.cameras + 1):
            server: StreamServer = rtsp.RtspServer(manifest.path, mount=f"/cam-{number}", loop=True)
            server.start()
            stack.callback(server.stop)
            servers.append(server)
        receiver = FlakyReceiver(rtsp.free_port(), args.fail_share, SLOW_ANSWER_S, args.seed)
        receiver.start()
        stack.callback(receiver.stop)
        http_port = rtsp.free_port()
        cameras = [f"cam-{n}" for n in range(1, args.cameras + 1)]
        config = bench_config(
            work,
            cameras=[{"name": n, "source": s.url} for n, s in zip(cameras, servers, strict=True)],
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
        )
        config_file = work / "streamer.yaml"
        config_file.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
        daemon = Daemon(config_file, work / "daemon.log", http_port)
        stack.callback(daemon.close)

        started = time.time()
        end = started + args.minutes * 60
        spells = receiver_spells(rng, started, end)

        def note(message: str) -> None:
            print(f"[{time.time() - started:6.0f} s] {message}", file=sys.stderr)

        def next_kill(lifetime: Lifetime) -> float:
            at = lifetime.started + args.kill_every_s * rng.uniform(0.75, 1.25)
            return at if at < end - QUIET_END_S else math.inf

        kill_at, restart_at = next_kill(daemon.start()), math.inf
        next_sample = started + SAMPLE_EVERY_S
        note(f"daemon started; {len(cameras)} cameras, receiver spells: {len(spells)}")
        while (now := time.time()) < end:
            mode = next((s.mode for s in spells if s.start <= now < s.end), "up")
            if mode != receiver.mode:
                note(f"receiver {mode}")
                receiver.set_mode(mode)
            if daemon.exited():
                lifetime = daemon.lifetimes[-1]
                if lifetime.ended - lifetime.started < WARM_UP_S:
                    tail = daemon.log.read_text(errors="replace").splitlines()[-20:]
                    raise RuntimeError(f"the daemon {lifetime.how}:\n" + "\n".join(tail))
                note(f"daemon {lifetime.how}; starting it again")
                restart_at = now
            if daemon.running and now >= kill_at:
                daemon.kill()
                restart_at = now + rng.uniform(1.0, 5.0)
                note(f"SIGKILL lifetime {daemon.lifetimes[-1].number}")
            if not daemon.running and now >= restart_at:
                kill_at, restart_at = next_kill(daemon.start()), math.inf
                note(f"lifetime {daemon.lifetimes[-1].number} started")
            if now >= next_sample:
                daemon.sample(receiver.mode)
                next_sample += SAMPLE_EVERY_S
            time.sleep(0.2)
        receiver.set_mode("up")
        note("stopping the daemon (SIGTERM), letting it drain its outbox")
        daemon.stop(config.shutdown_timeout_s + DRAIN_S + 30)
        note(f"daemon {daemon.lifetimes[-1].how}")
        requests = receiver.requests
    with (work / "requests.jsonl").open("w") as file:  # for a look with --work
        for r in requests:
            line = {"at": r.at, "key": r.key, "status": r.status, "slow": r.slow, "event": r.event}
            file.write(json.dumps(line) + "\n")
    outbox = Outbox(config.outbox, config.webhooks)
    states: Counter[str] = Counter()
    for (_, state), count in outbox.counts().items():
        states[str(state)] += count
    records = [
        json.loads(line)
        for path in sorted(work.glob("events.jsonl*"), reverse=True)  # .2, .1, then current
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    log = (work / "daemon.log").read_text(errors="replace")
    found = re.search(r"plate detector \S+ on (\S+) (\S+)", log)
    problems = [
        line
        for line in log.splitlines()
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    ]
    return Run(
        args.minutes,
        cameras,
        manifest,
        daemon.lifetimes,
        spells,
        requests,
        records,
        states,
        f"{found[1]} {found[2]}" if found else "unknown",
        problems,
    )


def moment(text: str) -> float:
    """Unix time of an ISO-8601 timestamp of an event."""
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class Segment:
    """A camera online in one lifetime: its stream's timeline starts at ``online``."""

    camera: str
    lifetime: int
    online: float
    end: float


@dataclass
class Pass:
    """One vehicle in view of one online camera, and what the receiver took of it."""

    camera: str
    plate: str
    start: float
    end: float
    lifetime: int
    expected: bool
    event_ids: set[str] = field(default_factory=set)
    phases: set[str] = field(default_factory=set)
    final_plate: str | None = None

    def distance(self, at: float) -> float:
        """Seconds from ``at`` to this pass (0 within it)."""
        return max(self.start - at, at - self.end, 0.0)


def segments(records: list[dict[str, Any]], lifetimes: list[Lifetime]) -> list[Segment]:
    """When each camera was online, from its status events, within the lifetimes."""
    found: list[Segment] = []
    statuses = sorted(
        (moment(r["at"]), r["camera"], r["status"])
        for r in records
        if r.get("type") == "camera_status"
    )
    for index, (at, camera, status) in enumerate(statuses):
        lifetime = next((lt for lt in lifetimes if lt.contains(at)), None)
        if status != "online" or lifetime is None:
            continue
        later = (t for t, c, s in statuses[index + 1 :] if c == camera and s != "online")
        found.append(
            Segment(camera, lifetime.number, at, min(next(later, math.inf), lifetime.ended))
        )
    return found


def vehicle_passes(online: list[Segment], manifest: DemoManifest) -> list[Pass]:
    """The vehicles each camera had in view while online: its recording, from its start."""
    period = manifest.frame_count / manifest.fps
    passes: list[Pass] = []
    for segment in online:
        for loop in range(math.ceil((segment.end - segment.online) / period)):
            for vehicle, (first, last) in zip(manifest.vehicles, manifest.appearances, strict=True):
                start = segment.online + loop * period + first
                end = segment.online + loop * period + last
                if start < segment.end:
                    expected = end + SETTLE_S <= segment.end
                    passes.append(
                        Pass(segment.camera, vehicle.plate, start, end, segment.lifetime, expected)
                    )
    return passes


def match(passes: list[Pass], requests: list[Request]) -> list[Request]:
    """Note each accepted plate event on its pass; returns those that fit none."""
    by_camera: dict[str, list[Pass]] = defaultdict(list)
    for vehicle in sorted(passes, key=lambda p: p.start):
        by_camera[vehicle.camera].append(vehicle)
    starts = {camera: [p.start for p in found] for camera, found in by_camera.items()}
    unmatched = []
    for request in requests:
        event = request.event
        if not request.accepted or event.get("type") != "plate":
            continue
        seen = moment(event["first_seen"])
        candidates = by_camera.get(event["camera"], [])
        index = bisect_left(starts.get(event["camera"], []), seen)
        near = candidates[max(0, index - 1) : index + 1]
        best = min(near, key=lambda p: p.distance(seen), default=None)
        if best is None or best.distance(seen) > MATCH_TOLERANCE_S:
            unmatched.append(request)
            continue
        best.event_ids.add(event["event_id"])
        best.phases.add(event["phase"])
        if event["phase"] == "final":
            best.final_plate = event["plate_number"]
    return unmatched


def stats(values: list[float], unit: str = "") -> str:
    """``min-max`` of whole numbers."""
    return f"{min(values):.0f}-{max(values):.0f}{unit}" if values else "-"


def lifetime_rows(run: Run, passes: list[Pass], online: list[Segment]) -> list[str]:
    """One row per lifetime of the daemon, and one for the whole soak."""
    rows = []
    for lifetime in run.lifetimes:
        samples = lifetime.samples
        warm = next((s for s in samples if s.at - lifetime.started >= WARM_UP_S), None)
        last = samples[-1] if samples else None
        growth = f"{100 * (last.rss_mb / warm.rss_mb - 1):+.1f}%" if warm and last else "-"
        mine_online = [s for s in online if s.lifetime == lifetime.number]
        firsts = {s.camera: s.online for s in reversed(mine_online)}
        up = f"{max(firsts.values()) - lifetime.started:.1f}" if firsts else "never"
        mine = [p for p in passes if p.lifetime == lifetime.number]
        expected = [p for p in mine if p.expected]
        risky = [p for p in mine if not p.expected]
        rows.append(
            f"| {lifetime.number} | {lifetime.ended - lifetime.started:.0f} | {lifetime.how} "
            f"| {up} ({len(mine_online) - len(firsts)}) "
            f"| {f'{warm.rss_mb:.0f}' if warm else '-'} "
            f"| {stats([s.rss_mb for s in samples])} | {f'{last.rss_mb:.0f}' if last else '-'} "
            f"| {growth} | {stats([s.fds for s in samples])} "
            f"| {stats([s.threads for s in samples])} | {len(expected)} "
            f"| {sum(bool(p.event_ids) for p in expected)} "
            f"| {sum(not p.event_ids for p in expected)} "
            f"| {len(risky)} ({sum(bool(p.event_ids) for p in risky)}) |"
        )
    samples = [s for lifetime in run.lifetimes for s in lifetime.samples]
    first = next(
        (s for s in run.lifetimes[0].samples if s.at - run.lifetimes[0].started >= WARM_UP_S),
        None,
    )
    last = samples[-1] if samples else None
    growth = f"{100 * (last.rss_mb / first.rss_mb - 1):+.1f}%" if first and last else "-"
    expected = [p for p in passes if p.expected]
    risky = [p for p in passes if not p.expected]
    total = run.lifetimes[-1].ended - run.lifetimes[0].started
    rows.append(
        f"| all | {total:.0f} | {len(run.lifetimes) - 1} kills | - "
        f"| {f'{first.rss_mb:.0f}' if first else '-'} | {stats([s.rss_mb for s in samples])} "
        f"| {f'{last.rss_mb:.0f}' if last else '-'} | {growth} "
        f"| {stats([s.fds for s in samples])} | {stats([s.threads for s in samples])} "
        f"| {len(expected)} | {sum(bool(p.event_ids) for p in expected)} "
        f"| {sum(not p.event_ids for p in expected)} "
        f"| {len(risky)} ({sum(bool(p.event_ids) for p in risky)}) |"
    )
    return rows


def redeliveries(run: Run) -> Counter[str]:
    """Each repeated 2xx of one Idempotency-Key, by its cause: the receiver's answer came
    after the daemon's timeout (``slow``), or the daemon was killed between the receiver's
    answer and its record of it (``kill``); ``other`` would be a fault."""
    kills = [lt.ended for lt in run.lifetimes if lt.how == "SIGKILL"]
    accepted: dict[str, list[Request]] = defaultdict(list)
    for request in run.requests:
        if request.accepted:
            accepted[request.key].append(request)
    causes: Counter[str] = Counter()
    for answers in accepted.values():
        for first, again in itertools.pairwise(answers):
            if first.slow:
                causes["slow"] += 1
            elif any(first.at <= kill <= again.at for kill in kills):
                causes["kill"] += 1
            else:
                causes["other"] += 1
    return causes


def delivery_rows(run: Run, passes: list[Pass], unmatched: list[Request]) -> list[str]:
    """The vehicle passes and the webhook requests: what was expected, taken, repeated."""
    expected = [p for p in passes if p.expected]
    risky = [p for p in passes if not p.expected]
    delivered = [p for p in expected if p.event_ids]
    plates = {p.plate for p in passes}
    misread = [p for p in passes if p.final_plate and p.final_plate != p.plate]
    doubled = [p for p in passes if len(p.event_ids) > 1]
    logged = {f"{r['event_id']}:{r['phase']}" for r in run.records if r.get("type") == "plate"}
    accepted = [r for r in run.requests if r.accepted]
    keys = {r.key for r in accepted}
    first_answer: dict[str, Request] = {}
    for request in accepted:
        first_answer.setdefault(request.key, request)
    delays = sorted(r.at - moment(r.event["last_seen"]) for r in first_answer.values())
    causes = redeliveries(run)
    repeated = Counter(r.key for r in accepted)
    phases: dict[str, set[str]] = defaultdict(set)
    for request in accepted:
        if request.event.get("type") == "plate":
            phases[request.event["event_id"]].add(request.event["phase"])
    last = run.lifetimes[-1]
    orphans = [
        r.event
        for r in first_answer.values()
        if r.event.get("phase") == "early" and "final" not in phases[r.event["event_id"]]
    ]
    after_stop = sum(last.contains(moment(e["first_seen"])) for e in orphans)
    share = f"{100 * len(delivered) / len(expected):.1f}%" if expected else "-"
    unmatched_plates = ", ".join(sorted({r.event["plate_number"] for r in unmatched})) or "-"
    return [
        f"| vehicle passes in view of an online camera | {len(passes)} | "
        f"{len(plates)} plates, each camera's recording from its start at each connection |",
        f"| expected: in view and final event due within one lifetime | {len(expected)} | |",
        f"| expected and delivered (early or final event taken) | {len(delivered)} | {share} |",
        f"| expected, final event taken | {sum('final' in p.phases for p in expected)} | "
        f"early event taken for {sum('early' in p.phases for p in expected)} |",
        f"| **lost**: expected, nothing taken | **{len(expected) - len(delivered)}** | |",
        f"| vehicles with an early event taken and no final event | {len(orphans)} | "
        f"{after_stop} in the last lifetime, ended by SIGTERM (a killed lifetime's are "
        "sent at the next start) |",
        f"| at risk: cut by a kill, a camera reconnection or the final stop | {len(risky)} | "
        f"{sum(bool(p.event_ids) for p in risky)} of them delivered anyway |",
        f"| duplicated vehicles: one pass under two or more event_ids | {len(doubled)} | "
        "a second track of a vehicle in view would give its own event |",
        f"| final plate other than the vehicle's | {len(misread)} | "
        f"{', '.join(sorted({f'{p.plate}→{p.final_plate}' for p in misread})) or '-'} |",
        f"| plate events taken that fit no pass | {len(unmatched)} | {unmatched_plates} |",
        f"| plate events in the events log (event and phase) | {len(logged)} | |",
        f"| logged but never taken by the receiver | {len(logged - keys)} | |",
        f"| taken but not in the events log | {len(keys - logged)} | |",
        f"| requests to the receiver | {len(run.requests)} | "
        f"{sum(r.status == 500 for r in run.requests)} answered 500, "
        f"{sum(r.slow for r in run.requests)} answered after the timeout |",
        f"| Idempotency-Keys taken (2xx) | {len(keys)} | |",
        f"| keys taken more than once (at-least-once redelivery) | "
        f"{sum(n > 1 for n in repeated.values())} | {sum(causes.values())} repeats: "
        f"{causes['slow']} after a 2xx that came after the timeout, {causes['kill']} after a "
        f"kill between the receiver's 2xx and the outbox's record of it, "
        f"{causes['other']} other |",
        f"| outbox at the end: pending / dead | {run.outbox['pending']} / {run.outbox['dead']} "
        f"| {run.outbox['delivered']} delivered |",
        f"| delay, last sighting → first 2xx (p50 / p95 / max s) | "
        f"{percentile(delays, 50)} / {percentile(delays, 95)} / "
        f"{f'{delays[-1]:.1f}' if delays else '-'} | retries, receiver spells and restarts |",
    ]


def percentile(values: list[float], q: int) -> str:
    """The ``q``-th percentile of sorted ``values``, in seconds."""
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "-"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[q - 1]:.1f}"


def timeline_rows(run: Run, most: int = 40) -> list[str]:
    """The samples over time, at most ``most`` rows (every n-th sample)."""
    samples = [(lt.number, s) for lt in run.lifetimes for s in lt.samples]
    step = max(1, math.ceil(len(samples) / most))
    started = run.lifetimes[0].started
    rows = []
    for number, sample in samples[::step]:
        minutes, seconds = divmod(round(sample.at - started), 60)
        pending = "-" if sample.pending is None else str(sample.pending)
        rows.append(
            f"| {minutes}:{seconds:02d} | {number} | {sample.rss_mb:.0f} | {sample.fds} "
            f"| {sample.threads} | {pending} | {sample.receiver} |"
        )
    return rows


def plural(count: int, word: str) -> str:
    """``1 spell``, ``2 spells``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def report(run: Run, args: argparse.Namespace) -> str:
    """The markdown section."""
    online = segments(run.records, run.lifetimes)
    passes = vehicle_passes(online, run.manifest)
    unmatched = match(passes, run.requests)
    kills = sum(lt.how == "SIGKILL" for lt in run.lifetimes)
    down = [s for s in run.spells if s.mode == "down"]
    slow = [s for s in run.spells if s.mode == "slow"]
    period = run.manifest.frame_count / run.manifest.fps
    return "\n".join(
        [
            "## Soak",
            "",
            f"Measured by `bench/soak.py` on **{this_machine().describe()}**, detector in "
            f"{run.detector}: {run.minutes:g} minutes, {len(run.cameras)} live RTSP cameras, "
            f"each looping the demo recording ({len(run.manifest.vehicles)} vehicles every "
            f"{period:g} s) in real time. The daemon (`streamer run`, a child process) was "
            f"SIGKILLed {plural(kills, 'time')} (about every {args.kill_every_s:g} s ±25%, seed "
            f"{args.seed}) and started again 1 to 5 s later on the same config, outbox and "
            "events log, then stopped with SIGTERM. Its webhook receiver answered 500 to "
            f"{100 * args.fail_share:.0f}% of the requests, was down (connections refused) "
            f"{sum(s.end - s.start for s in down):.0f} s in {plural(len(down), 'spell')} and slow "
            f"(answering after the webhook's {WEBHOOK_TIMEOUT_S:g} s timeout) "
            f"{sum(s.end - s.start for s in slow):.0f} s in {plural(len(slow), 'spell')}.",
            "",
            f"Per lifetime: cameras online after (s; reconnections in brackets); RSS in MB, "
            f"*at start* {WARM_UP_S:g} s after the process started; growth from then to its "
            f"last sample; vehicle passes expected, delivered, lost and at risk (delivered in "
            f"brackets). A pass is expected when its plate was in view and its final event "
            f"due ({SETTLE_S:g} s after) while the camera was online in that lifetime.",
            "",
            "| lifetime | ran s | ended by | cameras online after | RSS at start | RSS min-max "
            "| RSS at end | growth | fds | threads | expected | delivered | lost | at risk |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *lifetime_rows(run, passes, online),
            "",
            "*Taken*: the receiver answered 2xx. A vehicle's early and final events share "
            "its event_id, and each has its own Idempotency-Key (`<event_id>:<phase>`). "
            "Delivery is at least once: a key is sent again when the daemon saw no 2xx for "
            "it (the answer came after its timeout, or it was killed before it recorded "
            "the answer), and receivers deduplicate on it. A duplicated vehicle, two "
            "event_ids for one pass, is what deduplication cannot undo.",
            "",
            "| | count | |",
            "|---|---|---|",
            *delivery_rows(run, passes, unmatched),
            "",
            f"Over time (every {SAMPLE_EVERY_S:g} s, or fewer rows): RSS in MB, open file "
            "descriptors, threads, deliveries pending in the outbox (from `/metrics`) and "
            "the receiver's state.",
            "",
            "| time | lifetime | RSS | fds | threads | outbox pending | receiver |",
            "|---|---|---|---|---|---|---|",
            *timeline_rows(run),
            "",
            f"Daemon log: {len(run.log_problems)} error lines or tracebacks.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes to run (30)")
    parser.add_argument("--cameras", type=int, default=3, help="live RTSP cameras (3)")
    parser.add_argument(
        "--kill-every-s", type=float, default=240.0, help="mean seconds between SIGKILLs (240)"
    )
    parser.add_argument(
        "--fail-share", type=float, default=0.2, help="share of requests answered 500 (0.2)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the kills and receiver spells (1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "PERFORMANCE.md",
        help="markdown file whose soak section is written (docs/PERFORMANCE.md)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the daemon's files here (default: a temporary folder, removed)",
    )
    args = parser.parse_args()
    if args.minutes <= 0 or args.cameras < 1 or args.kill_every_s <= 0:
        parser.error("--minutes, --cameras and --kill-every-s must be positive")
    if not 0 <= args.fail_share < 1:
        parser.error("--fail-share must be at least 0 and below 1")
    rtsp = tests_helper("rtsp")
    if reason := rtsp.gstreamer_available():
        print(f"soak: needs the RTSP server of tests/support/rtsp.py: {reason}", file=sys.stderr)
        return 2
    try:
        with interruptible(), ExitStack() as stack:
            if args.work:
                work = args.work.resolve()
                work.mkdir(parents=True, exist_ok=True)
            else:
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
            run = soak(args, work, rtsp)
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except RuntimeError as error:  # a server or the daemon did not start
        print(f"soak: {error}", file=sys.stderr)
        return 1
    text = report(run, args)
    write_section(args.out, "soak", text)
    print(text)
    for line in run.log_problems[:20]:
        print(f"daemon log: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
