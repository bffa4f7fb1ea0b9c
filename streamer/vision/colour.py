"""A vehicle's colour from its pixels, without a model.

The paint shows best on the lower part of a vehicle's box (bonnet, doors, bumper): the
upper part is mostly glass and roof, the plate is left out, and the edges of the box are
mostly background. Those pixels are named one by one (:data:`COLOURS`): a painted
vehicle is the hue most of its coloured pixels share; a white, silver, grey or black one
is the brightness of its grey pixels. The confidence is the share of the pixels looked at
that have the name. Where colour cannot be told, the name is ``None``: a grey frame (an
infrared camera at night), a dark one, or pixels that agree on no name.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.vision.direction import Box

#: The names a colour can have.
COLOURS = (
    "white",
    "silver",
    "grey",
    "black",
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "brown",
)
#: The share of the box looked at: from the left and right, and from the top and bottom.
SIDE, TOP, BOTTOM = 0.12, 0.45, 0.08
#: A pixel at least this saturated (0..255) and bright is coloured; below, it is grey.
SATURATED, LIT = 70, 60
#: Hue bounds (OpenCV's 0..180) of each colour name, upper bound excluded.
HUES = (
    (8, "red"),
    (20, "orange"),
    (34, "yellow"),
    (85, "green"),
    (135, "blue"),
    (165, "purple"),
    (181, "red"),
)
#: Grey pixels at least this bright (0..255) are white, silver or grey; darker ones black.
WHITE, SILVER, GREY = 175, 130, 70
#: The brightness of this percentile of the grey pixels is the paint's (the rest is shade).
LIT_SHARE = 70
#: Grey pixels this close (0..255) to the paint's brightness count for its name.
GREY_SPREAD = 55
#: Coloured pixels must make at least this share of those looked at for a painted vehicle.
PAINTED = 0.25
#: Below this confidence the colour is ``None``.
SURE = 0.35
#: A frame whose mean saturation is below this is grey (infrared), and one whose mean
#: brightness is below this is dark (night): no colour is named on either.
GREY_FRAME, DARK_FRAME = 12.0, 45.0
#: Pixels at most looked at: a large box is sampled, not read whole.
SAMPLES = 20_000


@dataclass(frozen=True)
class Colour:
    """A colour name (one of :data:`COLOURS`) and how sure it is, 0..1."""

    name: str
    confidence: float


def _region(image: np.ndarray, box: Box, plate: Box | None) -> np.ndarray:
    """The pixels (``N x 3``, BGR) of the lower middle of ``box``, without the plate."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    left, right = max(0, round(x1 + SIDE * w)), min(width, round(x2 - SIDE * w))
    top, bottom = max(0, round(y1 + TOP * h)), min(height, round(y2 - BOTTOM * h))
    if right - left < 2 or bottom - top < 2:
        return np.empty((0, 3), np.uint8)
    keep = np.ones((bottom - top, right - left), bool)
    if plate is not None:  # the plate, with a margin of half its height
        px1, py1, px2, py2 = plate
        margin = (py2 - py1) // 2
        keep[
            max(0, py1 - margin - top) : max(0, py2 + margin - top),
            max(0, px1 - margin - left) : max(0, px2 + margin - left),
        ] = False
    pixels = image[top:bottom, left:right][keep]
    step = max(1, len(pixels) // SAMPLES)
    return np.ascontiguousarray(pixels[::step])


def frame_has_colour(image: np.ndarray) -> bool:
    """Whether colours can be told in ``image``: it is neither grey (an infrared camera)
    nor dark (night), judged on a small copy."""
    small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    return float(hsv[..., 1].mean()) >= GREY_FRAME and float(hsv[..., 2].mean()) >= DARK_FRAME


def name_pixels(pixels: np.ndarray) -> list[str]:
    """The colour name of each BGR pixel (``N x 3``); ``purple`` counts as a name here."""
    hsv = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_BGR2HSV).reshape(-1, 3)
    hue, saturation, value = (hsv[:, i].astype(int) for i in range(3))
    names = np.full(len(hsv), "black", dtype=object)
    coloured = (saturation >= SATURATED) & (value >= LIT)
    bounds = np.array([bound for bound, _ in HUES])
    hue_names = np.array([name for _, name in HUES], dtype=object)
    names[coloured] = hue_names[np.searchsorted(bounds, hue[coloured], side="right")]
    # Dark orange and red are brown.
    brown = coloured & np.isin(names, ["orange", "red"]) & (value < 130) & (hue < 25)
    names[brown & (hue >= 8)] = "brown"
    grey = ~coloured
    names[grey & (value >= GREY)] = "grey"
    names[grey & (value >= SILVER)] = "silver"
    names[grey & (value >= WHITE)] = "white"
    return list(names)


def _grey_name(value: float) -> str:
    """The name of a grey of brightness ``value`` (0..255)."""
    if value >= WHITE:
        return "white"
    if value >= SILVER:
        return "silver"
    return "grey" if value >= GREY else "black"


def vehicle_colour(image: np.ndarray, box: Box, plate: Box | None = None) -> Colour | None:
    """The colour of the vehicle in ``box`` of ``image``, leaving out its ``plate`` box;
    ``None`` where it cannot be told (see the module's description).

    Example:
        >>> image = np.full((200, 300, 3), (30, 30, 200), np.uint8)  # BGR red
        >>> vehicle_colour(image, (0, 0, 300, 200))
        Colour(name='red', confidence=1.0)
    """
    if not frame_has_colour(image):
        return None
    pixels = _region(image, box, plate)
    if len(pixels) == 0:
        return None
    names = np.array(name_pixels(pixels), dtype=object)
    hues = names[~np.isin(names, ["white", "silver", "grey", "black"])]
    if len(hues) >= PAINTED * len(names):
        found, counts = np.unique(hues, return_counts=True)
        best = int(np.argmax(counts))
        name, share = str(found[best]), counts[best] / len(names)
        # The paint holds most of the coloured pixels; the rest are lights and reflections.
        share = share if counts[best] >= 0.6 * len(hues) else 0.0
    else:
        # An unpainted vehicle is the brightness of its lit paint: the parts in shade, the
        # grille and the tyres are darker, and fewer than the paint.
        value = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_BGR2HSV)[:, 0, 2].astype(int)
        grey = value[~np.isin(names, list(set(COLOURS) - {"white", "silver", "grey", "black"}))]
        middle = float(np.percentile(grey, LIT_SHARE))
        name = _grey_name(middle)
        share = float(np.count_nonzero(np.abs(grey - middle) <= GREY_SPREAD)) / len(names)
    if name not in COLOURS or share < SURE:
        return None
    return Colour(name, round(float(share), 2))
