"""Synthetic demo video: vehicles with known plates driving up to a car-park gate camera.

Drawn from primitives (nothing is downloaded): one vehicle at a time brakes towards the gate,
waits and passes below the camera (or, ``away``, comes from below the camera and drives off).
Plates use matplotlib's DejaVu Sans Bold (Hershey as the fallback) so the real detector
finds them and Tesseract reads them; a vehicle may have a paint of a known colour, a blank
plate or none (:mod:`streamer.sources.demo_photo` draws several in one photo).
Deterministic per seed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

ImageBGR = NDArray[np.uint8]

PLATE_PATTERN = re.compile(r"^([A-Z]{2})([0-9]{2})([A-Z]{1,2})([0-9]{4})$")


@dataclass(frozen=True)
class DemoVehicle:
    """A vehicle of the demo video and the dues the demo database holds for it.

    Attributes:
        plate: Normalised plate text (uppercase letters and digits only).
        dues_amount: Outstanding dues; ``0.0`` means none.
        dues_message: Message shown with the dues; ``""`` when there are none.
        colour: The paint, one of :data:`PAINTS`; random when ``None``.
        blank: The plate is there, with nothing on it.
        no_plate: There is no plate.
        away: It comes from below the camera and drives away, instead of towards it.
    """

    plate: str
    dues_amount: float
    dues_message: str
    colour: str | None = None
    blank: bool = False
    no_plate: bool = False
    away: bool = False


#: The paints a demo vehicle can have by name (RGB), as the colour names of
#: :mod:`streamer.vision.colour`.
PAINTS: dict[str, tuple[int, int, int]] = {
    "white": (236, 236, 232),
    "silver": (168, 170, 174),
    "grey": (96, 98, 102),
    "black": (24, 24, 26),
    "red": (196, 28, 30),
    "orange": (236, 120, 20),
    "yellow": (236, 200, 24),
    "green": (34, 130, 52),
    "blue": (28, 64, 190),
    "brown": (110, 64, 34),
}


DEMO_VEHICLES: tuple[DemoVehicle, ...] = (
    DemoVehicle("KA05MN4821", 0.0, ""),
    DemoVehicle("MH12XY7395", 1500.0, "Unpaid parking charges of Rs 1500"),
    DemoVehicle("TN09CK2046", 0.0, ""),
    DemoVehicle("DL07CR6158", 350.0, "Pending toll dues of Rs 350"),
    DemoVehicle("HR26K4417", 820.0, "Overdue monthly pass fee of Rs 820"),
)


@dataclass(frozen=True)
class DemoManifest:
    """What :func:`render_video` wrote.

    Attributes:
        path: The MP4 file.
        fps: Frames per second.
        frame_count: Number of frames written.
        size: Frame size as ``(width, height)``.
        vehicles: The vehicles, in order of appearance.
        appearances: Per vehicle, the ``(first, last)`` media time in seconds at which its
            whole plate is inside the frame.
    """

    path: Path
    fps: float
    frame_count: int
    size: tuple[int, int]
    vehicles: tuple[DemoVehicle, ...]
    appearances: tuple[tuple[float, float], ...]


# Sprite geometry (pixels of the full-resolution vehicle sprite).
_CAR_W, _CAR_H, _GROUND = 1000, 830, 800
_PLATE_W, _PLATE_H, _PLATE_CY = 390, 96, 592
_TEXT_FILL_H = 0.62  # glyph height / plate height
_TEXT_FILL_W = 0.88  # text width / plate width
_TEXT_MIN_PX, _TEXT_MAX_PX = 12.0, 54.0  # on-screen glyph height at the start / the gate
_APPROACH, _DWELL = 0.62, 0.22  # fractions of a vehicle's time: approach, wait at the gate


def format_plate(plate: str) -> str:
    """Group a normalised plate as printed on Indian plates, e.g. ``"KA 01 AB 1234"``."""
    match = PLATE_PATTERN.match(plate)
    return " ".join(match.groups()) if match else plate


def _font_path() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    return path if path.is_file() else None


def _text_image(text: str, height: int) -> ImageBGR:
    """Dark-on-white glyphs of ``text``, cropped tight, about ``height`` pixels tall."""
    font_path = _font_path()
    if font_path is not None:
        size = int(height * 1.4)
        font = ImageFont.truetype(str(font_path), size=size)
        image = Image.new("L", (int(font.getlength(text) * 1.5) + size, size * 2), 255)
        draw, x = ImageDraw.Draw(image), size * 0.25
        for char in text:  # one by one, without kerning, so glyphs never touch
            draw.text((x, size * 0.25), char, font=font, fill=0)
            x += font.getlength(char)
        glyphs: ImageBGR = np.asarray(image, dtype=np.uint8)
    else:  # pragma: no cover - matplotlib is always installed with ultralytics
        scale = height / 22.0
        (width, tall), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, 6)
        glyphs = np.full((tall + base + 8, width + 8), 255, np.uint8)
        cv2.putText(glyphs, text, (4, tall + 4), cv2.FONT_HERSHEY_DUPLEX, scale, 0, 6, cv2.LINE_AA)
    ys, xs = np.nonzero(glyphs < 128)
    return glyphs[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def plate_image(plate: str, yellow: bool = False) -> ImageBGR:
    """The plate at sprite resolution: light background, dark border, text filling it; for
    an empty ``plate``, no text but its bolts and streaks of dirt (a plate nothing can be
    read on, which the plate detector still sees as one)."""
    scale = 3  # draw large, then shrink for smooth edges
    width, height = _PLATE_W * scale, _PLATE_H * scale
    background = (0, 200, 250) if yellow else (245, 245, 245)
    plate_img = np.full((height, width, 3), background, np.uint8)
    border = max(2, height // 22)
    cv2.rectangle(plate_img, (0, 0), (width - 1, height - 1), (25, 25, 25), 2 * border)
    if not plate:
        for x in (width // 5, width * 4 // 5):
            cv2.circle(plate_img, (x, height // 2), 9, (90, 90, 90), -1, cv2.LINE_AA)
        for x in np.linspace(30, width - 70, 12).astype(int):  # the same dirt on every plate
            cv2.line(plate_img, (x, 30), (x + 40, height - 30), (170, 165, 150), 10, cv2.LINE_AA)
        small = cv2.resize(plate_img, (_PLATE_W, _PLATE_H), interpolation=cv2.INTER_AREA)
        return np.asarray(small, dtype=np.uint8)
    text_h = round(height * _TEXT_FILL_H)
    text_w = round(width * _TEXT_FILL_W)
    glyphs = cv2.resize(
        _text_image(format_plate(plate), text_h), (text_w, text_h), interpolation=cv2.INTER_AREA
    )
    y0, x0 = (height - text_h) // 2, (width - text_w) // 2
    region = plate_img[y0 : y0 + text_h, x0 : x0 + text_w]
    ink = (1.0 - glyphs.astype(np.float32) / 255.0)[..., None]
    region[:] = (region * (1.0 - ink) + 20.0 * ink).astype(np.uint8)
    small = cv2.resize(plate_img, (_PLATE_W, _PLATE_H), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=np.uint8)


def _vehicle_sprite(vehicle: DemoVehicle, index: int, rng: np.random.Generator) -> ImageBGR:
    """A front view of a car as BGRA (alpha in channel 3), ground line at ``_GROUND``."""
    hue = int(rng.integers(0, 180))
    sat, val = int(rng.integers(40, 220)), int(rng.integers(90, 235))
    body = cv2.cvtColor(np.array([[[hue, sat, val]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    if vehicle.colour is not None:
        body = np.array(PAINTS[vehicle.colour])
    paint = tuple(int(c) for c in body)
    shade = tuple(int(c * 0.7) for c in body)
    image = Image.new("RGBA", (_CAR_W, _CAR_H), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((-20, _GROUND - 40, _CAR_W + 20, _GROUND + 28), fill=(0, 0, 0, 110))
    for x in (70, 770):  # tyres
        draw.rounded_rectangle((x, 600, x + 160, _GROUND), 30, fill=(22, 22, 24, 255))
    draw.polygon([(190, 40), (810, 40), (960, 330), (40, 330)], fill=(*paint, 255))
    draw.rounded_rectangle((0, 300, _CAR_W, 730), 70, fill=(*paint, 255))
    draw.polygon([(225, 78), (775, 78), (900, 318), (100, 318)], fill=(58, 72, 88, 255))
    draw.polygon([(260, 92), (520, 92), (330, 300), (140, 300)], fill=(96, 112, 130, 255))
    for x in (-30, 910):  # wing mirrors
        draw.rounded_rectangle((x, 290, x + 120, 350), 20, fill=(*shade, 255))
    draw.rounded_rectangle((15, 510, _CAR_W - 15, 700), 50, fill=(*shade, 255))  # bumper
    for x in (45, 745):  # headlights and fog lamps
        draw.rounded_rectangle((x, 380, x + 210, 455), 30, fill=(235, 235, 215, 255))
        draw.ellipse((x + 30, 395, x + 80, 440), fill=(255, 255, 245, 255))
        draw.rounded_rectangle((x + 15, 640, x + 195, 670), 12, fill=(40, 40, 40, 255))
    draw.rounded_rectangle((320, 385, 680, 485), 25, fill=(30, 32, 36, 255))
    for y in range(405, 480, 22):
        draw.line((340, y, 660, y), fill=(75, 78, 84, 255), width=6)
    rgba = np.asarray(image, dtype=np.uint8)
    sprite = np.asarray(cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), dtype=np.uint8)
    if vehicle.no_plate:
        return sprite
    plate = plate_image("" if vehicle.blank else vehicle.plate, yellow=index % 3 == 2)
    x0, y0 = (_CAR_W - _PLATE_W) // 2, _PLATE_CY - _PLATE_H // 2
    sprite[y0 : y0 + _PLATE_H, x0 : x0 + _PLATE_W, :3] = plate
    sprite[y0 : y0 + _PLATE_H, x0 : x0 + _PLATE_W, 3] = 255
    return sprite


def _background(size: tuple[int, int], rng: np.random.Generator) -> ImageBGR:
    """A static car-park entrance: sky, buildings, trees, a road with markings, a barrier."""
    width, height = size
    horizon = int(height * 0.36)
    frame = np.zeros((height, width, 3), np.uint8)
    sky = np.linspace(235, 190, horizon)[:, None]
    frame[:horizon] = np.stack([sky * 1.0, sky * 0.93, sky * 0.82], axis=-1).astype(np.uint8)
    frame[horizon:] = (92, 112, 98)  # grass verges
    for _ in range(7):  # buildings behind the car park
        x, w = int(rng.integers(0, width)), int(rng.integers(width // 10, width // 4))
        top = horizon - int(rng.integers(height // 10, height // 4))
        tone = int(rng.integers(120, 200))
        cv2.rectangle(frame, (x, top), (x + w, horizon), (tone, tone - 8, tone - 20), -1)
    for _ in range(9):  # trees
        x, r = int(rng.integers(0, width)), int(rng.integers(height // 30, height // 14))
        cv2.circle(
            frame, (x, horizon - r // 2), r, (40, int(rng.integers(90, 130)), 50), -1, cv2.LINE_AA
        )
    vx, far = width // 2, horizon + 10
    road = np.array([[vx - 70, far], [vx + 70, far], [width + 200, height], [-200, height]])
    cv2.fillPoly(frame, [road.astype(np.int32)], (88, 90, 92), cv2.LINE_AA)
    for side in (-1, 1):  # edge lines
        xs = [vx + side * d for d in (62, 66, width // 2 + 90, width // 2 + 60)]
        pts = np.array([[xs[0], far], [xs[1], far], [xs[2], height], [xs[3], height]])
        cv2.fillPoly(frame, [pts.astype(np.int32)], (200, 200, 200), cv2.LINE_AA)
    for k in range(12):  # dashed centre line, spaced in perspective
        d0, d1 = 1.0 / (1.0 + 0.6 * k), 1.0 / (1.0 + 0.6 * k + 0.25)
        y0, y1 = far + (height - far) * d1, far + (height - far) * d0
        w0, w1 = 2 + 10 * d1, 2 + 10 * d0
        pts = np.array([[vx - w0, y0], [vx + w0, y0], [vx + w1, y1], [vx - w1, y1]])
        cv2.fillPoly(frame, [pts.astype(np.int32)], (215, 215, 215), cv2.LINE_AA)
    cv2.rectangle(frame, (width - 150, horizon - 40), (width - 120, height - 60), (60, 60, 60), -1)
    for k in range(8):  # raised boom barrier, red and white
        colour = (40, 40, 200) if k % 2 == 0 else (235, 235, 235)
        y = horizon - 40 - k * 28
        cv2.rectangle(frame, (width - 142, y - 28), (width - 128, y), colour, -1)
    texture = rng.normal(0.0, 5.0, frame.shape)
    return np.clip(frame + texture, 0, 255).astype(np.uint8)


def _pose(u: float, size: tuple[int, int], lane: float) -> tuple[float, float, float]:
    """Sprite scale and the ground point (x, y) of a vehicle at fraction ``u`` of its time."""
    width, height = size
    s_min = _TEXT_MIN_PX / (_PLATE_H * _TEXT_FILL_H) * height / 720
    s_max = _TEXT_MAX_PX / (_PLATE_H * _TEXT_FILL_H) * height / 720
    if u < _APPROACH:  # braking towards the gate: distance eases out, scale ~ 1/distance
        p = u / _APPROACH
        ease = 1.0 - (1.0 - p) ** 2
        scale = 1.0 / (1.0 / s_min + ease * (1.0 / s_max - 1.0 / s_min)) * 0.97
    elif u < _APPROACH + _DWELL:  # creeping up to the barrier
        scale = s_max * (0.97 + 0.03 * (u - _APPROACH) / _DWELL)
    else:  # driving on, below the camera
        q = (u - _APPROACH - _DWELL) / (1.0 - _APPROACH - _DWELL)
        scale = s_max * (1.0 + 0.35 * q * q)
    # Perspective: the ground point drops below the horizon in proportion to the scale;
    # once past the gate the vehicle also drops away quickly, below the camera.
    ground_y = height * (0.36 + 0.69 * scale / s_max + 3.2 * max(0.0, scale / s_max - 1.0))
    return scale, width / 2 + lane * _CAR_W * scale, ground_y


def _composite(frame: ImageBGR, sprite: ImageBGR, scale: float, gx: float, gy: float) -> None:
    """Paste the sprite scaled by ``scale`` with its ground centre at ``(gx, gy)``."""
    w, h = max(1, round(_CAR_W * scale)), max(1, round(_CAR_H * scale))
    small = cv2.resize(sprite, (w, h), interpolation=cv2.INTER_AREA)
    x0, y0 = round(gx - w / 2), round(gy - _GROUND * scale)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = small[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0].astype(np.float32)
    alpha = part[..., 3:] / 255.0
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = (region * (1.0 - alpha) + part[..., :3] * alpha).astype(np.uint8)


def _plate_box(scale: float, gx: float, gy: float) -> tuple[float, float, float, float]:
    """The plate rectangle ``(x0, y0, x1, y1)`` in frame pixels for a pose."""
    cy = gy - (_GROUND - _PLATE_CY) * scale
    half_w, half_h = _PLATE_W * scale / 2, _PLATE_H * scale / 2
    return gx - half_w, cy - half_h, gx + half_w, cy + half_h


def render_video(
    path: Path,
    vehicles: Sequence[DemoVehicle] = DEMO_VEHICLES,
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (1280, 720),
    seconds_per_vehicle: float = 3.0,
    gap_seconds: float = 1.0,
    seed: int = 0,
    stop_seconds: float = 0.0,
    start_seconds: float = 0.0,
) -> DemoManifest:
    """Render the demo video: empty road, then each vehicle in turn, each followed by a gap.

    Args:
        path: Destination MP4 file; its folder is created. Written under a temporary name
            and renamed, so ``path`` never holds a partial file.
        vehicles: Vehicles to show, in order.
        fps: Frame rate.
        size: Frame size as ``(width, height)``.
        seconds_per_vehicle: How long each vehicle is in view.
        gap_seconds: Empty road before the first vehicle and after each one.
        seed: Seed of the random generator; the same seed gives the same video.
        stop_seconds: How long each vehicle stands still at the barrier (as a car does
            while it waits for it to lift), on top of ``seconds_per_vehicle``.
        start_seconds: Where on that timeline the video starts: past ``gap_seconds``, the
            first vehicle is already in view in the first frame.

    Returns:
        A manifest of the file, its timing and when each vehicle's plate is visible.

    Raises:
        RuntimeError: when OpenCV cannot open an MP4 writer.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    lanes = [float(x) for x in rng.uniform(-0.12, 0.12, len(vehicles))]
    background = _background(size, rng)
    sprites = [_vehicle_sprite(v, i, rng) for i, v in enumerate(vehicles)]
    noise = [rng.normal(0.0, 3.0, (height, width, 3)).astype(np.int16) for _ in range(8)]
    in_view = seconds_per_vehicle + stop_seconds
    total = gap_seconds + len(vehicles) * (in_view + gap_seconds)
    frame_count = round((total - start_seconds) * fps)
    stop_at = seconds_per_vehicle * (_APPROACH + _DWELL)  # when it reaches the barrier
    seen: list[list[float]] = [[] for _ in vehicles]
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    fourcc = cv2.VideoWriter.fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(temp), fourcc, fps, (width, height))
    done = False
    try:
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot open an MP4 (mp4v) writer for {temp}")
        for index in range(frame_count):
            t = start_seconds + index / fps
            frame = background.copy()
            slot, offset = divmod(t - gap_seconds, in_view + gap_seconds)
            k = int(slot)
            if 0 <= k < len(vehicles) and offset < in_view:
                moving = offset if offset < stop_at else max(stop_at, offset - stop_seconds)
                u = moving / seconds_per_vehicle
                scale, gx, gy = _pose(1.0 - u if vehicles[k].away else u, size, lanes[k])
                _composite(frame, sprites[k], scale, gx, gy)
                x0, y0, x1, y1 = _plate_box(scale, gx, gy)
                if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
                    seen[k].append(index / fps)
            blurred = cv2.GaussianBlur(frame, (3, 3), 0.6).astype(np.int16)
            grain = noise[int(rng.integers(0, len(noise)))]
            writer.write(np.clip(blurred + grain, 0, 255).astype(np.uint8))
        writer.release()
        os.replace(temp, path)
        done = True
    finally:
        if not done:
            writer.release()
            temp.unlink(missing_ok=True)
    appearances = tuple((min(ts, default=0.0), max(ts, default=0.0)) for ts in seen)
    logger.info("Rendered %d demo frames (%d vehicles) to %s", frame_count, len(vehicles), path)
    return DemoManifest(path, float(fps), frame_count, size, tuple(vehicles), appearances)


class DuesSetter(Protocol):
    """Where the demo's dues go: the dues store (``set`` as it has it)."""

    def set(self, plate: str, amount: float, message: str = "") -> None:
        """Create or replace the dues of ``plate``."""
        ...


def seed_demo_dues(dues: DuesSetter) -> None:
    """Put the demo vehicles' dues in the database: some pending, one paid, one unknown."""
    cleared = False
    for vehicle in DEMO_VEHICLES:
        if vehicle.dues_amount > 0:
            dues.set(vehicle.plate, vehicle.dues_amount, vehicle.dues_message)
        elif not cleared:
            dues.set(vehicle.plate, 0.0, "Paid")
            cleared = True
