"""The soak's report: per lifetime of the daemon, its memory and the vehicle passes it
saw; what each target got of the events the events log has, faults and all; and the
daemon's process over time (a markdown section of docs/PERFORMANCE.md)."""

from __future__ import annotations

import argparse
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from streamer.sources.demo import DemoManifest
from streamer.vision.hardware import this_machine

from soak_daemon import Lifetime
from soak_faults import (
    DISK_SIZE,
    MAX_PACKET_SIZE,
    POISON_MESSAGE,
    POISON_PLATE,
    TOPIC_PREFIX,
    WEBHOOK_TIMEOUT_S,
    GateCall,
    Published,
    Request,
    Spell,
)
from soak_passes import (
    SETTLE_S,
    Pass,
    PassFinder,
    Segment,
    held_at_kill,
    match_logged,
    match_relayed,
    match_taken,
    segments,
    vehicle_passes,
)
from soak_webhook import delivery_rows

#: Seconds between samples of the daemon's memory, descriptors, threads and outbox.
SAMPLE_EVERY_S = 10.0
#: A lifetime's memory "at start" is its first sample this long after it started.
WARM_UP_S = 60.0


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
    outbox: Counter[tuple[str, str]]  # deliveries per target and state at the end
    dead: list[tuple[str, str, str]]  # the dead letters: target, key, last error
    detector: str
    log: list[str]  # the daemon's log, every line
    #: The broker's target name in the outbox, and the plate messages its subscriber got
    #: (None: no broker).
    mqtt_target: str | None = None
    published: list[Published] | None = None
    broker_connections: int = 0
    #: The healthy relay's calls (when, ``<event_id>:<phase>``), and the connections the
    #: hung relay holds (None: no relays).
    relay_calls: list[GateCall] | None = None
    hung_connections: int = 0

    @property
    def log_problems(self) -> list[str]:
        """The daemon's error lines and tracebacks."""
        return [
            line
            for line in self.log
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
        ]


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
            f"| {sample.threads} | {pending} | {sample.faults} |"
        )
    return rows


def plural(count: int, word: str) -> str:
    """``1 spell``, ``2 spells``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def key_of(event: dict[str, Any]) -> str:
    """``<event_id>:<phase>``: the webhook's Idempotency-Key."""
    return f"{event['event_id']}:{event['phase']}"


def fault_rows(run: Run, passes: list[Pass], relay_strays: int) -> list[str]:
    """What the faults did to the events: each expected pass in the events log, each
    logged event at each target (the poison's MQTT deliveries dead-lettered), each
    vehicle's gate action at the healthy relay."""
    expected = [p for p in passes if p.expected]
    plates = [r for r in run.records if r.get("type") == "plate"]
    logged = Counter(key_of(r) for r in plates)
    poison = {key_of(r) for r in plates if r["dues_result"]["message"] == POISON_MESSAGE}
    taken = {r.key for r in run.requests if r.accepted}
    missing = [p for p in expected if "final" not in p.logged]
    at_risk = [p for p in passes if p.held]
    rows = [
        f"| vehicle passes expected | {len(expected)} | in view, and the final event due, "
        "while the camera was online in one lifetime |",
        f"| **events missing from the events log**: expected passes without a final event "
        f"| **{len(missing)}** | {sum('early' in p.logged for p in missing)} of them with an "
        "early event logged |",
        f"| plate events in the events log (event and phase) | {len(logged)} | "
        f"{sum(n > 1 for n in logged.values())} logged more than once |",
        f"| **lost webhook deliveries**: logged, never taken (2xx) | "
        f"**{len(set(logged) - taken)}** | |",
    ]
    if any(s.fault == "disk" for s in run.spells):
        rows.append(
            f"| at risk: passes whose final event was due while the disk was full, in a "
            f"lifetime SIGKILLed before it was freed | {len(at_risk)} | not expected: what "
            "neither the events log nor the outbox can take waits in memory; "
            f"{sum('final' in p.logged for p in at_risk)} final events logged all the same, "
            f"{sum(p.relayed for p in at_risk)} gate actions made |"
        )
    if run.published is not None:
        received = Counter(m.key for m in run.published)
        lost = set(logged) - poison - set(received)
        rows += [
            f"| the poison's: events of {POISON_PLATE}, larger than the broker takes | "
            f"{len(poison)} | its dues message of {len(POISON_MESSAGE):,} characters; "
            f"{len(poison & set(received))} of them reached the broker's subscriber |",
            f"| **lost MQTT deliveries**: logged, not the poison's, never on "
            f"`{TOPIC_PREFIX}/+/plate` | **{len(lost)}** | {sum(n > 1 for n in received.values())} "
            f"received more than once (at-least-once, after a dropped connection) |",
        ]
    if run.relay_calls is not None:
        unrelayed = [p for p in expected if not p.relayed]
        failed = sum("rule open-gate:" in line and " failed" in line for line in run.log)
        rows.append(
            f"| **lost gate actions**: expected passes without a call at the healthy relay "
            f"| **{len(unrelayed)}** | {len(run.relay_calls)} calls, {relay_strays} fit no "
            f"pass; {failed} failed; the hung relay holds {run.hung_connections} "
            "connections, none answered |"
        )
    dead = {(target, key) for target, key, _ in run.dead}
    poison_dead = {(run.mqtt_target, key) for key in poison} & dead
    others = sorted(
        {
            f"{target} {error[:80]}"
            for target, key, error in run.dead
            if (target, key) not in poison_dead
        }
    )
    rows.append(
        f"| dead letters | {len(run.dead)} | {len(poison_dead)} the poison's MQTT deliveries "
        f"(of {len(poison)}), {len(dead - poison_dead)} others{': ' if others else ''}"
        f"{'; '.join(others[:3])} |"
    )
    return rows


def spent(run: Run, fault: str, mode: str) -> str:
    """``42 s in 2 spells``: how long ``fault`` was in ``mode``."""
    spells = [s for s in run.spells if s.fault == fault and s.mode == mode]
    return f"{sum(s.end - s.start for s in spells):.0f} s in {plural(len(spells), 'spell')}"


def faults_text(run: Run) -> str:
    """The faults beside the receiver's, in words."""
    parts = []
    if run.published is not None:
        parts.append(
            f"The MQTT broker (Mosquitto, `max_packet_size {MAX_PACKET_SIZE}`) was reached "
            "through a proxy that dropped every connection 0.3 s after accepting it (and those "
            f"open when the spell began) {spent(run, 'broker', 'drops')} "
            f"({run.broker_connections} connections accepted in all). One plate, "
            f"{POISON_PLATE}, has a dues message of {len(POISON_MESSAGE):,} characters: its "
            "events are larger than the broker takes (the *poison*), their MQTT deliveries "
            "must be dead-lettered and every other event published."
        )
    if run.relay_calls is not None:
        parts.append(
            "Two rules fire for every plate, each with an HTTP action: one to a relay that "
            "accepts connections and never answers, one to a healthy relay."
        )
    if any(s.fault == "disk" for s in run.spells):
        parts.append(
            f"The outbox and the events log were on a {DISK_SIZE[:-1]} MB tmpfs, filled to "
            f"the last byte {spent(run, 'disk', 'full')} and freed after each."
        )
    return " ".join(parts)


def log_kinds(lines: list[str], most: int = 8) -> list[str]:
    """The kinds of ``lines`` (numbers, event ids and times masked), most frequent first."""
    kinds: Counter[str] = Counter()
    for line in lines:
        text = re.sub(r"^\S+ \S+ ", "", line)  # the time
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", text)
        kinds[re.sub(r"\d+(\.\d+)?", "N", text)[:160]] += 1
    return [f"- {count}: `{kind}`" for kind, count in kinds.most_common(most)]


def command(args: argparse.Namespace) -> str:
    """The command line that runs this soak again (its files aside)."""
    words = [
        ".venv/bin/python bench/soak.py",
        f"--minutes {args.minutes:g} --cameras {args.cameras} --kill-every-s {args.kill_every_s:g}",
        f"--fail-share {args.fail_share:g} --seed {args.seed}",
    ]
    words += [
        f"--no-{name}"
        for name in ("broker", "hung-relay", "disk")
        if not vars(args)[name.replace("-", "_")]
    ]
    return " ".join(words)


def report(run: Run, args: argparse.Namespace) -> str:
    """The markdown section."""
    online = segments(run.records, run.lifetimes)
    passes = vehicle_passes(online, run.manifest)
    finder = PassFinder(passes)
    unmatched = match_taken(finder, [r.event for r in run.requests if r.accepted])
    match_logged(finder, run.records)
    strays = match_relayed(passes, run.relay_calls or [])
    held_at_kill(passes, run.lifetimes, [s for s in run.spells if s.fault == "disk"])
    kills = sum(lt.how == "SIGKILL" for lt in run.lifetimes)
    period = run.manifest.frame_count / run.manifest.fps
    problems = run.log_problems
    return "\n".join(
        [
            "## Soak",
            "",
            f"Measured on {time.strftime('%Y-%m-%d', time.gmtime(run.lifetimes[0].started))} "
            f"by `{command(args)}` on **{this_machine().describe()}**, detector in "
            f"{run.detector}: {run.minutes:g} minutes, {len(run.cameras)} live RTSP cameras, "
            f"each looping the demo recording ({len(run.manifest.vehicles)} vehicles every "
            f"{period:g} s) in real time. The daemon (`streamer run`, a child process) was "
            f"SIGKILLed {plural(kills, 'time')} (about every {args.kill_every_s:g} s ±25%, seed "
            f"{args.seed}) and started again 1 to 5 s later on the same config, outbox and "
            "events log, then stopped with SIGTERM. Its webhook receiver answered 500 to "
            f"{100 * args.fail_share:.0f}% of the requests, was down (connections refused) "
            f"{spent(run, 'receiver', 'down')} and slow (answering after the webhook's "
            f"{WEBHOOK_TIMEOUT_S:g} s timeout) {spent(run, 'receiver', 'slow')}. "
            + faults_text(run),
            "",
            "What the faults did to the events: the events log must have every expected "
            "pass, each target every event the log has (the broker all but the poison's), "
            "the healthy relay every expected vehicle; the dead letters must be the "
            "poison's MQTT deliveries, and nothing else.",
            "",
            "| | count | |",
            "|---|---|---|",
            *fault_rows(run, passes, strays),
            "",
            f"Per lifetime: cameras online after (s; reconnections in brackets); RSS in MB, "
            f"*at start* {WARM_UP_S:g} s after the process started; growth from then to its "
            f"last sample; vehicle passes expected, delivered to the webhook, lost and at risk "
            f"(delivered in brackets). A pass is expected when its plate was in view and its "
            f"final event due ({SETTLE_S:g} s after) while the camera was online in that "
            "lifetime.",
            "",
            "| lifetime | ran s | ended by | cameras online after | RSS at start | RSS min-max "
            "| RSS at end | growth | fds | threads | expected | delivered | lost | at risk |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            *lifetime_rows(run, passes, online),
            "",
            "The webhook. *Taken*: the receiver answered 2xx. A vehicle's early and final "
            "events share its event_id, and each has its own Idempotency-Key "
            "(`<event_id>:<phase>`). Delivery is at least once: a key is sent again when the "
            "daemon saw no 2xx for it (the answer came after its timeout, or it was killed "
            "before it recorded the answer), and receivers deduplicate on it. A duplicated "
            "vehicle, two event_ids for one pass, is what deduplication cannot undo.",
            "",
            "| | count | |",
            "|---|---|---|",
            *delivery_rows(run, passes, unmatched),
            "",
            f"Over time (every {SAMPLE_EVERY_S:g} s, or fewer rows): RSS in MB, open file "
            "descriptors, threads, deliveries pending in the outbox (from `/metrics`) and "
            "the faults on.",
            "",
            "| time | lifetime | RSS | fds | threads | outbox pending | faults |",
            "|---|---|---|---|---|---|---|",
            *timeline_rows(run),
            "",
            f"Daemon log: {len(problems)} error lines or tracebacks"
            + (", by kind:" if problems else "."),
            *([""] if problems else []),
            *log_kinds(problems),
        ]
    )
