"""The faults the soak puts the daemon through beside its SIGKILLs, each a real server or a
real disk that records what reached it:

- the webhook receiver (:class:`FlakyReceiver`) answers 500 to a share of the requests,
  and is ``down`` (its port closed) or ``slow`` (it answers after the webhook's timeout)
  for spells;
- the MQTT broker (:class:`DroppingBroker`): Debian's Mosquitto taking packets of at most
  :data:`MAX_PACKET_SIZE` bytes, reached through the proxy of ``tests/support/
  mqtt_proxy.py``, which ``drops`` every connection (accepted, then closed 0.3 s later)
  for spells; a subscriber of its own records every plate message;
- the gate relays (:class:`Relays`): one that accepts and never answers, the target of one
  rule, and a healthy one, the target of another;
- the disk of the outbox and the events log (:class:`FillingDisk`): a tmpfs ``full`` to the
  last byte for spells, then freed.

Outside its spells each fault is ``up``; :func:`draw_spells` draws when they come.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from common import tests_helper

#: No fault and no kill this close to the end, so the last lifetime settles.
QUIET_END_S = 45.0
#: The largest packet the broker takes (Mosquitto's ``max_packet_size``): every message
#: of the daemon fits, but those of the poison plate's events.
MAX_PACKET_SIZE = 1500
#: The demo plate whose events the broker cannot take: its dues message is as long as a
#: dues message may be (1,000 characters).
POISON_PLATE = "DL07CR6158"
POISON_MESSAGE = ("Pending toll dues of Rs 350, unpaid since the first notice; " * 17)[:1000]
#: Every MQTT topic of the daemon starts with it.
TOPIC_PREFIX = "soak"
#: The webhook's timeout, and how long the receiver takes to answer when slow.
WEBHOOK_TIMEOUT_S, SLOW_ANSWER_S = 2.0, 3.0
#: The size of the tmpfs that holds the outbox and the events log.
DISK_SIZE = "32m"


class Fault(Protocol):
    """One fault: ``up`` (behaving) or in one of its modes."""

    name: str
    mode: str

    def set_mode(self, mode: str) -> None:
        """``up``, or one of the fault's modes, from now on."""


@dataclass(frozen=True)
class Spell:
    """A while in which ``fault`` is in ``mode`` (the receiver ``down`` or ``slow``, the
    broker's connections dropped, the disk full)."""

    fault: str
    mode: str
    start: float
    end: float


def draw_spells(
    rng: random.Random,
    fault: str,
    modes: Sequence[str],
    start: float,
    end: float,
    length: tuple[float, float] = (15.0, 35.0),
    gap: tuple[float, float] = (40.0, 120.0),
) -> list[Spell]:
    """Spells of ``fault`` lasting ``length`` seconds (a range), in each of ``modes`` in
    turn and ``gap`` apart; the first 20 to 60 s after ``start``, none near the end."""
    spells: list[Spell] = []
    at, mode = start + rng.uniform(20, 60), rng.choice(list(modes))
    while True:
        seconds = rng.uniform(*length)
        if at + seconds > end - QUIET_END_S:
            return spells
        spells.append(Spell(fault, mode, at, at + seconds))
        mode = modes[(modes.index(mode) + 1) % len(modes)]
        at += seconds + rng.uniform(*gap)


def mode_at(spells: Sequence[Spell], fault: str, moment: float) -> str:
    """The mode of ``fault`` at ``moment``: that of its spell then, else ``up``."""
    return next((s.mode for s in spells if s.fault == fault and s.start <= moment < s.end), "up")


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

    name = "receiver"

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
class Published:
    """One plate message the subscriber received."""

    at: float
    event: dict[str, Any]

    @property
    def key(self) -> str:
        """``<event_id>:<phase>``, as the webhook's Idempotency-Key."""
        return f"{self.event['event_id']}:{self.event['phase']}"


class DroppingBroker:
    """Mosquitto (packets of at most :data:`MAX_PACKET_SIZE` bytes) behind a proxy that
    passes everything, or, in mode ``drops``, drops every connection 0.3 s after accepting
    it (and those open when the spell begins); a subscriber, connected to the broker
    itself, records every message on ``<prefix>/+/plate``."""

    name = "broker"

    def __init__(self, folder: Path) -> None:
        self._mosquitto = tests_helper("mosquitto")
        self._proxies = tests_helper("mqtt_proxy")
        self.broker = self._mosquitto.Broker(
            folder, settings=[f"max_packet_size {MAX_PACKET_SIZE}"]
        )
        self.proxy = self._proxies.MqttProxy(self.broker, self._proxies.Misbehaviour.NONE)
        self.subscriber = self._mosquitto.Subscriber(self.broker, f"{TOPIC_PREFIX}/+/plate")
        self.mode = "up"

    @property
    def url(self) -> str:
        """Where the daemon connects: the proxy."""
        return str(self.proxy.url)

    @property
    def connections(self) -> int:
        """Connections the proxy accepted."""
        return len(self.proxy.connections)

    def start(self) -> DroppingBroker:
        """Start the broker, the proxy and the subscriber.

        Raises:
            RuntimeError: when Mosquitto is not installed, or did not start.
        """
        if reason := self._mosquitto.mosquitto_missing():
            raise RuntimeError(reason)
        self.broker.start()
        self.proxy.start()
        self.subscriber.__enter__()
        return self

    def stop(self) -> None:
        """Stop all three."""
        self.subscriber.__exit__(None, None, None)
        self.proxy.stop()
        self.broker.stop()

    def set_mode(self, mode: str) -> None:
        """``drops`` or ``up``."""
        behaviour = "DROP_SOON" if mode == "drops" else "NONE"
        self.proxy.misbehave(self._proxies.Misbehaviour[behaviour])
        self.mode = mode

    def published(self) -> list[Published]:
        """Every plate message received so far."""
        return [Published(m.at, json.loads(m.payload)) for m in self.subscriber.messages()]


@dataclass(frozen=True)
class GateCall:
    """One gate action at the healthy relay: when, for which camera and plate."""

    at: float
    camera: str
    plate: str


class Relays:
    """Two gate relays on 127.0.0.1: ``hung`` accepts every connection and never answers;
    ``healthy`` answers 200 at once and records every call (its query names the event)."""

    def __init__(self) -> None:
        receivers = tests_helper("receiver")
        self.hung = receivers.SilentRelay()
        self.healthy = receivers.Receiver(tests_helper("rtsp").free_port())

    def start(self) -> Relays:
        """Start both."""
        self.hung.__enter__()
        self.healthy.start()
        return self

    def stop(self) -> None:
        """Stop both."""
        self.healthy.stop()
        self.hung.__exit__(None, None, None)

    def rules(self, timeout_s: float) -> list[dict[str, Any]]:
        """Two rules that fire for every plate, one for each relay."""
        path = "relay/{camera}?key={event_id}:{phase}&plate={plate_number}"
        rules = []
        for name, relay in (("hung-barrier", self.hung.url), ("open-gate", self.healthy_url)):
            action = {"url": f"{relay}/{path}", "method": "GET", "timeout_s": timeout_s}
            rules.append({"name": name, "do": [{"http": action}]})
        return rules

    @property
    def healthy_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the healthy relay."""
        return f"http://127.0.0.1:{self.healthy.port}"

    def calls(self) -> list[GateCall]:
        """Every call at the healthy relay so far."""
        return [
            GateCall(call.at, call.path.rpartition("/")[2], call.query.get("plate", ""))
            for call in list(self.healthy.relay_calls)
        ]

    @property
    def hung_connections(self) -> int:
        """Connections the hung relay accepted (and holds)."""
        return len(self.hung.connections)


class FillingDisk:
    """A tmpfs of :data:`DISK_SIZE` on ``folder``; in mode ``full`` filled to the last byte
    by a file of its own, deleted again when ``up``."""

    name = "disk"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mode = "up"
        self._disks = tests_helper("disks")
        self._filler: Path | None = None

    def start(self) -> FillingDisk:
        """Mount it.

        Raises:
            RuntimeError: when it cannot be mounted (not root), saying why.
        """
        self._disks.mount(self.folder, DISK_SIZE)
        return self

    def stop(self) -> None:
        """Free it and unmount it."""
        self.set_mode("up")
        self._disks.unmount(self.folder)

    def set_mode(self, mode: str) -> None:
        """``full`` or ``up``."""
        if mode == "full" and self._filler is None:
            self._filler = self._disks.fill(self.folder, ".filler")
        elif mode != "full" and self._filler is not None:
            self._filler.unlink()
            self._filler = None
        self.mode = mode
