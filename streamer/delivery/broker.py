"""The connection to an MQTT broker, kept for as long as the daemon runs
(:class:`BrokerConnection`): TLS, a client with the daemon's last will, the retained state
published on every connection, reconnection with backoff, and a broker that refuses the
daemon told apart from one that cannot be reached.

It speaks MQTT 5, so that the broker says how large a packet it takes and whether it took
each message, and falls back to MQTT 3.1.1 for a broker that does not speak 5. A message
the broker refuses is refused alone (:class:`~streamer.delivery.mqttclient.
MessageRefusedError`): a 3.1.1 broker gives no reason, it drops the connection, so a
message under which the connection dropped twice in a row counts as refused too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence

import aiomqtt
from aiomqtt import ProtocolVersion
from aiomqtt.exceptions import MqttConnectError

from streamer.config import MqttConfig
from streamer.delivery.homeassistant import discovery_filters, removed_entities
from streamer.delivery.mqttclient import (
    UNSUPPORTED_PROTOCOL,
    ConnectionDroppedError,
    MessageRefusedError,
    MqttClient,
    packet_size,
)
from streamer.delivery.retained import Message, RetainedState
from streamer.delivery.topics import OFFLINE, ONLINE
from streamer.retry import backoff

logger = logging.getLogger(__name__)
#: paho's own log: its debug lines only, since its warnings and errors (a reset connection)
#: say what the MQTT sender logs anyway, in its own words.
_client_logger = logger.getChild("client")
_client_logger.addFilter(lambda record: record.levelno <= logging.DEBUG)

#: CONNACK codes of a broker that refuses who we are (MQTT 3.1.1: 2 identifier rejected,
#: 4 bad user name or password, 5 not authorised; paho reports them as MQTT 5 codes).
REFUSED_CODES = {2, 4, 5, 133, 134, 135, 140}
#: Seconds between looks at the cameras' states (a recorded file reports no status event)
#: and at the clock (plates today start again from 0 at local midnight).
STATE_INTERVAL_S = 1.0
#: Seconds a connection must last for the reconnection backoff to start again from
#: ``reconnect_initial_s``: a broker that accepts and drops at once is not hammered.
STABLE_S = 10.0
#: Seconds without a message after which the broker has sent every retained discovery
#: config it holds (they come at once after the subscription).
HELD_QUIET_S = 0.5


class MqttRefusedError(RuntimeError):
    """The broker refused the connection: the credentials or the client identifier."""


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context of an ``mqtts://`` broker (``None`` for ``mqtt://``).

    Raises:
        ValueError: when a certificate or key file cannot be read.
    """
    if config.scheme != "mqtts":
        return None
    tls = config.tls
    files = {} if tls is None else {"ca_file": tls.ca_file, "cert_file": tls.cert_file}
    if tls is not None:
        files["key_file"] = tls.key_file
    for key, path in files.items():
        if path is None:
            continue
        try:
            path.open("rb").close()
        except OSError as error:
            raise ValueError(f"mqtt.tls.{key}: cannot read {path} ({error.strerror})") from None
    try:
        context = ssl.create_default_context(cafile=files.get("ca_file"))
        if tls is not None and tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as error:
        raise ValueError(f"mqtt.tls: {error.reason or error}") from None
    if tls is not None and tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def refused(error: Exception) -> bool:
    if not isinstance(error, MqttConnectError):
        return False
    code = getattr(error.rc, "value", error.rc)
    return isinstance(code, int) and code in REFUSED_CODES


def new_client(
    config: MqttConfig,
    availability: str,
    tls: ssl.SSLContext | None,
    protocol: ProtocolVersion = ProtocolVersion.V5,
) -> MqttClient:
    """A client for one connection, with ``offline`` on ``availability`` as its last will.
    Each connection gets a new client, so nothing of a broken one is sent again (with a
    clean session, in MQTT 5 as in 3.1.1)."""
    return MqttClient(
        config.host,
        config.port,
        protocol=protocol,
        username=config.username,
        password=config.password,
        identifier=config.client_id,
        will=aiomqtt.Will(availability, OFFLINE, qos=1, retain=True),
        keepalive=config.keepalive_s,
        timeout=config.timeout_s,
        tls_context=tls,
        logger=_client_logger,
    )


class BrokerConnection:
    """The daemon's connection to the broker: connects, publishes the retained state and
    ``online``, publishes what changes without an event while connected, and reconnects
    after a backoff when the connection is lost.

    Example:
        >>> connection = BrokerConnection(config.mqtt, retained, wake=sender.wakeup.set)
        >>> task = asyncio.create_task(connection.run())
        >>> await connection.first_attempt()  # raises MqttRefusedError for bad credentials
    """

    def __init__(
        self, config: MqttConfig, retained: RetainedState, wake: Callable[[], None]
    ) -> None:
        self.config = config
        self.retained = retained
        self.topics = retained.topics
        self.wake = wake
        self.tls = tls_context(config)
        self.connected = asyncio.Event()
        self.name = f"mqtt broker {config.display}"
        self.protocol = ProtocolVersion.V5
        self._client: MqttClient | None = None
        self._lock = asyncio.Lock()
        self._attempted = asyncio.Event()
        self._refusal: MqttRefusedError | None = None
        self._rng = random.Random()
        #: The message on its way when the connection last dropped, and the largest
        #: packet the broker has taken (see :meth:`_too_large`).
        self._dropped_under: Message | None = None
        self._largest_taken = 0
        self._cleared = False

    async def first_attempt(self) -> None:
        """Return once the first connection attempt is over (an unreachable broker is
        logged, and retried).

        Raises:
            MqttRefusedError: when the broker refused the credentials or client identifier.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), self.config.timeout_s + 10)
        if self._refusal is not None:
            raise self._refusal

    async def publish(self, messages: Sequence[Message], state: bool = True) -> None:
        """Publish ``messages`` in order, QoS 1, each acknowledged within ``timeout_s``;
        with ``state``, the retained ones among them are the daemon's state, published
        again on every connection (not a rule's message: a gate is not opened again).

        Raises:
            MessageRefusedError: when the broker refused one (those after it are not sent).
            aiomqtt.MqttError: when not connected, or the broker did not take one.
        """
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        async with self._lock:
            for message in messages:
                await self._deliver(client, message, state)

    async def _deliver(self, client: MqttClient, message: Message, state: bool) -> None:
        """Publish one message; a retained one of the daemon's ``state`` is kept (to
        publish again on every connection) once the broker has taken it, and forgotten
        when it refused it."""
        kept = message.retain and state
        size = packet_size(message.topic, message.payload, client.protocol)
        try:
            await client.deliver(
                message.topic, message.payload, message.retain, self.config.timeout_s
            )
        except MessageRefusedError:
            if kept:
                self.retained.refused(message)
            raise
        except ConnectionDroppedError as error:
            if not self._too_large(client, message, size):
                raise
            if kept:
                self.retained.refused(message)
            raise MessageRefusedError(
                f"the broker dropped the connection twice in a row while taking the message "
                f"on {message.topic} ({size:,} bytes, the largest yet), without saying why "
                "(MQTT 3.1.1): most likely it is larger than the broker takes (Mosquitto's "
                "max_packet_size)"
            ) from error
        self._largest_taken = max(self._largest_taken, size)
        if self._dropped_under == message:
            self._dropped_under = None
        if kept:
            self.retained.accepted(message)

    def _too_large(self, client: MqttClient, message: Message, size: int) -> bool:
        """Whether the connection that just dropped under ``message`` says the broker
        refuses it: it dropped under the same message the time before too, the broker had
        taken messages on this connection (it is not one that drops every connection),
        and none as large (it is not a broker that drops at random)."""
        again = self._dropped_under == message
        self._dropped_under = None if again else message
        return again and client.taken > 0 and size > self._largest_taken

    async def run(self) -> None:
        """Connect, publish the retained state, watch the connection; on loss, reconnect
        after a backoff (until cancelled, or the broker refuses the first attempt)."""
        failures = connections = 0
        while True:
            client = new_client(self.config, self.topics.availability, self.tls, self.protocol)
            up_since: float | None = None
            try:
                async with client:
                    up_since = time.monotonic()
                    await self._connected(client, again=connections > 0)
                    connections += 1
                    await self._watch(client)
            except Exception as error:
                self._client = None
                self.connected.clear()
                if up_since is None and self._older_protocol(error):
                    continue
                if up_since is not None and time.monotonic() - up_since >= STABLE_S:
                    failures = 0  # it was up for a while: this is a new outage
                failures += 1
                wait = backoff(
                    failures,
                    self.config.reconnect_initial_s,
                    self.config.reconnect_max_s,
                    self._rng,
                )
                if not self._failed(error, up_since is not None, wait):
                    return
                await asyncio.sleep(wait)

    def _older_protocol(self, error: Exception) -> bool:
        """Whether the broker refused MQTT 5 (it speaks 3.1.1 only): connect with that."""
        code = getattr(getattr(error, "rc", None), "value", None)
        if self.protocol != ProtocolVersion.V5 or code != UNSUPPORTED_PROTOCOL:
            return False
        self.protocol = ProtocolVersion.V311
        logger.info(
            "mqtt: the broker at %s does not speak MQTT 5; connecting with MQTT 3.1.1",
            self.config.display,
        )
        return True

    def _failed(self, error: Exception, lost: bool, wait: float) -> bool:
        """Log a failed or ``lost`` connection, retried in ``wait`` seconds; whether to
        retry (not when the broker refused the first attempt: the daemon does not start)."""
        first = not self._attempted.is_set()
        self._attempted.set()
        cause = error.__cause__ or error  # a lost connection says why underneath
        reason = str(cause) or type(cause).__name__
        if refused(error):
            message = (
                f"mqtt: the broker at {self.config.display} refused the connection ({reason}); "
                "check mqtt.username, mqtt.password and mqtt.client_id"
            )
            if first:
                self._refusal = MqttRefusedError(message)
                return False
            logger.error("%s; retry in %.1f s", message, wait)
        elif not isinstance(error, aiomqtt.MqttError):
            logger.exception("%s: unexpected error; retry in %.1f s", self.name, wait)
        elif first:
            logger.error(
                "mqtt: cannot reach the broker at %s (%s); events wait in the outbox until it "
                "answers",
                self.config.display,
                reason,
            )
        else:
            logger.warning(
                "%s: %s (%s); events wait in the outbox; retry in %.1f s",
                self.name,
                "connection lost" if lost else "cannot connect",
                reason,
                wait,
            )
        return True

    async def _connected(self, client: MqttClient, again: bool) -> None:
        """Publish the retained state and ``online``, then let the deliveries go. A
        retained message the broker refuses is logged and no longer published."""
        online = Message(self.topics.availability, ONLINE.encode(), retain=True)
        await self._publish_state(client, [*self.retained.all(), online])
        self._client = client
        self.connected.set()
        self.wake()
        self._attempted.set()
        logger.info(
            "mqtt: %s %s as %s (MQTT %s)",
            "reconnected to" if again else "connected to",
            self.config.display,
            self.config.client_id,
            "5" if client.protocol == ProtocolVersion.V5 else "3.1.1",
        )

    async def _watch(self, client: MqttClient) -> None:
        """Publish state changes until the connection is lost (raises ``MqttError``) or the
        daemon stops (then the cameras' last states and ``offline`` go out first)."""
        try:
            if not self._cleared:
                await self._clear_removed(client)
            await self._follow(client)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError):
                offline = Message(self.topics.availability, OFFLINE.encode(), retain=True)
                await self._publish_state(client, [*self.retained.changes(), offline])
            raise

    async def _follow(self, client: MqttClient) -> None:
        lost = asyncio.ensure_future(anext(client.messages))
        try:
            while True:
                done, _ = await asyncio.wait({lost}, timeout=STATE_INTERVAL_S)
                if done:
                    lost.result()  # raises when the connection is gone
                    lost = asyncio.ensure_future(anext(client.messages))
                if changes := self.retained.changes():
                    await self._publish_state(client, changes)
        finally:
            lost.cancel()

    async def _publish_state(self, client: MqttClient, messages: Sequence[Message]) -> None:
        """Publish retained state in order; a message the broker refuses is logged and
        no longer published, and the others go on.

        Raises:
            aiomqtt.MqttError: when the connection is lost.
        """
        async with self._lock:
            for message in messages:
                try:
                    await self._deliver(client, message, state=True)
                except MessageRefusedError as error:
                    logger.warning("%s: %s; it is no longer published", self.name, error)

    async def _clear_removed(self, client: MqttClient) -> None:
        """Once per run: remove from Home Assistant the entities of cameras no longer
        configured (of every camera when discovery is off), found among the discovery
        configs the broker holds with this daemon's availability topic.

        Raises:
            aiomqtt.MqttError: when the connection is lost.
        """
        filters = discovery_filters(self.config)
        held = await client.held(filters, HELD_QUIET_S, self.config.timeout_s)
        self._cleared = True
        if held is None:
            logger.info(
                "%s: may not subscribe to %s: entities of removed cameras stay in Home Assistant",
                self.name,
                filters[0],
            )
            return
        if removed := removed_entities(self.config, self.retained.cameras, held):
            await self._publish_state(client, [Message(t, b"", retain=True) for t in removed])
            logger.info(
                "mqtt: removed %d Home Assistant entities of cameras no longer configured: %s",
                len(removed),
                ", ".join(removed),
            )
