"""The connection to an MQTT broker, kept for as long as the daemon runs
(:class:`BrokerConnection`): TLS, a client with the daemon's last will, the retained state
published on every connection, reconnection with backoff, and a broker that refuses the
daemon told apart from one that cannot be reached."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Sequence

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from streamer.config import MqttConfig
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
REFUSED_CODES = {2, 4, 5, 133, 134, 135}
#: Seconds between looks at the cameras' states (a recorded file reports no status event)
#: and at the clock (plates today start again from 0 at local midnight).
STATE_INTERVAL_S = 1.0


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


def new_client(config: MqttConfig, availability: str, tls: ssl.SSLContext | None) -> aiomqtt.Client:
    """A client for one connection, with ``offline`` on ``availability`` as its last will.
    Each connection gets a new client, so nothing of a broken one is sent again."""
    return aiomqtt.Client(
        config.host,
        config.port,
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
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._attempted = asyncio.Event()
        self._refusal: MqttRefusedError | None = None
        self._rng = random.Random()

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

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish ``messages`` in order, QoS 1, each acknowledged within ``timeout_s``.

        Raises:
            aiomqtt.MqttError: when not connected, or the broker did not take one.
        """
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        await self._publish(client, messages)

    async def _publish(self, client: aiomqtt.Client, messages: Sequence[Message]) -> None:
        async with self._lock:
            for message in messages:
                await client.publish(
                    message.topic,
                    message.payload,
                    qos=1,
                    retain=message.retain,
                    timeout=self.config.timeout_s,
                )

    async def run(self) -> None:
        """Connect, publish the retained state, watch the connection; on loss, reconnect
        after a backoff (until cancelled, or the broker refuses the first attempt)."""
        failures = connections = 0
        while True:
            client = new_client(self.config, self.topics.availability, self.tls)
            lost = False
            try:
                async with client:
                    failures = 0
                    await self._connected(client, again=connections > 0)
                    connections, lost = connections + 1, True
                    await self._watch(client)
            except Exception as error:
                self._client = None
                self.connected.clear()
                failures += 1
                wait = backoff(
                    failures,
                    self.config.reconnect_initial_s,
                    self.config.reconnect_max_s,
                    self._rng,
                )
                if not self._failed(error, lost, wait):
                    return
                await asyncio.sleep(wait)

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

    async def _connected(self, client: aiomqtt.Client, again: bool) -> None:
        """Publish the retained state and ``online``, then let the deliveries go."""
        online = Message(self.topics.availability, ONLINE.encode(), retain=True)
        await self._publish(client, [*self.retained.all(), online])
        self._client = client
        self.connected.set()
        self.wake()
        self._attempted.set()
        logger.info(
            "mqtt: %s %s as %s",
            "reconnected to" if again else "connected to",
            self.config.display,
            self.config.client_id,
        )

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Publish state changes until the connection is lost (raises ``MqttError``) or the
        daemon stops (then the cameras' last states and ``offline`` go out first)."""
        lost = asyncio.ensure_future(anext(client.messages))
        try:
            while True:
                done, _ = await asyncio.wait({lost}, timeout=STATE_INTERVAL_S)
                if done:
                    lost.result()  # raises when the connection is gone
                    lost = asyncio.ensure_future(anext(client.messages))
                if changes := self.retained.changes():
                    await self._publish(client, changes)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError):
                offline = Message(self.topics.availability, OFFLINE.encode(), retain=True)
                await self._publish(client, [*self.retained.changes(), offline])
            raise
        finally:
            lost.cancel()
