"""Vehicle passes: which vehicles each online camera had in view, in one lifetime of the
daemon, and which of the events the daemon logged, sent and acted on belong to each.

An RTSP connection plays the recording from its start, so each camera's ``online`` status
event (in the events log) fixes where the recording's timeline lies in wall time, and the
recording's manifest says when each vehicle's plate is in view. A pass is *expected* when
it was in view, and its final event due (:data:`SETTLE_S` later), while its camera stayed
online in one lifetime of the daemon; a pass cut by a kill, a camera reconnection or the
final stop is *at risk*. An event belongs to the pass of its camera that its
``first_seen`` lies in (or nearest, within :data:`MATCH_TOLERANCE_S`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamer.sources.demo import DemoManifest

from soak_daemon import Lifetime
from soak_faults import GateCall, Spell

#: A vehicle's final event is out this long after its plate left the view (the tracker's
#: ``lost_timeout_s`` of 1 s, then the reading).
SETTLE_S = 4.0
#: How far from a pass an event's ``first_seen`` may lie and still belong to it.
MATCH_TOLERANCE_S = 1.0
#: How long after its event a gate action may reach the relay (the action's timeout).
ACTION_S = 5.0


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
    """One vehicle in view of one online camera, and what became of it: the events the
    receiver took (``event_ids``, ``phases``, ``final_plate``), the phases the events log
    has, and whether the healthy gate relay was called for it."""

    camera: str
    plate: str
    start: float
    end: float
    lifetime: int
    expected: bool
    event_ids: set[str] = field(default_factory=set)
    phases: set[str] = field(default_factory=set)
    final_plate: str | None = None
    logged: set[str] = field(default_factory=set)
    relayed: bool = False
    #: Its events were held in memory only (a full disk) when the daemon was SIGKILLed.
    held: bool = False

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


class PassFinder:
    """The pass each plate event belongs to."""

    def __init__(self, passes: Sequence[Pass]) -> None:
        self._by_camera: dict[str, list[Pass]] = defaultdict(list)
        for vehicle in sorted(passes, key=lambda p: p.start):
            self._by_camera[vehicle.camera].append(vehicle)
        self._starts = {
            camera: [p.start for p in found] for camera, found in self._by_camera.items()
        }

    def find(self, event: dict[str, Any]) -> Pass | None:
        """The pass of ``event``'s camera nearest its ``first_seen``, if near enough."""
        seen = moment(event["first_seen"])
        candidates = self._by_camera.get(event["camera"], [])
        index = bisect_left(self._starts.get(event["camera"], []), seen)
        near = candidates[max(0, index - 1) : index + 1]
        best = min(near, key=lambda p: p.distance(seen), default=None)
        if best is None or best.distance(seen) > MATCH_TOLERANCE_S:
            return None
        return best


def match_taken(finder: PassFinder, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Note each plate event the receiver took on its pass; returns those that fit none."""
    unmatched = []
    for event in events:
        if event.get("type") != "plate":
            continue
        best = finder.find(event)
        if best is None:
            unmatched.append(event)
            continue
        best.event_ids.add(event["event_id"])
        best.phases.add(event["phase"])
        if event["phase"] == "final":
            best.final_plate = event["plate_number"]
    return unmatched


def match_logged(finder: PassFinder, records: Sequence[dict[str, Any]]) -> None:
    """Note each plate event of the events log on its pass."""
    for record in records:
        if record.get("type") == "plate" and (best := finder.find(record)) is not None:
            best.logged.add(record["phase"])


def match_relayed(passes: Sequence[Pass], calls: Sequence[GateCall]) -> int:
    """Note the healthy relay's calls (when, camera, plate) on the passes of that camera
    and plate they came during (or within :data:`SETTLE_S` and ``ACTION_S`` after); returns
    how many fit none."""
    by_plate: dict[tuple[str, str], list[Pass]] = defaultdict(list)
    for vehicle in passes:
        by_plate[vehicle.camera, vehicle.plate].append(vehicle)
    strays = 0
    for call in calls:
        near = [
            p
            for p in by_plate.get((call.camera, call.plate), [])
            if p.start - MATCH_TOLERANCE_S <= call.at <= p.end + SETTLE_S + ACTION_S
        ]
        for vehicle in near:
            vehicle.relayed = True
        strays += not near
    return strays


def held_at_kill(
    passes: Sequence[Pass], lifetimes: Sequence[Lifetime], full: Sequence[Spell]
) -> int:
    """Mark at risk (not expected) the passes whose final event was due while the disk
    was ``full`` in a lifetime SIGKILLed before it was freed: with no room for the events
    log, the outbox or the hold file, the daemon keeps such events in memory only (see
    ``OutboxSink``), and a SIGKILL takes them. Returns how many it marked."""
    marked = 0
    for lifetime in lifetimes:
        if lifetime.how != "SIGKILL":
            continue
        spell = next((s for s in full if s.start <= lifetime.ended < s.end), None)
        if spell is None:
            continue
        for vehicle in passes:
            due = vehicle.end + SETTLE_S
            if vehicle.lifetime == lifetime.number and vehicle.expected and due >= spell.start:
                vehicle.expected, vehicle.held = False, True
                marked += 1
    return marked
