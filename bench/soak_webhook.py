"""The soak's webhook table: what the receiver took of the vehicle passes and of the
events log, and why a key was taken more than once."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from soak_faults import Request
from soak_passes import Pass, moment

if TYPE_CHECKING:
    from soak_report import Run


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


def delivery_rows(run: Run, passes: list[Pass], unmatched: list[dict[str, Any]]) -> list[str]:
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
    unmatched_plates = ", ".join(sorted({e["plate_number"] for e in unmatched})) or "-"
    states: Counter[str] = Counter()
    for (_, state), count in run.outbox.items():
        states[state] += count
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
        f"| outbox at the end, every target: pending / dead | {states['pending']} / "
        f"{states['dead']} | {states['delivered']} delivered |",
        f"| delay, last sighting → first 2xx (p50 / p95 / max s) | "
        f"{percentile(delays, 50)} / {percentile(delays, 95)} / "
        f"{f'{delays[-1]:.1f}' if delays else '-'} | retries, receiver spells and restarts |",
    ]


def percentile(values: list[float], q: int) -> str:
    """The ``q``-th percentile of sorted ``values``, in seconds."""
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "-"
    return f"{statistics.quantiles(values, n=100, method='inclusive')[q - 1]:.1f}"
