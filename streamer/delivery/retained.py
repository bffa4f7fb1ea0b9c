"""What the daemon keeps retained on the MQTT broker: Home Assistant's discovery configs,
each camera's last plate, status, plates today and latest crops, and the availability.

The broker should always hold these; since a broker may lose them (restarted without
persistence), :class:`RetainedState` keeps them and the connection publishes all of them
again on every connection (:mod:`streamer.delivery.broker`). It also turns each delivery
into its messages (:meth:`RetainedState.messages`, :meth:`RetainedState.images`) and
notices what changed without an event (:meth:`RetainedState.changes`: a new day, a
recorded file's state).

A delivery's retained messages are kept once the broker has taken them
(:meth:`RetainedState.accepted`), and any message the broker refused is dropped
(:meth:`RetainedState.refused`), so that nothing the broker refuses is sent again on every
connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from streamer.config import CameraConfig, MqttConfig
from streamer.delivery.homeassistant import discovery_configs
from streamer.delivery.topics import Topics, encode
from streamer.events import CameraSnapshot, CameraStatus
from streamer.sources import is_live
from streamer.sources.frame import CameraState


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


class RetainedState:
    """The retained messages of one daemon, and the messages of each delivery.

    Example:
        >>> state = RetainedState(config.mqtt, config.cameras, cameras.snapshots)
        >>> state.messages(delivery.payload, delivery.event_id, delivery.created_at)
    """

    def __init__(
        self,
        config: MqttConfig,
        cameras: Sequence[CameraConfig],
        snapshots: Callable[[], Sequence[CameraSnapshot]],
    ) -> None:
        self.topics = Topics(config.topic_prefix)
        self.cameras = [camera.name for camera in cameras]
        self.counts = DailyCounts()
        self._files = {camera.name for camera in cameras if not is_live(camera.source)}
        self._snapshots = snapshots
        self._retained = {
            m.topic: encode(m.payload) for m in discovery_configs(config, self.cameras)
        }
        self._statuses: dict[str, CameraState] = {}
        self._counted_day: date | None = None

    def restore(self, vehicles: Sequence[tuple[str, str]]) -> None:
        """Count today's vehicles again after a restart: (camera, event_id) of each."""
        for camera, event_id in vehicles:
            self.counts.add(camera, event_id, self.counts.midnight)

    def all(self) -> list[Message]:
        """Every retained message, as the broker should hold them now."""
        self.changes()
        return [Message(topic, payload, retain=True) for topic, payload in self._retained.items()]

    def messages(self, payload: dict[str, Any], event_id: str, created_at: float) -> list[Message]:
        """A delivery's messages: a plate event on ``plate`` and, retained, ``last_plate``
        (and the camera's plates today when they changed); a camera status on ``status``,
        retained. (A plate event's images: :meth:`images`.)"""
        camera = str(payload["camera"])
        body = encode(payload)
        if payload.get("type") == "camera_status":
            return [Message(self.topics.status(camera), body, retain=True)]
        messages = [
            Message(self.topics.plate(camera), body, retain=False),
            Message(self.topics.last_plate(camera), body, retain=True),
        ]
        self.counts.add(camera, event_id, created_at)
        count = str(self.counts.count(camera)).encode()
        # Also when an earlier attempt counted the vehicle, but the count did not go out.
        if self._retained.get(self.topics.plates_today(camera)) != count:
            messages.append(Message(self.topics.plates_today(camera), count, retain=True))
        return messages

    def images(self, camera: str, images: Mapping[str, bytes]) -> list[Message]:
        """A plate event's crops (by name, empty for none) as retained messages, those that
        differ from what the broker holds (a final event often has its early event's), to
        publish before the event, so that a consumer acting on the event finds its images."""
        messages = []
        for name, data in images.items():
            topic = self.topics.image(camera, name)
            if self._retained.get(topic) != data:
                messages.append(Message(topic, data, retain=True))
        return messages

    def accepted(self, message: Message) -> None:
        """The broker took ``message``: a retained one is published again on every
        connection."""
        if message.retain:
            self._retained[message.topic] = message.payload

    def refused(self, message: Message) -> None:
        """The broker refused ``message``: it is not published again."""
        if self._retained.get(message.topic) == message.payload:
            del self._retained[message.topic]

    def changes(self) -> list[Message]:
        """Retained messages for what changed without an event: a new day's plate counts,
        and the state of the cameras that read recorded files (not ``starting``: the
        broker keeps the camera's last state until it reads, so that a restart does not
        take it offline for a moment)."""
        messages = []
        self.counts.roll()
        if self.counts.day != self._counted_day:
            self._counted_day = self.counts.day
            messages += [self._count_message(camera) for camera in self.cameras]
        for snapshot in self._snapshots():
            if (
                snapshot.name not in self._files
                or snapshot.state == CameraState.STARTING  # the last state holds till it reads
                or self._statuses.get(snapshot.name) == snapshot.state
            ):
                continue
            self._statuses[snapshot.name] = snapshot.state
            status = CameraStatus(snapshot.name, snapshot.state, snapshot.error, datetime.now(UTC))
            messages.append(
                self._retain(self.topics.status(snapshot.name), encode(status.to_json()))
            )
        return messages

    def _retain(self, topic: str, payload: bytes) -> Message:
        self._retained[topic] = payload
        return Message(topic, payload, retain=True)

    def _count_message(self, camera: str) -> Message:
        return self._retain(
            self.topics.plates_today(camera), str(self.counts.count(camera)).encode()
        )
