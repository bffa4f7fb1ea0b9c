"""A TCP proxy in front of a real broker that makes it misbehave as some brokers do: speak
MQTT 3.1.1 only (an older Mosquitto, a cloud broker), or accept each connection and drop
it soon after (a broker restarting in a loop, another client with the same identifier);
or pass everything, misbehaving only for a spell (:meth:`MqttProxy.misbehave`).

The proxy runs an asyncio loop in its own thread and counts the connections it accepts,
with the time of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from enum import Enum

from support.mosquitto import Broker
from support.rtsp import free_port

#: Seconds a connection lasts with :attr:`Misbehaviour.DROP_SOON`.
DROP_AFTER_S = 0.3
#: The CONNACK an MQTT 3.1.1 broker gives a client that asks for another protocol
#: level: return code 1, "unacceptable protocol version".
UNACCEPTABLE_PROTOCOL = bytes([0x20, 0x02, 0x00, 0x01])


class Misbehaviour(Enum):
    """What the proxy does to each connection."""

    #: Pass everything, as the broker itself would.
    NONE = "none"
    #: Refuse MQTT 5 as a 3.1.1 broker does; pass MQTT 3.1.1 through.
    MQTT_311_ONLY = "mqtt-3.1.1-only"
    #: Pass everything, and close each connection :data:`DROP_AFTER_S` after it opened.
    DROP_SOON = "drop-soon"


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT packet: its fixed header, remaining length and the rest."""
    header = await reader.readexactly(1)
    length, shift, encoded = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        encoded += byte
        length += (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    return header + encoded + await reader.readexactly(length)


def _protocol_level(connect: bytes) -> int:
    """The protocol level of a CONNECT packet (4: MQTT 3.1.1, 5: MQTT 5)."""
    at = 1
    while connect[at] & 0x80:
        at += 1
    at += 1  # past the remaining length
    name_length = int.from_bytes(connect[at : at + 2], "big")
    return connect[at + 2 + name_length]


class MqttProxy:
    """Listens on ``127.0.0.1:PORT`` and relays to ``broker``, misbehaving as told.

    Example:
        >>> with MqttProxy(broker, Misbehaviour.DROP_SOON) as proxy:
        ...     config = {"url": proxy.url}
    """

    def __init__(self, broker: Broker, misbehaviour: Misbehaviour) -> None:
        self.broker = broker
        self.misbehaviour = misbehaviour
        self.port = free_port()
        #: When each connection was accepted (time.monotonic()).
        self.connections: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def misbehave(self, misbehaviour: Misbehaviour) -> None:
        """From now on misbehave so; with :attr:`Misbehaviour.DROP_SOON`, the connections
        open now are dropped too (a broker that restarts drops them all)."""
        self.misbehaviour = misbehaviour
        if misbehaviour is Misbehaviour.DROP_SOON and self._loop is not None:
            loop = self._loop

            async def drop_all() -> None:
                for writer in list(self._open):
                    writer.transport.abort()

            asyncio.run_coroutine_threadsafe(drop_all(), loop).result(10)

    async def _handle(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        self.connections.append(time.monotonic())
        self._open.add(client_out)
        broker_out: asyncio.StreamWriter | None = None
        try:
            connect = await _read_packet(client_in)
            if self.misbehaviour is Misbehaviour.MQTT_311_ONLY and _protocol_level(connect) > 4:
                client_out.write(UNACCEPTABLE_PROTOCOL)
                await client_out.drain()
                return
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.broker.port)
            self._open.add(broker_out)
            broker_out.write(connect)
            pipes = asyncio.gather(_pipe(client_in, broker_out), _pipe(broker_in, client_out))
            lasts = DROP_AFTER_S if self.misbehaviour is Misbehaviour.DROP_SOON else None
            await asyncio.wait_for(pipes, lasts)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            for writer in (client_out, broker_out):
                if writer is not None:
                    self._open.discard(writer)
                    writer.close()

    def start(self) -> MqttProxy:
        """Start listening; returns once it accepts connections."""
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
            )
            ready.set()
            loop.run_forever()
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> MqttProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            target.write(data)
            await target.drain()
    finally:
        target.close()
