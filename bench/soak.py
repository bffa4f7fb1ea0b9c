"""Soak: the daemon with live cameras, SIGKILLs and hard faults at every target, for minutes.

``streamer run`` runs as a child process on ``--cameras`` live RTSP cameras (the real
GStreamer server of ``tests/support/rtsp.py``, one per camera, each looping the demo recording at
its own 25 frames per second), and delivers every event to a webhook receiver and an MQTT
broker on localhost, and two rules' gate actions to two relays. About every
``--kill-every-s`` seconds (±25%, seeded) the daemon is SIGKILLed and started again, a few
seconds later, on the same config, outbox and events log; at the end it is stopped with
SIGTERM and given time to drain its outbox. Meanwhile (:mod:`soak_faults`; each fault can
be turned off):

- the webhook receiver answers 500 to a share of the requests (``--fail-share``) and, now
  and then, is down (its port closed) or slow (it answers after the webhook's timeout)
  for 15 to 35 s;
- the broker (real Mosquitto, ``--no-broker`` to leave it out) is reached through a proxy
  that, for spells of 15 to 35 s, drops every connection; one demo plate's events are
  larger than the broker takes (its dues message is 1,000 characters long): the poison,
  which must be dead-lettered, every other event published;
- one rule's action goes to a relay that accepts and never answers, another rule's to a
  healthy relay, which must get every vehicle's (``--no-hung-relay``);
- the outbox and the events log are on a tmpfs that is filled to the last byte for 15 to
  30 s now and then (``--no-disk``; mounting needs root).

Every 10 s: the daemon's resident memory (``VmRSS``), open file descriptors and threads
from ``/proc``, and its outbox depth from ``/metrics``.

The events are matched to *vehicle passes* (:mod:`soak_passes`): each camera's ``online``
status event fixes where the looping recording's timeline lies in wall time. A pass is
*expected* when its plate was in view, and its final event due, while its camera stayed
online in one lifetime of the daemon; a pass cut by a kill, a camera reconnection or the
final stop is *at risk*. The report (:mod:`soak_report`) counts the expected passes without
a final event in the events log, the logged events that never reached the webhook or the
broker, the expected vehicles the healthy relay never heard of, and the dead letters.

    .venv/bin/python bench/soak.py [--minutes 30] [--cameras 3] [--kill-every-s 240]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import DeliveryState
from streamer.sources.demo import render_video, seed_demo_dues
from streamer.stores.dues import SqlDues

from common import ROOT, tests_helper, write_section
from soak_daemon import DRAIN_S, Daemon, Lifetime, StreamServer, daemon_config, interruptible
from soak_faults import (
    POISON_MESSAGE,
    POISON_PLATE,
    QUIET_END_S,
    SLOW_ANSWER_S,
    DroppingBroker,
    Fault,
    FillingDisk,
    FlakyReceiver,
    Relays,
    draw_spells,
    mode_at,
)
from soak_report import (
    SAMPLE_EVERY_S,
    WARM_UP_S,
    Run,
    report,
)

#: Seconds before starting again a daemon that exited by itself (a start it refused).
RESTART_AFTER_EXIT_S = 5.0


def keep_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    """Write ``lines`` to ``path`` as JSON lines."""
    with path.open("w") as file:
        for line in lines:
            file.write(json.dumps(line) + "\n")


def soak(args: argparse.Namespace, work: Path, rtsp: ModuleType) -> Run:
    """Run the soak in ``work``; every child process and thread is gone when it returns."""
    rng = random.Random(args.seed)
    print("rendering the demo recording ...", file=sys.stderr)
    manifest = render_video(work / "demo.mp4")
    dues = SqlDues(work / "dues.sqlite")
    seed_demo_dues(dues)
    if args.broker:
        dues.set(POISON_PLATE, 350.0, POISON_MESSAGE)
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
        faults: list[Fault] = [receiver]
        broker = relays = disk = None
        if args.broker:
            broker = DroppingBroker(work / "broker").start()
            stack.callback(broker.stop)
            faults.append(broker)
        if args.hung_relay:
            relays = Relays().start()
            stack.callback(relays.stop)
        files = work
        if args.disk:
            disk = FillingDisk(work / "disk").start()
            stack.callback(disk.stop)
            faults.append(disk)
            files = disk.folder
        http_port = rtsp.free_port()
        cameras = {f"cam-{n}": s.url for n, s in enumerate(servers, start=1)}
        config = daemon_config(work, files, cameras, receiver, broker, relays, http_port)
        config_file = work / "streamer.yaml"
        config_file.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
        daemon = Daemon(config_file, work / "daemon.log", http_port)
        stack.callback(daemon.close)

        started = time.time()
        end = started + args.minutes * 60
        spells = draw_spells(rng, "receiver", ["down", "slow"], started, end)
        if broker is not None:
            broker_rng = random.Random(f"{args.seed}:broker")
            spells += draw_spells(broker_rng, "broker", ["drops"], started, end, gap=(60, 150))
        if disk is not None:
            disk_rng = random.Random(f"{args.seed}:disk")
            spells += draw_spells(
                disk_rng, "disk", ["full"], started, end, length=(15, 30), gap=(60, 150)
            )

        def note(message: str) -> None:
            print(f"[{time.time() - started:6.0f} s] {message}", file=sys.stderr)

        def next_kill(lifetime: Lifetime) -> float:
            at = lifetime.started + args.kill_every_s * rng.uniform(0.75, 1.25)
            return at if at < end - QUIET_END_S else math.inf

        def faults_on() -> str:
            return ", ".join(f"{f.name} {f.mode}" for f in faults if f.mode != "up") or "-"

        kill_at, restart_at = next_kill(daemon.start()), math.inf
        next_sample = started + SAMPLE_EVERY_S
        counts = Counter(s.fault for s in spells)
        note(f"daemon started; {len(cameras)} cameras; spells: {dict(counts)}")
        while (now := time.time()) < end:
            for fault in faults:
                if (mode := mode_at(spells, fault.name, now)) != fault.mode:
                    note(f"{fault.name} {mode}")
                    fault.set_mode(mode)
            if daemon.exited():
                lifetime = daemon.lifetimes[-1]
                tail = daemon.log.read_text(errors="replace").splitlines()[-20:]
                if lifetime.number == 1 and lifetime.ended - lifetime.started < WARM_UP_S:
                    raise RuntimeError(f"the daemon {lifetime.how}:\n" + "\n".join(tail))
                note(f"daemon {lifetime.how} ({tail[-1] if tail else ''}); starting it again")
                restart_at = now + RESTART_AFTER_EXIT_S
            if daemon.running and now >= kill_at:
                daemon.kill()
                restart_at = now + rng.uniform(1.0, 5.0)
                note(f"SIGKILL lifetime {daemon.lifetimes[-1].number}")
            if not daemon.running and now >= restart_at:
                kill_at, restart_at = next_kill(daemon.start()), math.inf
                note(f"lifetime {daemon.lifetimes[-1].number} started")
            if now >= next_sample:
                daemon.sample(faults_on())
                next_sample += SAMPLE_EVERY_S
            time.sleep(0.2)
        for fault in faults:
            fault.set_mode("up")
        note("stopping the daemon (SIGTERM), letting it drain its outbox")
        daemon.stop(config.shutdown_timeout_s + DRAIN_S + 30)
        note(f"daemon {daemon.lifetimes[-1].how}")
        time.sleep(1.0)  # the broker passes the last messages on to its subscriber
        requests = receiver.requests
        published = broker.published() if broker is not None else None
        relay_calls = relays.calls() if relays is not None else None
        hung = relays.hung_connections if relays is not None else 0
        broker_connections = broker.connections if broker is not None else 0
        kept = work / "files-at-end"
        if disk is not None:  # the tmpfs goes with the stack: keep what the daemon left
            shutil.copytree(
                files, kept, ignore=shutil.ignore_patterns(".filler"), dirs_exist_ok=True
            )
            files = kept
    # What each target got, for a look with --work.
    keep_lines(work / "requests.jsonl", [dataclasses.asdict(r) for r in requests])
    keep_lines(work / "published.jsonl", [dataclasses.asdict(m) for m in published or []])
    keep_lines(work / "relay.jsonl", [dataclasses.asdict(c) for c in relay_calls or []])
    outbox_config = config.outbox.model_copy(update={"database": files / "outbox.sqlite"})
    outbox = Outbox(outbox_config, config.delivery_targets, create=False)
    states: Counter[tuple[str, str]] = Counter()
    for (target, state), count in outbox.counts().items():
        states[target, str(state)] += count
    dead = [
        (d.target, d.key, d.last_error or "")
        for d in outbox.list(DeliveryState.DEAD, limit=1_000_000)
    ]
    outbox.close()
    logs = sorted(files.glob("events.jsonl*"), reverse=True)  # .2, .1, then the current
    records = [
        json.loads(line)
        for path in logs
        if re.fullmatch(r"events\.jsonl(\.\d+)?", path.name)  # not the .held file
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    log = (work / "daemon.log").read_text(errors="replace").splitlines()
    found = next(
        (
            re.search(r"plate detector \S+ on (\S+) (\S+)", line)
            for line in log
            if "plate detector" in line
        ),
        None,
    )
    return Run(
        minutes=args.minutes,
        cameras=list(cameras),
        manifest=manifest,
        lifetimes=daemon.lifetimes,
        spells=spells,
        requests=requests,
        records=records,
        outbox=states,
        dead=dead,
        detector=f"{found[1]} {found[2]}" if found else "unknown",
        log=log,
        mqtt_target=config.mqtt.label if config.mqtt is not None else None,
        published=published,
        broker_connections=broker_connections,
        relay_calls=relay_calls,
        hung_connections=hung,
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
        "--seed", type=int, default=1, help="seed of the kills and fault spells (1)"
    )
    parser.add_argument(
        "--broker",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="an MQTT broker that drops every connection for spells, and a poison event (on)",
    )
    parser.add_argument(
        "--hung-relay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a rule whose relay never answers, beside one whose relay is healthy (on)",
    )
    parser.add_argument(
        "--disk",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the outbox and events log on a tmpfs that fills for spells; needs root (on)",
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
    except RuntimeError as error:  # a server, the disk or the daemon did not start
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
