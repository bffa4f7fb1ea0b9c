"""A real webhook receiver for the tests: an aiohttp server on 127.0.0.1 in its own thread.

It records every request and can misbehave on purpose: answer 5xx for the first requests,
answer slowly, ask for ``Retry-After``, or refuse for good with a 4xx. :class:`SilentRelay`
accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    event: dict[str, Any]
    crop: bytes | None
    at: float


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: float = 300) -> bool:
    """The README's verification: HMAC-SHA256 of ``"<timestamp>." + body``, recent enough."""
    timestamp = headers.get("X-Streamer-Timestamp", "")
    signature = headers.get("X-Streamer-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + expected.hexdigest())


@dataclass
class Behaviour:
    """How the receiver answers; change it while it runs."""

    fail_first: int = 0  # answer ``fail_status`` to this many requests first
    fail_status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0  # wait this long before answering
    slow_first: int = 0  # ...but only for this many requests (0: all)
    status: int = 200


@dataclass(frozen=True)
class RelayCall:
    """One request to ``/relay/...``, as a gate relay (a rule's HTTP action) sees it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Start with :meth:`start`, stop with :meth:`stop`; ``port`` may be fixed beforehand."""

    port: int
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[Received] = field(default_factory=list)
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)
    relay_calls: list[RelayCall] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.content_type.startswith("multipart/"):
            event_body, crop = b"", None
            async for part in await request.multipart():
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "event":  # type: ignore[union-attr]
                    event_body = data
                elif part.name == "crop":  # type: ignore[union-attr]
                    crop = data
            body = event_body
        else:
            body, crop = await request.read(), None
        with self._lock:
            index = len(self.requests)
            self.requests.append(
                Received(dict(request.headers), body, json.loads(body), crop, time.time())
            )
            behaviour = self.behaviour
        if behaviour.delay_s and (not behaviour.slow_first or index < behaviour.slow_first):
            await asyncio.sleep(behaviour.delay_s)
        if index < behaviour.fail_first:
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
            return web.Response(status=behaviour.fail_status, headers=headers)
        if 200 <= behaviour.status < 300:
            with self._lock:
                self.delivered[request.headers["Idempotency-Key"]] = json.loads(body)
        return web.Response(status=behaviour.status, text="ok")

    async def _relay(self, request: web.Request) -> web.Response:
        call = RelayCall(
            request.method, request.path, dict(request.query), await request.read(), time.time()
        )
        with self._lock:
            self.relay_calls.append(call)
            behaviour = self.behaviour
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        return web.Response(status=behaviour.status, text="ok")

    def start(self) -> Receiver:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            app.router.add_route("*", "/relay/{tail:.*}", self._relay)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("receiver did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def unique(self) -> dict[str, dict[str, Any]]:
        """Events by ``Idempotency-Key``: what a deduplicating receiver keeps."""
        with self._lock:
            return {r.headers["Idempotency-Key"]: r.event for r in self.requests}

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` distinct events were answered with success."""
        deadline = time.monotonic() + timeout
        while len(self.delivered) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


class SilentRelay:
    """A relay that hangs: it accepts every connection on 127.0.0.1 and never answers.

    Example:
        >>> with SilentRelay() as hung:
        ...     url = hung.url + "/relay/0"
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self._server.settimeout(0.1)
        self.port: int = self._server.getsockname()[1]
        #: Connections accepted and held open.
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = self._server.accept()
                self.connections.append(connection)

    def __enter__(self) -> SilentRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in [*self.connections, self._server]:
            connection.close()
