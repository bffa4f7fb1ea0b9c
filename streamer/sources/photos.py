"""Photos as input: an uploaded or named image file, checked before it is decoded (an
image bomb declares far more pixels than its bytes)."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image


class ImageError(ValueError):
    """The bytes given are not a decodable image."""


#: The image formats read (Pillow's names), each checked from its header before decoding.
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
_NOT_AN_IMAGE = "not an image (expected JPEG, PNG, BMP, WebP or TIFF)"


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of JPEG/PNG/BMP/WebP/TIFF bytes, read from the header alone.

    Raises:
        ImageError: when the bytes are empty or not one of those formats.
    """
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning; the caller applies its limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        # Pillow's own ceiling (twice Image.MAX_IMAGE_PIXELS), above any allowed limit.
        ceiling = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(
            f"declares over {ceiling:,} pixels, far over the limit (http.max_image_pixels)"
        ) from None
    except (OSError, ValueError, SyntaxError):
        # Pillow raises UnidentifiedImageError (an OSError) for unknown bytes, and
        # ValueError or SyntaxError for some broken headers.
        raise ImageError(_NOT_AN_IMAGE) from None
    return width, height


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode JPEG/PNG/BMP/WebP/TIFF bytes to a BGR image, refusing one whose header
    declares more than ``max_pixels`` before any pixel is decoded (an image bomb: a small
    PNG can declare 32000 by 32000).

    This is CPU- and memory-heavy: call it in a worker thread, not on the event loop.

    Raises:
        ImageError: when the bytes are empty, not an image, too large, or damaged.
    """
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageError(
            f"{width}x{height} is {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (http.max_image_pixels)"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise ImageError("damaged image: it cannot be decoded")
    return image
