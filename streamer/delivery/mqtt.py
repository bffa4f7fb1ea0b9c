"""MQTT output: plate events and camera states on a broker, and Home Assistant discovery.

The broker is an outbox target like a webhook (:mod:`streamer.delivery.senders`): each
event is committed to the outbox before it counts as emitted, and one :class:`MqttSender`
publishes the pending deliveries oldest first, QoS 1, marking each delivered once the
broker has acknowledged its messages (the topics: :mod:`streamer.delivery.topics`). While
the broker is unreachable the deliveries wait in the outbox, across restarts too, and the
connection is retried with backoff. On every connection the sender publishes again what
it keeps retained (:mod:`streamer.delivery.retained`: discovery configs, each camera's
last plate, status, plates today and crops, and ``online``), in case the broker lost it,
and then the deliveries resume in order (the connection: :mod:`streamer.delivery.broker`).
A message can arrive twice after an outage (the broker had it, its acknowledgement was
lost): consumers deduplicate on ``event_id`` and ``phase``, as webhook receivers do on
the Idempotency-Key.

A plate event's crops go just before it, read from the evidence files then
(:mod:`streamer.delivery.crops`); one the broker refuses is cleared and the event goes
without it.

A delivery with a message the broker refuses (larger than it takes, on a topic it does
not take) is moved to the dead letters in one line, and the others go on.

The connection has ``<prefix>/availability`` = ``offline`` as its last will, so the
broker announces a daemon that dies; a daemon that stops says ``offline`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import aiomqtt

from streamer.config import CameraConfig, MqttConfig
from streamer.delivery.broker import BrokerConnection
from streamer.delivery.crops import CropReader
from streamer.delivery.mqttclient import MessageRefusedError
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import Delivery
from streamer.delivery.retained import Message, RetainedState
from streamer.delivery.senders import OutboxSender, Outcome
from streamer.events import CameraSnapshot

logger = logging.getLogger(__name__)


class MqttSender(OutboxSender):
    """Publishes the outbox's events to the MQTT broker, over the connection it keeps.

    Example:
        >>> sender = MqttSender(config.mqtt, outbox, config.cameras, cameras.snapshots)
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
        self.retained = RetainedState(config, cameras, snapshots)
        self.crops = CropReader()
        self.connection = BrokerConnection(config, self.retained, self.wakeup.set)

    @property
    def name(self) -> str:
        """``mqtt broker <URL>``, in log messages."""
        return self.connection.name

    async def run(self) -> None:
        """Keep the connection and deliver, until cancelled."""
        midnight = self.retained.counts.midnight
        self.retained.restore(await asyncio.to_thread(self.file.vehicles_since, midnight))
        async with asyncio.TaskGroup() as group:
            group.create_task(self.connection.run())
            group.create_task(super().run())

    async def first_attempt(self) -> None:
        """Return once the first connection attempt is over (see
        :meth:`BrokerConnection.first_attempt`)."""
        await self.connection.first_attempt()

    async def ready(self) -> None:
        """Wait until the broker is connected."""
        await self.connection.connected.wait()

    async def publish_now(self, topic: str, payload: bytes, retain: bool) -> None:
        """Publish one message now, not through the outbox (a rule's action), waiting at
        most ``mqtt.timeout_s`` for a connection.

        Raises:
            TimeoutError: when the broker is not connected in time.
            aiomqtt.MqttError: when the broker did not take the message.
        """
        await asyncio.wait_for(self.connection.connected.wait(), self.config.timeout_s)
        await self.connection.publish([Message(topic, payload, retain)], state=False)

    def retry_note(self, wait: float) -> str:
        """A failed publication is retried as soon as the broker is connected again."""
        return "retried once the broker is connected"

    async def post(self, delivery: Delivery) -> Outcome:
        """Publish ``delivery``'s messages; delivered once the broker acknowledged all,
        dead when it refused one."""
        if not self.connection.connected.is_set():
            return Outcome(False, "not connected", retry_after=0.0)
        payload = delivery.payload
        messages = self.retained.messages(payload, delivery.event_id, delivery.created_at)
        try:
            if payload.get("type") != "camera_status":
                crops = await asyncio.to_thread(self.crops.read, payload)
                for image in self.retained.images(str(payload["camera"]), crops):
                    await self._publish_image(image)
            await self.connection.publish(messages)
        except MessageRefusedError as error:
            return Outcome(False, str(error), permanent=True)
        except aiomqtt.MqttError as error:
            return Outcome(False, str(error) or type(error).__name__, retry_after=0.0)
        return Outcome(True)

    async def _publish_image(self, image: Message) -> None:
        """Publish one of an event's crops. One the broker refuses is cleared (an empty
        message, so that no other vehicle's image stands for it), and the event goes
        without it.

        Raises:
            aiomqtt.MqttError: when the connection is lost.
        """
        try:
            await self.connection.publish([image])
        except MessageRefusedError as error:
            logger.warning("%s: %s; the event goes without this image", self.name, error)
            if image.payload:
                with contextlib.suppress(MessageRefusedError):
                    await self.connection.publish([Message(image.topic, b"", retain=True)])
