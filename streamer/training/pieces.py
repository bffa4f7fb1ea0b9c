"""The pieces every plate design draws with: the rendered :class:`Plate`, the colours,
the number (:func:`number`), small captions and stickers, and the US states' names and
slogans that stand around a number."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.training.draw import (
    NUMBER_FONTS,
    SMALL_FONTS,
    emblem,
    fonts,
    glyph_row,
    paste,
    random_colour,
    small_text,
)

Box = tuple[int, int, int, int]

STATES = (
    "ALABAMA",
    "ALASKA",
    "ARIZONA",
    "ARKANSAS",
    "CALIFORNIA",
    "COLORADO",
    "CONNECTICUT",
    "DELAWARE",
    "FLORIDA",
    "GEORGIA",
    "HAWAII",
    "IDAHO",
    "ILLINOIS",
    "INDIANA",
    "IOWA",
    "KANSAS",
    "KENTUCKY",
    "LOUISIANA",
    "MAINE",
    "MARYLAND",
    "MASSACHUSETTS",
    "MICHIGAN",
    "MINNESOTA",
    "MISSISSIPPI",
    "MISSOURI",
    "MONTANA",
    "NEBRASKA",
    "NEVADA",
    "NEW HAMPSHIRE",
    "NEW JERSEY",
    "NEW MEXICO",
    "NEW YORK",
    "NORTH CAROLINA",
    "NORTH DAKOTA",
    "OHIO",
    "OKLAHOMA",
    "OREGON",
    "PENNSYLVANIA",
    "RHODE ISLAND",
    "SOUTH CAROLINA",
    "SOUTH DAKOTA",
    "TENNESSEE",
    "TEXAS",
    "UTAH",
    "VERMONT",
    "VIRGINIA",
    "WASHINGTON",
    "WEST VIRGINIA",
    "WISCONSIN",
    "WYOMING",
    "Texas",
    "Ohio",
    "Utah",
    "Florida",
    "Oregon",
    "Nevada",
    "Idaho",
    "Iowa",
)
SLOGANS = (
    "Sunshine State",
    "Live Free or Die",
    "Land of Lincoln",
    "Great Lakes",
    "The Natural State",
    "Famous Potatoes",
    "Garden State",
    "Empire State",
    "First in Flight",
    "Wild Wonderful",
    "Vacationland",
    "Green Mountain State",
    "Ocean State",
    "Big Sky Country",
    "Beautiful",
    "Grand Canyon State",
    "Lone Star State",
    "Discover the Spirit",
    "Explore More",
    "Aloha",
    "Taxation Without Representation",
    "Keep Moving",
    "Centennial",
    "www.dmv.gov",
    "COUNTY",
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
BLUE = np.array([0.0, 0.2, 0.6], np.float32)
YELLOW = np.array([1.0, 0.82, 0.0], np.float32)
WHITE = np.array([0.97, 0.97, 0.95], np.float32)
BLACK = np.array([0.05, 0.05, 0.06], np.float32)


@dataclass(frozen=True)
class Plate:
    """A rendered plate.

    Attributes:
        image: float32 RGB 0..1.
        label: its number, characters only.
        text_box: ``(x1, y1, x2, y2)`` around the number's characters.
        two_rows: whether the number is on two rows.
        region: the design's region.
    """

    image: np.ndarray
    label: str
    text_box: Box
    two_rows: bool
    region: str


def pick(rng: np.random.Generator, items: tuple[str, ...] | list[str]) -> str:
    return str(items[int(rng.integers(len(items)))])


def number(
    image: np.ndarray,
    text: str,
    box: Box,
    colour: np.ndarray,
    rng: np.random.Generator,
    font_names: tuple[str, ...] = NUMBER_FONTS,
) -> Box:
    """``text`` drawn in ``box`` (its height the characters' height; narrower when the
    font's natural width is less, centred or left-aligned) with emblems in its ``|``
    gaps; returns the box the characters took."""
    font = fonts(font_names)[int(rng.integers(len(fonts(font_names))))]
    glyphs = glyph_row(text, font, spacing=float(rng.uniform(0.02, 0.2)))
    x1, y1, x2, y2 = box
    height = y2 - y1
    width = glyphs.mask.shape[1] * height / glyphs.mask.shape[0] * rng.uniform(0.75, 1.15)
    width = int(min(width, x2 - x1))
    left = x1 + int((x2 - x1 - width) * (0.5 if rng.random() < 0.8 else rng.uniform(0, 1)))
    drawn = (left, y1, left + width, y2)
    if rng.random() < 0.4:  # embossed: a shadow under the characters
        shift = max(1, height // 25)
        paste(
            image,
            glyphs.mask * 0.5,
            (left + shift, y1 + shift, left + width + shift, y2 + shift),
            BLACK,
        )
    paste(image, glyphs.mask, drawn, colour)
    scale = width / glyphs.mask.shape[1]
    for gap_start, gap_end in glyphs.emblems:
        size = int(min((gap_end - gap_start) * scale, height * rng.uniform(0.5, 0.95)))
        if size < 4:
            continue
        mask, tone = emblem(size, rng)
        centre_x = left + int((gap_start + gap_end) / 2 * scale)
        top = y1 + (height - size) // 2
        paste(
            image, mask, (centre_x - size // 2, top, centre_x - size // 2 + size, top + size), tone
        )
    return drawn


def caption(
    image: np.ndarray,
    text: str,
    centre: tuple[int, int],
    height: int,
    colour: np.ndarray,
    rng: np.random.Generator,
    widest: int,
) -> None:
    """Small ``text`` centred at ``centre``, capitals ``height`` high, at most ``widest``."""
    mask = small_text(
        text.replace("\u00a0", " "),
        fonts(SMALL_FONTS)[int(rng.integers(len(fonts(SMALL_FONTS))))],
        height,
    )
    width = min(widest, int(mask.shape[1] * rng.uniform(0.8, 1.2)))
    x, y = centre[0] - width // 2, centre[1] - mask.shape[0] // 2
    paste(image, mask, (x, y, x + width, y + mask.shape[0]), colour)


def sticker(image: np.ndarray, box: Box, rng: np.random.Generator) -> None:
    """A registration sticker: a coloured rectangle with a month or a year on it."""
    x1, y1, x2, y2 = box
    tone = random_colour(rng)
    image[max(0, y1) : y2, max(0, x1) : x2] = tone
    ink = BLACK if tone.mean() > 0.5 else WHITE
    text = pick(rng, MONTHS) if rng.random() < 0.5 else f"{int(rng.integers(0, 100)):02d}"
    caption(
        image, text, ((x1 + x2) // 2, (y1 + y2) // 2), int((y2 - y1) * 0.55), ink, rng, x2 - x1 - 2
    )


def contrast(rng: np.random.Generator, light_ground: bool) -> np.ndarray:
    if light_ground:
        return random_colour(rng, light=False) if rng.random() < 0.6 else BLACK
    return WHITE if rng.random() < 0.7 else random_colour(rng, light=True)
