"""A cluster on one machine: how cameras spread over 1, 2 and 3 nodes, how long failover
takes over repeated SIGKILLs, what reaches the webhook receiver, and the database load.

Real components: Debian's PostgreSQL made in a temporary folder, ``--cameras`` RTSP
cameras of ``tests/support/rtsp.py`` looping the demo recording, ``streamer run`` nodes as
processes, and the webhook receiver of ``tests/support/receiver.py``.

1. **Spread**: the nodes start one by one; after each, the cameras each node holds once
   they have settled, and how many moved.
2. **Kills**, ``--kills`` times: the node holding the most cameras is killed with SIGKILL;
   *failover* is the time until every camera is online again on the live nodes (the
   nodes' own ``/api/cameras``). The killed node is then started again and the cameras
   rebalance before the next kill.
3. **Delivery**: at the end every node is stopped with SIGTERM and started once more
   without cameras to deliver what its outbox kept. *Lost*: final plate events in the
   nodes' events logs that the receiver never got; *duplicates*: requests the receiver got
   more than once for one ``Idempotency-Key``; *double reports*: a camera's plate reported
   under two event ids less than ``--window`` seconds apart (a vehicle in view while its
   camera moved: each node saw it).
4. **Database load**: transactions per second per camera while the three nodes run, from
   PostgreSQL's own counters (``pg_stat_database``).

    .venv/bin/python bench/cluster.py [--kills 10] [--lease-s 5] [--cameras 6]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
import yaml

from streamer.sources.demo import render_video
from streamer.vision.hardware import this_machine

from common import ROOT, tests_helper, write_section


class Node:
    """One ``streamer run`` process of the cluster, restartable under the same name."""

    def __init__(self, name: str, folder: Path, settings: dict[str, Any], port: int) -> None:
        self.name = name
        self.folder = folder
        self.port = port
        self.config = folder / "streamer.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(settings))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: Path | None = None) -> None:
        with (self.folder / "stderr.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamer", "run", "--config", str(config or self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.process is None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def holders(nodes: list[Node]) -> dict[str, str]:
    """Each online camera and the node reading it, as the first live node's API says."""
    for node in nodes:
        if not node.alive:
            continue
        with contextlib.suppress(requests.RequestException, ValueError):
            answer = requests.get(f"{node.url}/api/cameras", timeout=5).json()
            return {c["name"]: c["node"] for c in answer["cameras"] if c.get("status") == "online"}
    return {}


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held.

    Raises:
        TimeoutError: when it did not within ``timeout``.
    """
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic() - started


def spread(nodes: list[Node], cameras: list[str], timeout: float) -> list[dict[str, int]]:
    """Start the nodes one by one; each time, the cameras per node once settled."""
    counts: list[dict[str, int]] = []
    for index, node in enumerate(nodes, start=1):
        node.start()
        running = nodes[:index]
        even = {len(cameras) // index, -(-len(cameras) // index)}

        def settled(running: list[Node] = running, even: set[int] = even) -> bool:
            held = holders(running)
            per_node = Counter(held.values())
            return (
                set(held) == set(cameras)
                and set(per_node) == {n.name for n in running}
                and set(per_node.values()) <= even
            )

        wait_for(settled, timeout)
        counts.append(dict(sorted(Counter(holders(running).values()).items())))
    return counts


def transactions(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    postgres, rtsp, receiver_module = (tests_helper(n) for n in ("postgres", "rtsp", "receiver"))
    if reason := postgres.postgres_missing():
        raise SystemExit(f"cluster: {reason}")
    video = render_video(work / "demo.mp4")
    results: dict[str, Any] = {}
    with postgres.PostgresServer() as server, contextlib.ExitStack() as stack:
        url = server.new_database()
        streams = []
        for number in range(1, args.cameras + 1):
            stream = rtsp.RtspServer(video.path, loop=True, mount=f"/cam{number}")
            stream.start()
            stack.callback(stream.stop)
            streams.append(stream)
        receiver = receiver_module.Receiver(rtsp.free_port()).start()
        stack.callback(receiver.stop)
        cameras = [f"cam-{n}" for n in range(1, args.cameras + 1)]
        nodes = []
        for name in ("n1", "n2", "n3"):
            folder = work / name
            settings = {
                "cameras": [
                    {"name": camera, "source": stream.url}
                    for camera, stream in zip(cameras, streams, strict=True)
                ],
                "cluster": {"database": url, "node": name, "lease_s": args.lease_s},
                "http": {"enabled": True, "port": rtsp.free_port()},
                "events_log": str(folder / "events.jsonl"),
                "dues": {"database": str(folder / "dues.sqlite")},  # the drain run's
                "outbox": {"database": str(folder / "outbox.sqlite")},
                "recordings": {"directory": str(work / "evidence")},
                "webhooks": [{"url": receiver.url, "retry_initial_s": 0.5, "retry_max_s": 2}],
            }
            nodes.append(Node(name, folder, settings, settings["http"]["port"]))
        stack.callback(lambda: [node.stop(signal.SIGKILL) for node in nodes if node.alive])
        results["spread"] = spread(nodes, cameras, timeout=120)
        before, started = transactions(url), time.monotonic()
        time.sleep(args.load_s)
        load = (transactions(url) - before) / (time.monotonic() - started) / len(cameras)
        results["transactions_per_camera_s"] = load
        failovers: list[float] = []
        for kill in range(args.kills):
            held = Counter(holders(nodes).values())
            victim = next(n for n in nodes if n.name == max(sorted(held), key=held.__getitem__))
            victim.stop(signal.SIGKILL)
            live = [n for n in nodes if n.alive]

            def recovered(live: list[Node] = live, gone: str = victim.name) -> bool:
                held = holders(live)
                return set(held) == set(cameras) and gone not in held.values()

            failovers.append(wait_for(recovered, args.lease_s + 60))
            print(f"kill {kill + 1}: {victim.name}, failover {failovers[-1]:.1f} s", flush=True)
            victim.start()

            def balanced() -> bool:
                held = holders(nodes)
                return len(held) == len(cameras) and len(set(held.values())) == len(nodes)

            wait_for(balanced, 120)
        results["failovers"] = failovers
        for node in nodes:
            node.stop(signal.SIGTERM)
        for node in nodes:  # deliver what each outbox kept, then stop
            (node.folder / "drain.yaml").write_text(
                yaml.safe_dump(
                    {
                        **yaml.safe_load(node.config.read_text()),
                        "cameras": [{"name": "none", "source": "none.mp4", "enabled": False}],
                        "cluster": None,
                        "http": {"enabled": False},
                    }
                )
            )
            node.start(node.folder / "drain.yaml")
            assert node.process is not None
            node.process.wait(120)
        results.update(delivery(nodes, receiver, args.window))
    return results


def delivery(nodes: list[Node], receiver: Any, window: float) -> dict[str, Any]:
    """Lost, duplicated and doubly reported events, from the logs and the receiver."""
    logged: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for line in (node.folder / "events.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record.get("type") == "plate" and record.get("phase") == "final":
                logged[f"{record['event_id']}:final"] = record
    keys = Counter(r.headers["Idempotency-Key"] for r in receiver.requests)
    received = {key for key in keys if key.endswith(":final")}
    double = 0
    by_plate: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for record in logged.values():
        seen = datetime.fromisoformat(record["first_seen"].replace("Z", "+00:00")).timestamp()
        by_plate.setdefault((record["camera"], record["plate_number"]), []).append(
            (seen, record["event_id"])
        )
    for sightings in by_plate.values():
        sightings.sort()
        double += sum(
            1
            for (t0, id0), (t1, id1) in itertools.pairwise(sightings)
            if id0 != id1 and t1 - t0 < window
        )
    return {
        "events": len(logged),
        "lost": len(set(logged) - received),
        "duplicates": sum(count - 1 for count in keys.values() if count > 1),
        "double_reports": double,
    }


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    failovers = results["failovers"]
    spread_rows = [
        f"| {index} | {', '.join(f'{n}: {c}' for n, c in counts.items())} |"
        for index, counts in enumerate(results["spread"], start=1)
    ]
    return "\n".join(
        [
            "## Cluster",
            "",
            f"Measured by `bench/cluster.py` on **{this_machine().describe()}**, "
            f"{datetime.now():%Y-%m-%d}: PostgreSQL (Debian's), {args.cameras} RTSP cameras "
            f"looping the demo recording, three `streamer run` nodes, `lease_s: "
            f"{args.lease_s:g}`, all on this machine.",
            "",
            "| nodes | cameras per node |",
            "|---|---|",
            *spread_rows,
            "",
            "| kills | failover p50 s | failover max s | final events | lost | duplicate "
            "deliveries | double reports | DB transactions per camera per s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {len(failovers)} | {statistics.median(failovers):.1f} | {max(failovers):.1f} "
            f"| {results['events']} | {results['lost']} | {results['duplicates']} "
            f"| {results['double_reports']} | {results['transactions_per_camera_s']:.2f} |",
            "",
            "*Failover*: from the SIGKILL until every camera is online on the live nodes. "
            "*Lost*: final events in the nodes' logs the receiver never got (each node is "
            "started again at the end to deliver its outbox). *Double reports*: a camera's "
            f"plate under two event ids within {args.window:g} s (a vehicle in view while "
            "its camera moved).",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease-s", type=float, default=5.0)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--load-s", type=float, default=30.0, help="seconds of load counted")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        results = run(args, Path(scratch))
    text = table(results, args)
    print(text)
    write_section(args.out, "cluster", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
