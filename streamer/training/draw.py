"""Drawing on a synthetic plate: fonts from Debian's font packages, rows of characters
with their separators and emblems, small text, stickers, backgrounds.

Images are float32 RGB in 0..1 while drawn; a *mask* is a float32 coverage 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_ROOT = Path("/usr/share/fonts")

#: Fonts the plate numbers are drawn in, by file name, and the Debian packages that carry
#: them: fonts-dejavu-core, fonts-dejavu-extra, fonts-liberation, fonts-urw-base35,
#: fonts-freefont-ttf, fonts-roboto-unhinted, fonts-open-sans, fonts-b612.
NUMBER_FONTS = (
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "LiberationSansNarrow-Bold.ttf",
    "LiberationSansNarrow-Regular.ttf",
    "LiberationSans-Bold.ttf",
    "LiberationMono-Bold.ttf",
    "NimbusSansNarrow-Bold.otf",
    "NimbusSansNarrow-Regular.otf",
    "NimbusSans-Bold.otf",
    "NimbusMonoPS-Bold.otf",
    "URWGothic-Demi.otf",
    "FreeSansBold.ttf",
    "FreeMonoBold.ttf",
    "RobotoCondensed-Bold.ttf",
    "RobotoCondensed-Regular.ttf",
    "RobotoCondensed-Medium.ttf",
    "Roboto-Bold.ttf",
    "Roboto-Medium.ttf",
    "OpenSans-CondBold.ttf",
    "OpenSans-Bold.ttf",
    "OpenSans-Semibold.ttf",
    "B612Mono-Bold.otf",
    "B612-Bold.otf",
)
#: Fonts of the small text around the number: state names, slogans, stickers.
SMALL_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "LiberationSerif-BoldItalic.ttf",
    "LiberationSans-Regular.ttf",
    "NimbusRoman-Bold.otf",
    "NimbusSans-Italic.otf",
    "C059-BdIta.otf",
    "P052-Bold.otf",
    "URWBookman-Demi.otf",
    "Z003-MediumItalic.otf",
    "FreeSerifBoldItalic.ttf",
    "Roboto-Regular.ttf",
    "OpenSans-Regular.ttf",
)
#: At least this many number fonts must be installed.
FEWEST_FONTS = 4

#: The Debian packages the fonts above come from.
FONT_PACKAGES = (
    "fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-urw-base35 "
    "fonts-freefont-ttf fonts-roboto-unhinted fonts-open-sans fonts-b612"
)


class FontError(RuntimeError):
    """Too few of the fonts are installed."""


@lru_cache(maxsize=1)
def _installed() -> dict[str, Path]:
    return {
        path.name: path for path in sorted(FONT_ROOT.rglob("*")) if path.suffix in {".ttf", ".otf"}
    }


def fonts(names: tuple[str, ...]) -> list[Path]:
    """The installed ones of ``names``, in that order.

    Raises:
        FontError: naming the packages to install, when fewer than
            :data:`FEWEST_FONTS` are.
    """
    found = [_installed()[name] for name in names if name in _installed()]
    if len(found) < FEWEST_FONTS:
        raise FontError(f"too few plate fonts installed: apt-get install {FONT_PACKAGES}")
    return found


@lru_cache(maxsize=512)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size=size)


@dataclass(frozen=True)
class Glyphs:
    """A row of characters drawn as a mask, and where its emblems go.

    Attributes:
        mask: coverage, cut to the characters' height.
        emblems: ``(x1, x2)`` column ranges left free for emblems.
    """

    mask: np.ndarray
    emblems: tuple[tuple[int, int], ...]


def glyph_row(text: str, font: Path, spacing: float = 0.08, size: int = 80) -> Glyphs:
    """``text`` drawn character by character in ``font`` (``spacing``: extra space
    between characters, a share of ``size``); ``|`` leaves a gap for an emblem; the mask is
    cut to the height of the capitals and digits."""
    face = _font(font, size)
    width = int(size * (0.9 + spacing) * len(text) + size)
    canvas = Image.new("L", (width, size * 2), 0)
    draw = ImageDraw.Draw(canvas)
    x = size * 0.1
    baseline = int(size * 1.4)
    emblems = []
    for char in text:
        if char == "|":
            emblems.append((int(x), int(x + size * 0.75)))
            x += size * (0.75 + spacing)
            continue
        if char == " ":
            x += size * 0.35
            continue
        draw.text((x, baseline), char, font=face, fill=255, anchor="ls")
        x += face.getlength(char) + size * spacing
    ascent = face.getbbox("H8", anchor="ls")
    top, bottom = baseline + ascent[1], baseline + ascent[3]
    mask = np.asarray(canvas, np.float32)[max(0, top) : bottom + 1, : int(x) + 1] / 255.0
    return Glyphs(mask, tuple(emblems))


def small_text(text: str, font: Path, height: int) -> np.ndarray:
    """A mask of ``text`` whose capitals are ``height`` pixels high."""
    size = max(6, int(height / 0.72))
    face = _font(font, size)
    left, top, right, bottom = face.getbbox(text)
    canvas = Image.new("L", (max(1, int(right - left) + 2), max(1, int(bottom - top) + 2)), 0)
    ImageDraw.Draw(canvas).text((-left + 1, -top + 1), text, font=face, fill=255)
    return np.asarray(canvas, np.float32) / 255.0


def paste(
    image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], colour: np.ndarray
) -> None:
    """``mask`` scaled into ``box`` ``(x1, y1, x2, y2)`` of ``image``, in ``colour``
    (clipped to the image)."""
    x1, y1, x2, y2 = box
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    scaled = cv2.resize(mask, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return
    alpha = scaled[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1, None]
    region = image[cy1:cy2, cx1:cx2]
    region[:] = region * (1 - alpha) + colour * alpha


def emblem(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small emblem (a seal, a diamond, a star, a heart, a state's outline) as a mask of
    ``size`` x ``size`` and its colour."""
    mask = np.zeros((size, size), np.uint8)
    centre, radius = size // 2, size // 2 - 1
    kind = int(rng.integers(8))
    if kind == 0:  # a seal: a ring around a disc
        cv2.circle(mask, (centre, centre), radius, 255, -1)
        cv2.circle(mask, (centre, centre), int(radius * 0.7), 120, -1)
    elif kind == 1:  # a diamond
        diamond = [(centre, 0), (size - 1, centre), (centre, size - 1), (0, centre)]
        cv2.fillPoly(mask, [np.array(diamond, np.int32)], 255)
    elif kind == 2:  # a star
        angles = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        points = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 255)
    elif kind == 3:  # a heart
        r = size // 4
        cv2.circle(mask, (centre - r, centre - r // 2), r, 255, -1)
        cv2.circle(mask, (centre + r, centre - r // 2), r, 255, -1)
        tip = [
            (centre - 2 * r, centre - r // 3),
            (centre + 2 * r, centre - r // 3),
            (centre, size - 2),
        ]
        cv2.fillPoly(mask, [np.array(tip, np.int32)], 255)
    elif kind == 4:  # an outline of a state, a blob with corners
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        radii = rng.uniform(0.5, 1.0, 7) * radius
        points = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 255)
    elif kind == 6:  # a cactus, a tree or a lighthouse: tall, like a letter I or a 1
        stem = max(1, size // 6)
        cv2.rectangle(mask, (centre - stem, size // 5), (centre + stem, size - 1), 255, -1)
        if rng.random() < 0.5:  # arms
            cv2.rectangle(
                mask, (size // 5, size // 3), (size // 5 + stem, size // 2 + stem), 255, -1
            )
            cv2.rectangle(mask, (size // 5, size // 2), (centre, size // 2 + stem), 255, -1)
        else:  # a crown
            cv2.circle(mask, (centre, size // 4), size // 4, 255, -1)
    elif kind == 7:  # a figure: a head and a body, or a horse and rider
        cv2.circle(mask, (centre, size // 6), max(1, size // 7), 255, -1)
        body = [
            (centre - size // 5, size // 3),
            (centre + size // 5, size // 3),
            (centre + size // 3, size - 1),
            (centre - size // 3, size - 1),
        ]
        cv2.fillPoly(mask, [np.array(body, np.int32)], 255)
    else:  # a wheel or logo: concentric rings
        for step, value in ((1.0, 255), (0.75, 0), (0.5, 255), (0.25, 0)):
            cv2.circle(mask, (centre, centre), max(1, int(radius * step)), value, -1)
    return mask.astype(np.float32) / 255.0, random_colour(rng)


def random_colour(rng: np.random.Generator, light: bool | None = None) -> np.ndarray:
    """An RGB colour 0..1; light (a plate's ground) or dark (its characters) when asked."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(0, 255)]]], np.float32)
    if light is True:
        hsv[0, 0, 1] = rng.uniform(0, 90)
        hsv[0, 0, 2] = rng.uniform(200, 255)
    elif light is False:
        hsv[0, 0, 2] = rng.uniform(0, 110)
    rgb: np.ndarray = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return rgb.astype(np.float32) / 255.0


def ground(
    height: int, width: int, colour: np.ndarray, rng: np.random.Generator, busy: float
) -> np.ndarray:
    """A plate's ground: ``colour`` with a gradient, and with probability ``busy`` a
    scene (soft blobs, hills, a sun, stripes) such as many US plates carry."""
    image = np.empty((height, width, 3), np.float32)
    image[:] = colour
    other = np.clip(colour + rng.normal(0, 0.12, 3), 0, 1)
    ramp = np.linspace(0, 1, height if rng.random() < 0.7 else width, dtype=np.float32)
    ramp = ramp[:, None, None] if len(ramp) == height else ramp[None, :, None]
    image[:] = image * (1 - ramp) + other * ramp
    if rng.random() < busy:
        for _ in range(int(rng.integers(1, 6))):
            layer = np.zeros((height, width), np.uint8)
            kind = int(rng.integers(4))
            if kind == 0:  # hills along the bottom
                xs = np.linspace(0, width, 8)
                ys = height * rng.uniform(0.5, 0.95, 8)
                points = np.concatenate([np.stack([xs, ys], 1), [[width, height], [0, height]]])
                cv2.fillPoly(layer, [points.astype(np.int32)], 255)
            elif kind == 1:  # a sun or a blob
                centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
                axes = (int(rng.uniform(0.1, 0.5) * width), int(rng.uniform(0.1, 0.6) * height))
                cv2.ellipse(layer, centre, axes, rng.uniform(0, 180), 0, 360, 255, -1)
            elif kind == 2:  # a stripe
                y = int(rng.uniform(0, height))
                cv2.rectangle(
                    layer, (0, y), (width, y + int(rng.uniform(0.03, 0.2) * height)), 255, -1
                )
            else:  # a waving band
                xs = np.arange(0, width + 10, 10).astype(np.float64)
                ys = height * (
                    0.5 + 0.3 * np.sin(xs / width * rng.uniform(2, 8) + rng.uniform(0, 6))
                )
                points = np.stack([xs, ys], 1).astype(np.int32)
                cv2.polylines(layer, [points], False, 255, int(rng.uniform(0.02, 0.12) * height))
            blur = int(rng.integers(0, 3)) * 4 + 1
            alpha = cv2.GaussianBlur(layer, (blur, blur), 0).astype(np.float32)[..., None] / 255.0
            alpha *= rng.uniform(0.2, 0.8)
            tone = np.clip(colour + rng.normal(0, 0.3, 3), 0, 1)
            image[:] = image * (1 - alpha) + tone * alpha
    return image


def _rounded(layer: np.ndarray, box: tuple[int, int, int, int], radius: int, value: int) -> None:
    x1, y1, x2, y2 = box
    radius = max(1, min(radius, (x2 - x1) // 2, (y2 - y1) // 2))
    cv2.rectangle(layer, (x1 + radius, y1), (x2 - radius, y2), value, -1)
    cv2.rectangle(layer, (x1, y1 + radius), (x2, y2 - radius), value, -1)
    for x, y in (
        (x1 + radius, y1 + radius),
        (x2 - radius, y1 + radius),
        (x1 + radius, y2 - radius),
        (x2 - radius, y2 - radius),
    ):
        cv2.circle(layer, (x, y), radius, value, -1)


def frame(image: np.ndarray, colour: np.ndarray, thickness: int) -> None:
    """A rounded border of ``thickness`` pixels just inside ``image``'s edge."""
    height, width = image.shape[:2]
    layer = np.zeros((height, width), np.uint8)
    radius = max(2, height // 10)
    inset = 1
    _rounded(layer, (inset, inset, width - 1 - inset, height - 1 - inset), radius, 255)
    t = inset + thickness
    _rounded(layer, (t, t, width - 1 - t, height - 1 - t), max(1, radius - thickness), 0)
    alpha = layer.astype(np.float32)[..., None] / 255.0
    image[:] = image * (1 - alpha) + colour * alpha
