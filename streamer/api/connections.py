"""The API's listening socket: a cap on open connections, and quiet protocol errors.

aiohttp closes a connection that sends no whole request within its keep-alive timeout,
but it neither caps the number of connections nor tells an idle one from a busy one. A
flood of silent connections would otherwise use up the process's file descriptors before
any of them times out, and ``/health`` would stop answering. Here every connection is
counted; past the cap, the one idle the longest (not inside a request handler) is closed
to make room for the newcomer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from streamer.api.requests import printable

#: What a client's bytes or its going away raise inside aiohttp: not the server's fault.
CLIENT_FAULTS = (HttpProcessingError, RequestPayloadError, ConnectionError)

logger = logging.getLogger(__name__)


class ProtocolLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's connection logger. A malformed request, a body that cannot be decoded or
    a client that went away is the client's doing: it is logged at debug level in one
    line (what the client sent escaped), without a stack. Anything else keeps its
    traceback.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        """Log ``msg`` with its traceback, unless ``exc_info`` is a client's fault."""
        if isinstance(exc_info, CLIENT_FAULTS):
            text = str(msg) % args if args else str(msg)
            # aiohttp's messages quote the client's bytes over several lines: one line.
            reason = printable(str(exc_info), 500)
            self.debug("%s: %s: %s", printable(text), type(exc_info).__name__, reason)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kw)


class ConnectionGuard:
    """A protocol factory wrapping aiohttp's, which caps the open connections at ``limit``.

    The request middleware marks the connections whose request is being handled
    (:meth:`busy`, :meth:`idle`); the others may be closed to make room.
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int) -> None:
        self.factory = factory
        self.limit = limit
        self.evicted = 0
        # Insertion order is age: the first idle transport is the one idle the longest.
        self._open: dict[asyncio.BaseTransport, None] = {}
        self._busy: set[asyncio.BaseTransport] = set()

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._open)

    def busy(self, transport: asyncio.BaseTransport | None) -> None:
        """A request on ``transport`` is being handled: do not evict it."""
        if transport is not None and transport in self._open:
            self._busy.add(transport)

    def idle(self, transport: asyncio.BaseTransport | None) -> None:
        """The request on ``transport`` is answered; it is idle again, and the youngest."""
        if transport is not None and transport in self._open:
            self._busy.discard(transport)
            del self._open[transport]
            self._open[transport] = None

    def _admit(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.limit:
            oldest = next((t for t in self._open if t not in self._busy), None)
            if oldest is None:
                return False
            self._forget(oldest)
            oldest.abort()  # type: ignore[attr-defined]
            self.evicted += 1
            if self.evicted in (1, 100) or self.evicted % 10_000 == 0:
                logger.warning(
                    "HTTP: %d connections open (http.max_connections); closing the idle "
                    "ones to make room (%d so far)",
                    self.limit,
                    self.evicted,
                )
        self._open[transport] = None
        return True

    def _forget(self, transport: asyncio.BaseTransport) -> None:
        self._open.pop(transport, None)
        self._busy.discard(transport)


class _Guarded(asyncio.Protocol):
    """One connection: admitted by the guard, then handed to aiohttp's protocol."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.guard._admit(transport):
            transport.abort()  # type: ignore[attr-defined]
            return
        self.transport = transport
        self.inner = self.guard.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.guard._forget(self.transport)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
