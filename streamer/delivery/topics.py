"""The MQTT topics the daemon publishes, and how their payloads are written.

======================================  ========  =========================================
topic                                   retained  payload
======================================  ========  =========================================
``<prefix>/<camera>/plate``             no        each plate event, early and final, as the
                                                  events log has it
``<prefix>/<camera>/last_plate``        yes       the same: the camera's latest plate event
``<prefix>/<camera>/status``            yes       the camera's status, as a camera_status
                                                  event of the events log
``<prefix>/<camera>/plates_today``      yes       vehicles with a plate event since local
                                                  midnight (a number)
``<prefix>/<camera>/plate_crop``        yes       the latest plate event's plate crop (JPEG;
                                                  empty when it has none), published before
                                                  the event (:mod:`streamer.delivery.crops`)
``<prefix>/<camera>/vehicle_crop``      yes       the same, of its vehicle
``<prefix>/availability``               yes       ``online``, or ``offline`` (the last will)
======================================  ========  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamer.events import compact_json

#: The payloads of ``<prefix>/availability``.
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class Topics:
    """The topics under one ``mqtt.topic_prefix``."""

    prefix: str

    @property
    def availability(self) -> str:
        """``online`` while the daemon is connected, ``offline`` otherwise (the last will)."""
        return f"{self.prefix}/availability"

    def plate(self, camera: str) -> str:
        """Each plate event of ``camera``."""
        return f"{self.prefix}/{camera}/plate"

    def last_plate(self, camera: str) -> str:
        """The latest plate event of ``camera`` (retained)."""
        return f"{self.prefix}/{camera}/last_plate"

    def status(self, camera: str) -> str:
        """The status of ``camera`` (retained)."""
        return f"{self.prefix}/{camera}/status"

    def plates_today(self, camera: str) -> str:
        """How many vehicles ``camera`` has reported today (retained)."""
        return f"{self.prefix}/{camera}/plates_today"

    def image(self, camera: str, name: str) -> str:
        """The JPEG of ``camera``'s latest vehicle: ``name`` is ``plate_crop`` or
        ``vehicle_crop`` (retained)."""
        return f"{self.prefix}/{camera}/{name}"


def encode(record: dict[str, Any]) -> bytes:
    """A JSON payload, written as the events log writes its lines (without the newline)."""
    return compact_json(record).encode()
