"""One connection's MQTT client (:class:`MqttClient`): aiomqtt's, told three things
aiomqtt does not pass on (its private hooks; aiomqtt is pinned for that reason): the
broker's Maximum Packet Size from its CONNACK (MQTT 5), the reason code of each
acknowledgement, and the moment the connection drops. With them a message the broker
refuses (:class:`MessageRefusedError`: sending it again fails again) is told apart from a
connection that was lost under it (:class:`ConnectionDroppedError`: sending it again on
the next connection may work).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt import ProtocolVersion

#: MQTT 5 reason codes: the broker does not speak MQTT 5 (the CONNACK of an MQTT 3.1.1
#: broker, as paho reads it), and a DISCONNECT for a packet above its limit.
UNSUPPORTED_PROTOCOL = 132
PACKET_TOO_LARGE = 149

T = TypeVar("T")


class MessageRefusedError(aiomqtt.MqttError):
    """The broker refused one message (too large, a topic it keeps for itself, not
    authorised): sending it again would fail again."""


class ConnectionDroppedError(aiomqtt.MqttError):
    """The connection dropped while a message was on its way."""


def _length_bytes(remaining: int) -> int:
    """How many bytes MQTT's variable-length encoding takes for ``remaining``."""
    return 1 if remaining < 128 else 2 if remaining < 16_384 else 3 if remaining < 2_097_152 else 4


def packet_size(topic: str, payload: bytes, protocol: ProtocolVersion) -> int:
    """The bytes of the QoS 1 PUBLISH packet that carries ``payload`` on ``topic``, fixed
    header included, as a broker's packet size limit counts them.

    Example:
        >>> packet_size("a/b", b"1", ProtocolVersion.V5)
        11
    """
    properties = 1 if protocol == ProtocolVersion.V5 else 0  # their length: none
    remaining = 2 + len(topic.encode()) + 2 + properties + len(payload)
    return 1 + _length_bytes(remaining) + remaining


async def _cancellable(call: Coroutine[Any, Any, T]) -> T:
    """``await call``, cancelled when the caller is: aiomqtt waits with
    ``asyncio.wait_for``, which in Python 3.11 swallows a cancellation that comes as the
    broker answers (the daemon would not stop)."""
    task = asyncio.ensure_future(call)
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        task.cancel()
        raise
    return task.result()


class MqttClient(aiomqtt.Client):
    """An aiomqtt client that publishes with :meth:`deliver`: one QoS 1 message,
    acknowledged, refused, or lost with its connection.

    Example:
        >>> async with MqttClient("broker", 1883, protocol=ProtocolVersion.V5) as client:
        ...     await client.deliver("gate/1/open", b"1", retain=False, timeout=10)
    """

    def __init__(self, hostname: str, port: int, *, protocol: ProtocolVersion, **kwargs: Any):
        super().__init__(hostname, port, protocol=protocol, **kwargs)
        self.protocol = protocol
        #: The broker's limit on packets it takes, when it says (MQTT 5).
        self.maximum_packet_size: int | None = None
        #: Set once the connection has dropped (or was closed).
        self.dropped = asyncio.Event()
        #: Messages the broker has acknowledged on this connection.
        self.taken = 0
        self._drop_reason: object = None
        self._acks: dict[int, asyncio.Future[object]] = {}
        self._running_loop = asyncio.get_running_loop()

    async def deliver(self, topic: str, payload: bytes, retain: bool, timeout: float) -> None:
        """Publish one message with QoS 1 and wait for the broker's acknowledgement.

        Raises:
            MessageRefusedError: when it is larger than the broker takes, or the broker
                acknowledged it with an error (MQTT 5), or dropped the connection saying
                it was too large.
            ConnectionDroppedError: when the connection dropped before the
                acknowledgement.
            aiomqtt.MqttError: when not connected, or no acknowledgement came in time.
        """
        size = packet_size(topic, payload, self.protocol)
        limit = self.maximum_packet_size
        if limit is not None and size > limit:
            raise MessageRefusedError(
                f"the message on {topic} is {size:,} bytes, above the broker's limit of "
                f"{limit:,} bytes (its Maximum Packet Size)"
            )
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        acknowledged = self._acks[info.mid] = self._running_loop.create_future()
        dropped = asyncio.ensure_future(self.dropped.wait())
        try:
            await asyncio.wait(
                {acknowledged, dropped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            dropped.cancel()
            self._acks.pop(info.mid, None)
        if acknowledged.done():
            reason = acknowledged.result()
            if getattr(reason, "is_failure", False):
                raise MessageRefusedError(
                    f"the broker refused the message on {topic} ({size:,} bytes): {reason}"
                )
            self.taken += 1
            return
        if not self.dropped.is_set():
            raise aiomqtt.MqttError(f"no acknowledgement within {timeout:g} s")
        if getattr(self._drop_reason, "value", None) == PACKET_TOO_LARGE:
            raise MessageRefusedError(
                f"the message on {topic} is {size:,} bytes, and the broker closed the "
                "connection: packet too large"
            )
        raise ConnectionDroppedError(f"the connection dropped ({self._drop_reason})")

    async def held(
        self, filters: Sequence[str], quiet_s: float, timeout: float
    ) -> dict[str, bytes] | None:
        """The retained messages the broker holds on ``filters``, by topic: those that
        arrive after subscribing until none came for ``quiet_s`` (at most ``timeout``);
        ``None`` when the broker refuses the subscription.

        Raises:
            aiomqtt.MqttError: when the connection is lost.
        """
        codes = await _cancellable(self.subscribe([(name, 1) for name in filters], timeout=timeout))
        if any(getattr(code, "value", code) >= 128 for code in codes):
            return None
        held: dict[str, bytes] = {}
        deadline = self._running_loop.time() + timeout
        try:
            while (left := deadline - self._running_loop.time()) > 0:
                try:  # not wait_for: in Python 3.11 it can swallow a cancellation
                    async with asyncio.timeout(min(quiet_s, left)):
                        message = await anext(self.messages)
                except TimeoutError:
                    break
                if message.retain and isinstance(message.payload, bytes):
                    held[message.topic.value] = message.payload
        finally:
            await _cancellable(self.unsubscribe(list(filters), timeout=timeout))
        return held

    # paho's callbacks, as aiomqtt registers them.

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: Any,
        properties: Any = None,
    ) -> None:
        self.maximum_packet_size = getattr(properties, "MaximumPacketSize", None)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        acknowledged = self._acks.get(mid)
        if acknowledged is not None and not acknowledged.done():
            acknowledged.set_result(reason_code)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: Any,
        properties: Any = None,
    ) -> None:
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
        self._drop_reason = reason_code
        # A drop that nobody waited on is not an error to report at exit.
        with contextlib.suppress(asyncio.InvalidStateError):
            if self._disconnected.done() and not self._disconnected.cancelled():
                self._disconnected.exception()
        self._running_loop.call_soon_threadsafe(self.dropped.set)
