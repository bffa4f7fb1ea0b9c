"""Rules: act when a plate passes, e.g. open a gate for residents or warn on a banned car.

A :class:`RuleRunner` is a sink. For each plate event it decides, in the pipeline's
thread, which rules fire: a rule fires at most once per vehicle, on the first of its
events (early, then final) that passes the rule's ``when:``; and not again for the same
plate on the same camera within ``cooldown_s``. The actions then run on the daemon's event
loop, all at once and each with its own timeout, so a slow or failing action holds up
neither the pipeline nor the other actions. Each outcome is logged in one line and counted.

Each HTTP action target (scheme, host and port) has its own small pool of connections
(:class:`TargetPools`): a relay that accepts and never answers holds its own connections
only, and the actions waiting for one of them wait within their own timeout.

Actions are not queued in the outbox: a barrier that opens minutes late, after the broker
or relay came back, is worse than one that did not open. A failed action is logged, not
retried; the event itself is still delivered to every webhook and the broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar
from urllib.parse import quote

import aiohttp

from streamer.config import Action, RuleConfig, fill_placeholders, mask_url, topic_problem
from streamer.events import Event, PlateEvent, compact_json

logger = logging.getLogger(__name__)

#: Vehicles and (rule, camera, plate) cooldowns remembered; older ones are forgotten.
RULE_MEMORY = 10_000
#: Seconds the actions still running when the daemon stops are given to finish.
CLOSE_TIMEOUT_S = 5.0
#: Connections one action target may have open at once: a gate relay is a small device
#: that serves a few at a time; an action beyond them waits for one, within its timeout.
TARGET_CONNECTIONS = 4

_K = TypeVar("_K")
_V = TypeVar("_V")

#: Publishes one MQTT message now: topic, payload, retain.
Publish = Callable[[str, bytes, bool], Awaitable[None]]


async def no_broker(topic: str, payload: bytes, retain: bool) -> None:
    """How rules publish without an MQTT broker (the config refuses an MQTT action then).

    Raises:
        RuntimeError: always.
    """
    raise RuntimeError("no MQTT broker configured")


class ActionCounter(Protocol):
    """Where rule outcomes are counted (the metrics)."""

    def rule_fired(self, rule: str, outcome: str) -> None:
        """A rule fired (``fired``) or was held back (``cooldown``) for one vehicle."""
        ...

    def rule_action(self, rule: str, kind: str, ok: bool, seconds: float) -> None:
        """One action (``http``, ``mqtt``) of ``rule`` succeeded or failed after ``seconds``
        from the event."""
        ...


def render(text: str, event: PlateEvent, url: bool = False) -> str:
    """``text`` with its ``{placeholders}`` replaced by the event's values (URL-quoted for
    a URL), and ``{{name}}`` by ``{name}``: every other brace is text. A value the event
    lacks is empty (the plate of a vehicle whose plate was not read); ``{direction}`` is
    the camera's name for the way it moved, or the way itself."""
    vehicle = event.vehicle
    values = {
        "plate_number": event.plate_number or "",
        "camera": event.camera,
        "event_id": event.event_id,
        "phase": str(event.phase),
        "lists": ",".join(event.lists.lists),
        "dues_pending": "true" if event.dues_result.dues_pending else "false",
        "reason": event.reason or "",
        "direction": (event.directions or ("",))[-1],
        "vehicle_type": vehicle.type if vehicle is not None else "",
        "vehicle_colour": (vehicle.colour if vehicle is not None else None) or "",
    }
    if url:
        values = {name: quote(value, safe="") for name, value in values.items()}
    return fill_placeholders(text, values)


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` as written, in lower case (placeholders and all).

    Example:
        >>> origin("HTTP://Relay.local:8080/relay/0?turn=on")
        'http://relay.local:8080'
    """
    scheme, _, rest = url.partition("://")
    for end in "/?#":
        rest = rest.partition(end)[0]
    return f"{scheme}://{rest}".lower()


class TargetPools:
    """An HTTP client session per action target, each with at most
    :data:`TARGET_CONNECTIONS` connections, made when the target is first used (on the
    event loop).

    Example:
        >>> pools = TargetPools()
        >>> async with pools.session(action.http.url).get(url) as response: ...
        >>> await pools.close()
    """

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, url: str) -> aiohttp.ClientSession:
        """The session of ``url``'s target; an action's URL as configured, so that there is
        one per target even when placeholders make up the host."""
        key = origin(url)
        if (session := self._sessions.get(key)) is None:
            connector = aiohttp.TCPConnector(limit=TARGET_CONNECTIONS)
            session = self._sessions[key] = aiohttp.ClientSession(connector=connector)
        return session

    async def close(self) -> None:
        """Close every session."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


class RuleRunner:
    """Fires the configured rules for plate events, from any thread.

    Example:
        >>> runner = RuleRunner(config.rules, loop, mqtt_sender.publish_now)
        >>> runner.send(event)   # a sink: returns at once; the actions run on ``loop``
        >>> await runner.close()
    """

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        loop: asyncio.AbstractEventLoop,
        publish: Publish = no_broker,
        counter: ActionCounter | None = None,
    ) -> None:
        self.rules = list(rules)
        self.loop = loop
        self.pools = TargetPools()
        self.publish = publish
        self.counter = counter
        self._lock = threading.Lock()
        self._decided: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._last_fired: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._running: set[asyncio.Task[None]] = set()

    def send(self, event: Event) -> None:
        """Fire the rules ``event`` passes (from a pipeline thread; returns at once)."""
        if not isinstance(event, PlateEvent):
            return
        received = time.monotonic()
        for rule in self.rules:
            if rule.cameras is not None and event.camera not in rule.cameras:
                continue
            if not rule.when.matches(
                event.lists.lists,
                event.dues_result.dues_pending,
                event.directions,
                event.has_plate,
                unread_by_default=False,
            ):
                continue
            if self._decide(rule, event, received):
                self.loop.call_soon_threadsafe(self._start, rule, event, received)

    def _decide(self, rule: RuleConfig, event: PlateEvent, now: float) -> bool:
        """Whether ``rule`` fires for ``event``: not when it already did (or was held back)
        for this vehicle, nor within its cooldown for this plate and camera."""
        # A vehicle whose plate was not read is its own: no cooldown joins two of them.
        seen_as = event.plate_number or event.event_id
        vehicle, plate = (rule.name, event.event_id), (rule.name, event.camera, seen_as)
        with self._lock:
            if vehicle in self._decided:
                return False
            self._remember(self._decided, vehicle, None)
            last = self._last_fired.get(plate)
            cooling = last is not None and now - last < rule.cooldown_s
            if not cooling:
                self._remember(self._last_fired, plate, now)
        if cooling:
            logger.info(
                "rule %s: %s on %s again within %g s (cooldown_s): not fired",
                rule.name,
                seen_as,
                event.camera,
                rule.cooldown_s,
            )
        if self.counter is not None:
            self.counter.rule_fired(rule.name, "cooldown" if cooling else "fired")
        return not cooling

    @staticmethod
    def _remember(memory: OrderedDict[_K, _V], key: _K, value: _V) -> None:
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > RULE_MEMORY:
            memory.popitem(last=False)

    def _start(self, rule: RuleConfig, event: PlateEvent, received: float) -> None:
        for action in rule.do:
            task = asyncio.create_task(self._run(rule, action, event, received))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(
        self, rule: RuleConfig, action: Action, event: PlateEvent, received: float
    ) -> None:
        """One action: performed, logged in one line, counted; never raises."""
        try:
            target, detail = await self._perform(action, event)
            ok = True
        except Exception as error:  # any failure is this action's alone
            target, ok = self._target(action, event), False
            detail = mask_url(
                f"failed: {type(error).__name__}" + (f": {error}" if str(error) else "")
            )
        seconds = time.monotonic() - received
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "rule %s: %s on %s (%s): %s %s in %.0f ms",
            rule.name,
            event.plate_number or f"vehicle ({event.reason})",
            event.camera,
            event.phase,
            target,
            detail,
            seconds * 1000,
        )
        if self.counter is not None:
            self.counter.rule_action(rule.name, action.kind, ok, seconds)

    def _target(self, action: Action, event: PlateEvent) -> str:
        if action.http is not None:
            return f"http {action.http.method} {mask_url(render(action.http.url, event, True))}"
        assert action.mqtt is not None
        return f"mqtt {render(action.mqtt.topic, event)}"

    async def _perform(self, action: Action, event: PlateEvent) -> tuple[str, str]:
        """Do ``action``; its target and outcome, for the log line.

        Raises:
            Exception: whatever made it fail (an error status, a timeout, no broker).
        """
        target = self._target(action, event)
        body = compact_json(event.to_json())
        if action.mqtt is not None:
            topic = render(action.mqtt.topic, event)
            if (problem := topic_problem(topic)) is not None:  # e.g. {lists} empty
                raise ValueError(f"the topic {problem}")
            payload = body if action.mqtt.payload is None else render(action.mqtt.payload, event)
            await self.publish(topic, payload.encode(), action.mqtt.retain)
            return target, "published"
        http = action.http
        assert http is not None
        headers = dict(http.headers)
        data: str | None = None
        if http.body is not None:
            data = render(http.body, event)
        elif http.method != "GET":
            data = body
            headers.setdefault("Content-Type", "application/json")
        async with self.pools.session(http.url).request(
            http.method,
            render(http.url, event, url=True),
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=http.timeout_s),
            allow_redirects=False,
        ) as response:
            await response.read()
            if not 200 <= response.status < 300:
                raise RuntimeError(f"HTTP {response.status}")
            return target, f"→ HTTP {response.status}"

    async def close(self) -> None:
        """Let the actions still running finish, for at most :data:`CLOSE_TIMEOUT_S`."""
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.pools.close()
