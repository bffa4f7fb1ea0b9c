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

A crop larger than :data:`MAX_IMAGE_BYTES` is scaled down to fit. An event without the
file (no crop saved, or the file already removed by retention) gives an empty payload,
which clears the image: a consumer shows none rather than another vehicle's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: The largest image published: a plate crop is a few kilobytes, and a broker may refuse
#: larger messages (EMQX takes 1 MB packets by default). A larger crop is scaled down to
#: :data:`SHRUNK_SIDE` pixels (and further, if need be) at :data:`SHRUNK_QUALITY`.
MAX_IMAGE_BYTES = 512 * 1024
SHRUNK_SIDE, SHRUNK_QUALITY = 1280, 80
#: A file larger than this is not an evidence crop (a 4K frame is a few megabytes): it is
#: not read.
MAX_FILE_BYTES = 32_000_000
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
    """Reads an event's crops for publishing (blocking: run it in a thread). A crop
    larger than :data:`MAX_IMAGE_BYTES` (a vehicle filling a 4K frame) is scaled down to
    fit; one that cannot be read as an image is left out, with one warning per kind.

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
                data = file.read(MAX_FILE_BYTES + 1)
        except OSError:  # removed by retention: the event goes without it
            return b""
        if len(data) <= MAX_IMAGE_BYTES:
            return data
        smaller = shrink(data) if len(data) <= MAX_FILE_BYTES else None
        if smaller is None and crop.name not in self._warned:
            self._warned.add(crop.name)
            logger.warning(
                "mqtt: %s is not a JPEG image of at most %d MB: its %s is not published "
                "(Home Assistant shows none; said once)",
                path,
                MAX_FILE_BYTES // 1_000_000,
                crop.title.lower(),
            )
        return smaller or b""


def shrink(data: bytes) -> bytes | None:
    """``data``, an image, as a JPEG of at most :data:`MAX_IMAGE_BYTES`: its longest side
    at most :data:`SHRUNK_SIDE` pixels, smaller still where that is not enough; ``None``
    when it is not an image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    height, width = image.shape[:2]
    scale = min(1.0, SHRUNK_SIDE / max(height, width))
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, SHRUNK_QUALITY])
        if not ok:
            return None
        if len(encoded) <= MAX_IMAGE_BYTES:
            return encoded.tobytes()
        scale *= 0.7
