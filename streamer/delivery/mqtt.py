"""MQTT output: plate events and camera states on a broker, and Home Assistant discovery.

The broker is an outbox target like a webhook (:mod:`streamer.delivery.senders`): each
event is committed to the outbox before it counts as emitted, and one :class:`MqttSender`
publishes the pending deliveries oldest first, QoS 1, marking each delivered once the
broker has acknowledged its messages (the topics: :mod:`streamer.delivery.topics`). While
the broker is unreachable the deliveries wait in the outbox, across restarts too, and the
connection is retried with backoff. On every connection the sender publishes again what
it keeps retained (discovery configs, each camera's last plate, status and plates today,
and ``online``), in case the broker lost it, and then the deliveries resume in order. A
message can arrive twice after an outage (the broker had it, its acknowledgement was
lost): consumers deduplicate on ``event_id`` and ``phase``, as webhook receivers do on
the Idempotency-Key.

The connection has ``<prefix>/availability`` = ``offline`` as its last will, so the
broker announces a daemon that dies; a daemon that stops says ``offline`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import aiomqtt

from streamer.config import CameraConfig, MqttConfig
from streamer.delivery.broker import MqttRefusedError, new_client, refused, tls_context
from streamer.delivery.homeassistant import discovery_configs
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import Delivery
from streamer.delivery.senders import OutboxSender, Outcome
from streamer.delivery.topics import OFFLINE, ONLINE, Topics, encode
from streamer.events import CameraSnapshot, CameraStatus
from streamer.retry import backoff
from streamer.sources import is_live
from streamer.sources.frame import CameraState

logger = logging.getLogger(__name__)

#: Seconds between looks at the cameras' states (a recorded file reports no status event)
#: and at the clock (plates today start again from 0 at local midnight).
STATE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Message:
    """One MQTT message to publish (QoS 1)."""

    topic: str
    payload: bytes
    retain: bool


def _local_day(moment: float) -> date:
    return datetime.fromtimestamp(moment).date()


class DailyCounts:
    """Vehicles per camera with a plate event committed on the current local day: the
    ``plates_today`` figure. A vehicle counts once, by its ``event_id``.

    Example:
        >>> counts = DailyCounts()
        >>> counts.add("gate-1", "9668ae90-…", time.time())
        True
    """

    def __init__(self, now: float | None = None) -> None:
        self.day = _local_day(time.time() if now is None else now)
        self._seen: dict[str, set[str]] = {}

    @property
    def midnight(self) -> float:
        """The start of the current day, as Unix time."""
        return datetime.combine(self.day, datetime.min.time()).timestamp()

    def roll(self, now: float | None = None) -> None:
        """Start again from nothing when the local day has changed."""
        today = _local_day(time.time() if now is None else now)
        if today != self.day:
            self.day, self._seen = today, {}

    def add(
        self, camera: str, event_id: str, committed_at: float, now: float | None = None
    ) -> bool:
        """Count a vehicle's plate event; whether the camera's count changed."""
        self.roll(now)
        if _local_day(committed_at) != self.day:
            return False
        seen = self._seen.setdefault(camera, set())
        if event_id in seen:
            return False
        seen.add(event_id)
        return True

    def count(self, camera: str) -> int:
        """The camera's vehicles today."""
        return len(self._seen.get(camera, ()))


class MqttSender(OutboxSender):
    """Publishes the outbox's events to the MQTT broker, and keeps the connection.

    Example:
        >>> sender = MqttSender(config.mqtt, outbox, config.cameras, snapshots)
        >>> task = asyncio.create_task(sender.run())
        >>> await sender.first_attempt()  # raises MqttRefusedError for bad credentials
    """

    def __init__(
        self,
        config: MqttConfig,
        outbox: Outbox,
        cameras: Sequence[CameraConfig],
        snapshots: Callable[[], Sequence[CameraSnapshot]] = tuple,
    ) -> None:
        super().__init__(config.label, outbox, config.reconnect_initial_s, config.reconnect_max_s)
        self.file = outbox  # the node's own outbox: its vehicles today, after a restart
        self.config = config
        self.topics = Topics(config.topic_prefix)
        self.cameras = [camera.name for camera in cameras]
        self.tls = tls_context(config)
        self.counts = DailyCounts()
        self.connected = asyncio.Event()
        self._files = {camera.name for camera in cameras if not is_live(camera.source)}
        self._snapshots = snapshots
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._attempted = asyncio.Event()
        self._refusal: MqttRefusedError | None = None
        # What the broker should hold retained, republished on every connection.
        self._retained = {
            m.topic: encode(m.payload) for m in discovery_configs(config, self.cameras)
        }
        self._statuses: dict[str, CameraState] = {}
        self._counted_day: date | None = None

    @property
    def name(self) -> str:
        """``mqtt broker <URL>``, in log messages."""
        return f"mqtt broker {self.config.display}"

    async def run(self) -> None:
        """Keep the connection and deliver, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._keep_connected())
            group.create_task(super().run())

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

    async def ready(self) -> None:
        """Wait until the broker is connected."""
        await self.connected.wait()

    async def publish_now(self, topic: str, payload: bytes, retain: bool) -> None:
        """Publish one message now, not through the outbox (a rule's action), waiting at
        most ``mqtt.timeout_s`` for a connection.

        Raises:
            TimeoutError: when the broker is not connected in time.
            aiomqtt.MqttError: when the broker did not take the message.
        """
        await asyncio.wait_for(self.connected.wait(), self.config.timeout_s)
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        await self._publish(client, [Message(topic, payload, retain)])

    def retry_note(self, wait: float) -> str:
        """A failed publication is retried as soon as the broker is connected again."""
        return "retried once the broker is connected"

    async def post(self, delivery: Delivery) -> Outcome:
        """Publish ``delivery``'s messages; delivered once the broker acknowledged all."""
        client = self._client
        if client is None:
            return Outcome(False, "not connected", retry_after=0.0)
        try:
            await self._publish(client, self._messages(delivery))
        except aiomqtt.MqttError as error:
            return Outcome(False, str(error) or type(error).__name__, retry_after=0.0)
        return Outcome(True)

    def _messages(self, delivery: Delivery) -> list[Message]:
        """A plate event: on ``plate`` and, retained, ``last_plate`` (and the camera's
        plates today when they changed); a camera status: ``status``, retained."""
        payload = delivery.payload
        camera = str(payload["camera"])
        body = encode(payload)
        if payload.get("type") == "camera_status":
            return [self._retain(self.topics.status(camera), body)]
        messages = [
            Message(self.topics.plate(camera), body, retain=False),
            self._retain(self.topics.last_plate(camera), body),
        ]
        if self.counts.add(camera, delivery.event_id, delivery.created_at):
            messages.append(self._count_message(camera))
        return messages

    def _retain(self, topic: str, payload: bytes) -> Message:
        self._retained[topic] = payload
        return Message(topic, payload, retain=True)

    def _count_message(self, camera: str) -> Message:
        return self._retain(
            self.topics.plates_today(camera), str(self.counts.count(camera)).encode()
        )

    def _state_changes(self) -> list[Message]:
        """Retained messages for what changed without an event: a new day's plate counts,
        and the state of the cameras that read recorded files."""
        messages = []
        self.counts.roll()
        if self.counts.day != self._counted_day:
            self._counted_day = self.counts.day
            messages += [self._count_message(camera) for camera in self.cameras]
        for snapshot in self._snapshots():
            if (
                snapshot.name not in self._files
                or self._statuses.get(snapshot.name) == snapshot.state
            ):
                continue
            self._statuses[snapshot.name] = snapshot.state
            status = CameraStatus(snapshot.name, snapshot.state, snapshot.error, datetime.now(UTC))
            messages.append(
                self._retain(self.topics.status(snapshot.name), encode(status.to_json()))
            )
        return messages

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

    async def _keep_connected(self) -> None:
        """Connect, publish the retained state, watch the connection; on loss, reconnect
        after a backoff."""
        vehicles = await asyncio.to_thread(self.file.vehicles_since, self.counts.midnight)
        for camera, event_id in vehicles:  # a restart keeps today's count
            self.counts.add(camera, event_id, self.counts.midnight)
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
                wait = backoff(failures, self.retry_initial_s, self.retry_max_s, self._rng)
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
        self._state_changes()
        await self._publish(
            client,
            [Message(topic, payload, retain=True) for topic, payload in self._retained.items()]
            + [Message(self.topics.availability, ONLINE.encode(), retain=True)],
        )
        self._client = client
        self.connected.set()
        self.wakeup.set()
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
                if changes := self._state_changes():
                    await self._publish(client, changes)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError):
                offline = Message(self.topics.availability, OFFLINE.encode(), retain=True)
                await self._publish(client, [*self._state_changes(), offline])
            raise
        finally:
            lost.cancel()
