"""The evidence images that go to MQTT with each plate event: its crops, read from the
JPEG files the evidence writer saved (:mod:`streamer.delivery.recordings`) when the event
is delivered, since a consumer on another machine (Home Assistant) cannot open the paths
the event names.

==============  =====================  ==================================================
image           the event's key        topic (retained), Home Assistant image entity
==============  =====================  ==================================================
plate crop      ``crop_path``          ``<prefix>/<camera>/plate_crop``, "Plate crop"
vehicle crop    ``vehicle_crop_path``  ``<prefix>/<camera>/vehicle_crop``, "Vehicle crop"
==============  =====================  ==================================================

An event without the file (no crop saved, or the file already removed by retention) or
with one larger than :data:`MAX_IMAGE_BYTES` gives an empty payload, which clears the
image: a consumer shows none rather than another vehicle's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: The largest image published: a crop is tens of kilobytes; anything much larger is not a
#: crop, and a broker may refuse it (EMQX takes 1 MB packets by default).
MAX_IMAGE_BYTES = 512 * 1024
#: What HA is told the images are (the evidence writer saves JPEG only).
CONTENT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class Crop:
    """One kind of evidence image: its topic level and entity ``name``, its entity's
    ``title``, and the ``keys`` under which an event names its file."""

    name: str
    title: str
    keys: tuple[str, ...]

    def path(self, payload: Mapping[str, Any]) -> str | None:
        """The file ``payload`` (an event's JSON) names for this image, if any."""
        value: Any = payload
        for key in self.keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value if isinstance(value, str) and value else None


CROPS = (
    Crop("plate_crop", "Plate crop", ("crop_path",)),
    Crop("vehicle_crop", "Vehicle crop", ("vehicle_crop_path",)),
)


class CropReader:
    """Reads an event's crops for publishing (blocking: run it in a thread); a crop too
    large is left out with one warning per kind.

    Example:
        >>> CropReader().read(delivery.payload)
        {'plate_crop': b'\\xff\\xd8…', 'vehicle_crop': b''}
    """

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def read(self, payload: Mapping[str, Any]) -> dict[str, bytes]:
        """Each crop's JPEG bytes by name (empty where there is none to publish)."""
        return {crop.name: self._bytes(crop, crop.path(payload)) for crop in CROPS}

    def _bytes(self, crop: Crop, path: str | None) -> bytes:
        if path is None:
            return b""
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_IMAGE_BYTES + 1)
        except OSError:  # removed by retention: the event goes without it
            return b""
        if len(data) > MAX_IMAGE_BYTES:
            if crop.name not in self._warned:
                self._warned.add(crop.name)
                logger.warning(
                    "mqtt: %ss larger than %d kB are not published, and %s is (Home "
                    "Assistant shows no image for them); a lower recordings.jpeg_quality "
                    "makes them smaller",
                    crop.title.lower(),
                    MAX_IMAGE_BYTES // 1024,
                    path,
                )
            return b""
        return data
