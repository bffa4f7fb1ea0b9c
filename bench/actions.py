"""How soon a plate reaches what acts on it: the MQTT subscriber, and a rule's HTTP and
MQTT actions (a gate relay, a barrier topic).

The daemon runs in-process on ``--cameras`` cameras, each replaying the demo recording in
real time (``realtime: true``: frames released at their media time, as a camera sends
them), with Debian's Mosquitto on a free port, a local HTTP server as the relay, and a
rule that fires for every demo plate (all five are on a ``residents`` list). A sink behind
the events log notes when each event was logged; the subscriber and the relay note when
each message or request arrives. Latencies are from the event's line in the log (the
outbox commit comes just before it), and, for the rule's actions, also from the last
frame the early read was made from (``last_seen``).

    .venv/bin/python bench/actions.py [--cameras 4] [--runs 2] [--out docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from streamer.events import Event, PlateEvent
from streamer.node import ServiceOptions
from streamer.service import Service
from streamer.sources.demo import DEMO_VEHICLES, render_video
from streamer.stores.lists import SqlLists
from streamer.vision.hardware import this_machine

from common import ROOT, bench_config, tests_helper, write_section


class Clock:
    """A sink behind the events log: when each plate event was logged, and the event."""

    def __init__(self) -> None:
        self.logged: dict[str, tuple[float, PlateEvent]] = {}

    def send(self, event: Event) -> None:
        if isinstance(event, PlateEvent):
            self.logged[event.key] = (time.time(), event)


def run_once(
    work: Path, cameras: int, broker: Any, relay: Any, mqtt: Any
) -> dict[str, list[float]]:
    """One daemon run; each path's latencies in seconds."""
    video = render_video(work / "demo.mp4")
    lists = SqlLists(work / "dues.sqlite", {"residents": None})
    for vehicle in DEMO_VEHICLES:
        lists.add("residents", vehicle.plate)
    relay_url = relay.url.replace("/hook", "/relay/{camera}?key={event_id}:{phase}")
    config = bench_config(
        work,
        cameras=[
            {"name": f"gate-{n}", "source": str(video.path), "realtime": True}
            for n in range(1, cameras + 1)
        ],
        lists={"residents": None},
        mqtt={"url": broker.url, "timeout_s": 5},
        rules=[
            {
                "name": "open-gate",
                "when": {"lists": ["residents"]},
                "do": [
                    {"http": {"url": relay_url, "method": "GET"}},
                    {"mqtt": {"topic": "gate/{camera}/open", "payload": "{event_id}:{phase}"}},
                ],
            }
        ],
    )
    clock = Clock()
    with mqtt.Subscriber(broker) as subscriber:
        options = ServiceOptions(install_signal_handlers=False, extra_sinks=[clock])
        asyncio.run(Service(config, options).run())
        time.sleep(1.0)
        messages = subscriber.messages()
    latencies: dict[str, list[float]] = {
        "event → MQTT plate message": [],
        "event → rule HTTP action": [],
        "event → rule MQTT action": [],
        "frame → rule HTTP action": [],
    }
    for message in messages:
        if message.topic.endswith("/plate"):
            record = json.loads(message.text)
            key = f"{record['event_id']}:{record['phase']}"
            latencies["event → MQTT plate message"].append(message.at - clock.logged[key][0])
        elif message.topic.startswith("gate/"):
            latencies["event → rule MQTT action"].append(message.at - clock.logged[message.text][0])
    for call in relay.relay_calls:
        logged, event = clock.logged[call.query["key"]]
        latencies["event → rule HTTP action"].append(call.at - logged)
        latencies["frame → rule HTTP action"].append(call.at - event.last_seen.timestamp())
    relay.relay_calls.clear()
    return latencies


def table(latencies: dict[str, list[float]], cameras: int, runs: int) -> str:
    """The markdown section: one row per path."""
    rows = [
        "| from → to | samples | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for path, values in latencies.items():
        if len(values) < 2:
            rows.append(f"| {path} | {len(values)} | n/a | n/a | n/a |")
            continue
        p95 = statistics.quantiles(values, n=20)[-1]
        rows.append(
            f"| {path} | {len(values)} | {statistics.median(values) * 1000:.1f} "
            f"| {p95 * 1000:.1f} | {max(values) * 1000:.1f} |"
        )
    return "\n".join(
        [
            "## Rule actions and MQTT",
            "",
            f"Measured by `bench/actions.py` on **{this_machine().describe()}**, "
            f"{datetime.now():%Y-%m-%d}: {cameras} cameras each replaying the demo recording "
            f"in real time, {runs} run(s); Mosquitto and the relay on the same machine. "
            "*Event*: the event's line in the events log (just after its outbox commit). "
            "*Frame*: the last frame of the vehicle that its early read was made from.",
            "",
            *rows,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    args = parser.parse_args()
    mqtt, receiver, rtsp = (tests_helper(name) for name in ("mosquitto", "receiver", "rtsp"))
    if reason := mqtt.mosquitto_missing():
        print(f"actions: {reason}", file=sys.stderr)
        return 1
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as scratch:
        relay = receiver.Receiver(rtsp.free_port()).start()
        try:
            with mqtt.Broker(Path(scratch) / "broker") as broker:
                for run in range(args.runs):
                    work = Path(scratch) / f"run-{run}"
                    work.mkdir()
                    for path, values in run_once(work, args.cameras, broker, relay, mqtt).items():
                        totals.setdefault(path, []).extend(values)
        finally:
            relay.stop()
    text = table(totals, args.cameras, args.runs)
    print(text)
    write_section(args.out, "actions", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
