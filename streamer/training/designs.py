"""Synthetic plates as regions design them: US plates with their state names, slogans,
stickers and scenes; European plates with the blue band; Indian, Brazilian (old grey and
Mercosur) and Vietnamese plates; square two-row motorcycle plates; and plain ones in no
region's design. :func:`render_plate` draws one, chosen at random, deterministically
for a given generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from streamer.training.draw import (
    emblem,
    frame,
    ground,
    paste,
    random_colour,
)
from streamer.training.pieces import (
    BLACK,
    BLUE,
    SLOGANS,
    STATES,
    WHITE,
    YELLOW,
    Plate,
    caption,
    contrast,
    number,
    pick,
    sticker,
)
from streamer.training.texts import DIGITS, LETTERS, label_of, plate_rows, plate_text


def _us(rng: np.random.Generator) -> Plate:
    height = 150
    width = int(height * rng.uniform(1.85, 2.2))
    scheme = rng.random()
    light = scheme < 0.75
    background = (
        random_colour(rng, light=True)
        if light
        else random_colour(rng, light=False)
        if scheme < 0.88
        else np.array([0.95, 0.8, 0.1], np.float32) * rng.uniform(0.85, 1.05)
    )
    light = light or scheme >= 0.88
    image = ground(height, width, background, rng, busy=0.6)
    ink = contrast(rng, light)
    text = plate_text("us", rng, free_share=0.3)
    left, right = int(width * rng.uniform(0.04, 0.12)), int(width * rng.uniform(0.88, 0.96))
    if rng.random() < 0.3:  # a logo or stacked letters beside the number
        side = int(width * rng.uniform(0.12, 0.2))
        if rng.random() < 0.65:
            size = int(height * rng.uniform(0.3, 0.6))
            mask, tone = emblem(size, rng)
            top = int(height * rng.uniform(0.2, 0.5 - size / height / 2 + 0.2))
            if rng.random() < 0.7:
                paste(image, mask, (left, top, left + side, top + size), tone)
                left += side + 4
            else:
                paste(image, mask, (right - side, top, right, top + size), tone)
                right -= side + 4
        else:
            letters = "".join(pick(rng, tuple(LETTERS)) for _ in range(2))
            for row, char in enumerate(letters):
                caption(
                    image,
                    char,
                    (right - side // 3, int(height * (0.38 + 0.22 * row))),
                    int(height * 0.15),
                    ink,
                    rng,
                    side,
                )
            right -= side // 2 + 4
    top = int(height * rng.uniform(0.22, 0.33))
    bottom = int(height * rng.uniform(0.7, 0.82))
    drawn = number(image, text, (left, top, right, bottom), ink, rng)
    if rng.random() < 0.9:
        tone = random_colour(rng, light=not light) if rng.random() < 0.7 else ink
        caption(
            image,
            pick(rng, STATES),
            (width // 2, int(height * rng.uniform(0.09, 0.15))),
            int(height * rng.uniform(0.08, 0.15)),
            tone,
            rng,
            int(width * 0.8),
        )
    if rng.random() < 0.6:
        caption(
            image,
            pick(rng, SLOGANS),
            (width // 2, int(height * 0.9)),
            int(height * rng.uniform(0.05, 0.09)),
            random_colour(rng, light=not light),
            rng,
            int(width * 0.85),
        )
    for corner in range(int(rng.integers(0, 3))):
        w, h = int(width * rng.uniform(0.1, 0.17)), int(height * rng.uniform(0.1, 0.18))
        x = int(width * 0.03) if corner == 0 else width - int(width * 0.03) - w
        sticker(image, (x, int(height * 0.04), x + w, int(height * 0.04) + h), rng)
    if rng.random() < 0.5:
        frame(image, random_colour(rng), int(rng.integers(1, 5)))
    if rng.random() < 0.4:
        for x in (int(width * 0.2), int(width * 0.8)):
            image[int(height * 0.08) : int(height * 0.13), x - 3 : x + 3] *= 0.4
    return Plate(image, label_of(text), drawn, False, "us")


def _eu(rng: np.random.Generator, region: str) -> Plate:
    height = 110
    width = int(height * rng.uniform(4.0, 4.8))
    background = YELLOW if region == "nl" or (region == "gb" and rng.random() < 0.5) else WHITE
    image = ground(
        height,
        width,
        np.clip(background + rng.normal(0, 0.03, 3), 0, 1).astype(np.float32),
        rng,
        busy=0.05,
    )
    band = int(width * rng.uniform(0.07, 0.1))
    if region != "gb" or rng.random() < 0.6:
        image[:, :band] = BLUE
        code = {
            "eu": pick(rng, ("D", "F", "I", "E", "NL", "PL", "B", "A", "CZ", "LT")),
            "de": "D",
            "fr": "F",
            "it": "I",
            "es": "E",
            "pl": "PL",
            "nl": "NL",
            "ua": "UA",
            "gb": "UK",
        }[region]
        if region == "ua":
            image[int(height * 0.15) : int(height * 0.32), band // 5 : band - band // 5] = (
                BLUE * 1.5
            )
            image[int(height * 0.32) : int(height * 0.49), band // 5 : band - band // 5] = YELLOW
        else:
            for angle in np.linspace(0, 2 * np.pi, 13)[:-1]:
                x = int(band / 2 + band * 0.3 * np.cos(angle))
                y = int(height * 0.3 + band * 0.3 * np.sin(angle))
                image[y - 1 : y + 2, x - 1 : x + 2] = YELLOW
        caption(
            image, code, (band // 2, int(height * 0.75)), int(height * 0.22), WHITE, rng, band - 2
        )
    else:
        band = 0
    right = width - int(width * 0.02)
    if region in {"fr", "it"}:
        right = width - band
        image[:, right:] = BLUE
        caption(
            image,
            f"{int(rng.integers(1, 100)):02d}",
            (right + band // 2, int(height * 0.75)),
            int(height * 0.2),
            WHITE,
            rng,
            band - 2,
        )
    text = plate_text(region, rng, free_share=0.1)
    top = int(height * rng.uniform(0.1, 0.18))
    drawn = number(
        image,
        text,
        (
            band + int(width * 0.03),
            top,
            right - int(width * 0.02),
            height - int(height * rng.uniform(0.1, 0.18)),
        ),
        BLACK,
        rng,
    )
    if rng.random() < 0.8:
        frame(image, BLACK, int(rng.integers(1, 4)))
    return Plate(image, label_of(text), drawn, False, region)


def _india(rng: np.random.Generator) -> Plate:
    height = 110
    width = int(height * rng.uniform(3.6, 4.6))
    image = ground(height, width, WHITE if rng.random() < 0.7 else YELLOW, rng, busy=0.05)
    left = int(width * 0.03)
    if rng.random() < 0.5:  # the hologram and IND
        band = int(width * 0.08)
        mask, _ = emblem(int(height * 0.3), rng)
        paste(
            image,
            mask,
            (left, int(height * 0.12), left + int(height * 0.3), int(height * 0.42)),
            np.array([0.3, 0.4, 0.7], np.float32),
        )
        caption(
            image,
            "IND",
            (left + band // 2, int(height * 0.7)),
            int(height * 0.14),
            np.array([0.1, 0.2, 0.6], np.float32),
            rng,
            band,
        )
        left += band + 4
    text = plate_text("in_rto", rng, free_share=0.1)
    drawn = number(
        image,
        text,
        (left, int(height * 0.15), width - int(width * 0.03), int(height * 0.86)),
        BLACK,
        rng,
    )
    frame(image, BLACK, int(rng.integers(1, 5)))
    return Plate(image, label_of(text), drawn, False, "in_rto")


def _brazil(rng: np.random.Generator) -> Plate:
    height = 120
    width = int(height * rng.uniform(2.9, 3.3))
    text = plate_text("br", rng, free_share=0.1)
    if rng.random() < 0.6:  # the old plates: grey (red for hire), the city above
        hire = rng.random() < 0.25
        tone = (
            np.array([0.65, 0.1, 0.1], np.float32)
            if hire
            else np.full(3, rng.uniform(0.65, 0.85), np.float32)
        )
        image = ground(height, width, tone, rng, busy=0.05)
        ink = WHITE if hire else BLACK
        caption(
            image,
            f"{pick(rng, ('SP', 'RJ', 'MG', 'PR', 'RS', 'SC'))} - {pick(rng, STATES)}",
            (width // 2, int(height * 0.12)),
            int(height * 0.1),
            ink,
            rng,
            int(width * 0.7),
        )
        top = int(height * 0.25)
    else:  # Mercosur: white, a blue band with BRASIL
        image = ground(height, width, WHITE, rng, busy=0.05)
        image[: int(height * 0.22)] = BLUE
        caption(
            image,
            "BRASIL",
            (width // 2, int(height * 0.11)),
            int(height * 0.12),
            WHITE,
            rng,
            int(width * 0.4),
        )
        ink, top = BLACK, int(height * 0.3)
    drawn = number(
        image, text, (int(width * 0.05), top, int(width * 0.95), int(height * 0.9)), ink, rng
    )
    frame(image, BLACK, int(rng.integers(1, 4)))
    return Plate(image, label_of(text), drawn, False, "br")


def _two_rows(rng: np.random.Generator, region: str) -> Plate:
    """A square motorcycle plate or a two-line plate (Vietnam, Italy, India, Brazil)."""
    top_text, bottom_text = plate_rows(region, rng)
    height = 160
    aspect = rng.uniform(1.7, 2.1) if region == "vn" else rng.uniform(1.0, 1.5)
    width = int(height * aspect)
    light = rng.random() < 0.8
    background = (
        (WHITE if rng.random() < 0.6 else random_colour(rng, light=True))
        if light
        else random_colour(rng, light=False)
    )
    image = ground(height, width, background, rng, busy=0.15)
    ink = BLACK if light and rng.random() < 0.7 else contrast(rng, light)
    split = rng.uniform(0.46, 0.54)
    margin_y = rng.uniform(0.06, 0.12)
    gap = rng.uniform(0.02, 0.07)
    top_box = (
        int(width * 0.06),
        int(height * margin_y),
        int(width * 0.94),
        int(height * (split - gap)),
    )
    bottom_box = (
        int(width * 0.06),
        int(height * (split + gap)),
        int(width * 0.94),
        int(height * (1 - margin_y)),
    )
    drawn_top = number(image, top_text, top_box, ink, rng)
    drawn_bottom = number(image, bottom_text, bottom_box, ink, rng)
    if rng.random() < 0.8:
        frame(image, ink, int(rng.integers(1, 5)))
    box = (
        min(drawn_top[0], drawn_bottom[0]),
        drawn_top[1],
        max(drawn_top[2], drawn_bottom[2]),
        drawn_bottom[3],
    )
    return Plate(image, label_of(top_text + bottom_text), box, True, region)


def _vietnam(rng: np.random.Generator) -> Plate:
    height = 110
    width = int(height * rng.uniform(4.0, 4.7))
    scheme = rng.random()
    background = WHITE if scheme < 0.75 else YELLOW if scheme < 0.9 else BLUE
    image = ground(height, width, background, rng, busy=0.02)
    ink = WHITE if scheme >= 0.9 else BLACK
    text = plate_text("vn", rng, free_share=0.1)
    drawn = number(
        image,
        text,
        (int(width * 0.04), int(height * 0.14), int(width * 0.96), int(height * 0.86)),
        ink,
        rng,
    )
    frame(image, ink, int(rng.integers(2, 5)))
    return Plate(image, label_of(text), drawn, False, "vn")


def _plain(rng: np.random.Generator) -> Plate:
    height = 120
    width = int(height * rng.uniform(2.2, 5.0))
    light = rng.random() < 0.7
    image = ground(height, width, random_colour(rng, light=light), rng, busy=0.3)
    text = plate_text("us", rng, free_share=1.0)
    margin = rng.uniform(0.08, 0.2)
    drawn = number(
        image,
        text,
        (int(width * 0.05), int(height * margin), int(width * 0.95), int(height * (1 - margin))),
        contrast(rng, light),
        rng,
    )
    if rng.random() < 0.5:
        frame(image, random_colour(rng), int(rng.integers(1, 5)))
    return Plate(image, label_of(text), drawn, False, "plain")


#: The designs by name, and how often each is drawn.
DESIGNS: dict[str, tuple[float, Callable[[np.random.Generator], Plate]]] = {
    "us": (0.32, _us),
    "ua": (0.05, lambda rng: _eu(rng, "ua")),
    "eu": (
        0.17,
        lambda rng: _eu(rng, pick(rng, ("eu", "de", "fr", "it", "es", "pl", "nl", "gb"))),
    ),
    "in": (0.07, _india),
    "br": (0.06, _brazil),
    "vn": (0.06, _vietnam),
    "vn_two_rows": (0.05, lambda rng: _two_rows(rng, "vn")),
    "two_rows": (
        0.07,
        lambda rng: _two_rows(rng, pick(rng, ("it_moto", "us", "in_rto", "br", "plain"))),
    ),
    "plain": (0.15, _plain),
}


def render_plate(rng: np.random.Generator, design: str | None = None) -> Plate:
    """One plate of ``design`` (see :data:`DESIGNS`), or of one chosen by the designs'
    weights. A number with fewer than two characters is drawn again."""
    names = list(DESIGNS)
    weights = np.array([DESIGNS[name][0] for name in names])
    while True:
        name = design or names[int(rng.choice(len(names), p=weights / weights.sum()))]
        plate = DESIGNS[name][1](rng)
        if len(plate.label) >= 2 and all(char in LETTERS + DIGITS for char in plate.label):
            return plate
