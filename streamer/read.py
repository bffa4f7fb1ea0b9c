"""Reading plates: crop preprocessing, the OCR engine, and a vote across a track's crops.

An :class:`OcrEngine` turns one prepared line image into text; the :class:`PlateReader`
of a camera prepares the best crops of a finished track, reads each, normalises the text
and lets the reads vote, so one bad frame does not decide the plate.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import shutil
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from streamer.config import PlatesConfig, ReaderConfig
from streamer.plates import matches_format, normalise
from streamer.track import PlateCrop

logger = logging.getLogger(__name__)

WHITELIST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Height, in pixels, that prepared plate images are scaled to before OCR.
TARGET_HEIGHT = 48
#: Prepared images are widened by this factor: Tesseract's English model misreads the
#: condensed fonts of many plates (a narrow 3 as B, an open 4 as L) less when widened.
WIDEN = 1.3


@dataclass(frozen=True)
class TextRead:
    """What an engine read in one image: text as read, confidence 0..1."""

    text: str
    confidence: float


@dataclass(frozen=True)
class PlateRead:
    """The agreed plate text of a track.

    Attributes:
        text: normalised plate number.
        confidence: OCR confidence 0..1, scaled by how much the reads agreed.
        format_valid: whether ``text`` matches one of the configured formats.
        crop: the best crop that read ``text`` (evidence and bbox come from it).
        votes: each crop's normalised read, best crop first ("" where nothing was read).
    """

    text: str
    confidence: float
    format_valid: bool
    crop: PlateCrop
    votes: tuple[str, ...]


class OcrEngine(Protocol):
    """Reads one line of plate text from a prepared (binarised, upright) image."""

    name: str

    def recognise(self, image: np.ndarray) -> TextRead:
        """Text and confidence for a single-line greyscale image."""
        ...


class OcrError(RuntimeError):
    """The OCR engine is not installed or cannot start."""


def find_tessdata(configured: Path | None = None) -> Path:
    """The Tesseract data folder holding ``eng.traineddata``.

    Raises:
        OcrError: with the package to install when there is none.
    """
    candidates = [str(configured)] if configured else []
    if prefix := os.environ.get("TESSDATA_PREFIX"):
        candidates.append(prefix)
    candidates += sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    candidates += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    for candidate in candidates:
        if (Path(candidate) / "eng.traineddata").is_file():
            return Path(candidate)
    raise OcrError(
        "Tesseract language data not found: install Debian's tesseract-ocr "
        "(apt-get install tesseract-ocr tesseract-ocr-eng)"
    )


class TesseractEngine:
    """Tesseract in single-line mode with a plate character whitelist.

    In-process through tesserocr when importable (about 30x faster per crop than
    spawning the binary); otherwise pytesseract and the ``tesseract`` command.
    """

    def __init__(self, tessdata: Path | None = None) -> None:
        self.tessdata = find_tessdata(tessdata)
        self._lock = threading.Lock()
        try:
            import tesserocr

            self._api = tesserocr.PyTessBaseAPI(
                path=str(self.tessdata),
                lang="eng",
                psm=tesserocr.PSM.SINGLE_LINE,
                oem=tesserocr.OEM.LSTM_ONLY,
            )
            self._api.SetVariable("tessedit_char_whitelist", WHITELIST)
            self._tesserocr = tesserocr
            self._api.SetVariable("load_system_dawg", "0")
            self._api.SetVariable("load_freq_dawg", "0")
            self.name = "tesserocr"
        except ImportError:
            if shutil.which("tesseract") is None:
                raise OcrError(
                    "Tesseract not found: install Debian's tesseract-ocr "
                    "(apt-get install tesseract-ocr tesseract-ocr-eng)"
                ) from None
            self._api = None
            self.name = "pytesseract"

    def recognise(self, image: np.ndarray) -> TextRead:
        """Read one line; confidence is Tesseract's mean word confidence / 100."""
        if self._api is None:
            return self._recognise_subprocess(image)
        height, width = image.shape[:2]
        data = np.ascontiguousarray(image)
        with self._lock:
            self._api.SetImageBytes(data.tobytes(), width, height, 1, width)
            self._api.Recognize()
            # With a whitelist, Tesseract's word confidences read 0; symbols' are right.
            symbols = self._symbols()
        text = "".join(symbol for symbol, _ in symbols if symbol)
        if not text:
            return TextRead("", 0.0)
        confidence = sum(conf for _, conf in symbols) / len(symbols) / 100.0
        return TextRead(text, confidence)

    def _symbols(self) -> list[tuple[str, float]]:
        level = self._tesserocr.RIL.SYMBOL
        iterator = self._api.GetIterator()
        if iterator is None:
            return []
        symbols = []
        for result in self._tesserocr.iterate_level(iterator, level):
            try:
                symbols.append((result.GetUTF8Text(level), result.Confidence(level)))
            except RuntimeError:  # an empty result has no text to return
                continue
        return symbols

    def _recognise_subprocess(self, image: np.ndarray) -> TextRead:
        import pytesseract

        config = (
            f"--psm 7 --oem 1 --tessdata-dir {self.tessdata} -c tessedit_char_whitelist={WHITELIST}"
        )
        data = pytesseract.image_to_data(
            image, lang="eng", config=config, output_type=pytesseract.Output.DICT
        )
        words = [
            (w, float(c))
            for w, c in zip(data["text"], data["conf"], strict=True)
            if w.strip() and float(c) >= 0
        ]
        if not words:
            return TextRead("", 0.0)
        return TextRead(" ".join(w for w, _ in words), sum(c for _, c in words) / len(words) / 100)


def _character_boxes(binary: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x, y, w, h)`` of white blobs shaped like plate characters.

    Blobs touching the left or right edge are dropped: they are the plate's frame or
    whatever surrounds the plate, not characters.
    """
    height, width = binary.shape[:2]
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes = []
    for x, y, w, h, area in stats[1:count]:
        if x == 0 or x + w >= width:
            continue
        if 0.3 * height <= h <= 0.95 * height and w <= 1.2 * h and area >= 0.1 * w * h:
            boxes.append((int(x), int(y), int(w), int(h)))
    return boxes


def _dark_text(grey: np.ndarray) -> bool:
    """Whether the characters are darker than the plate (the background is the majority)."""
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return bool(np.count_nonzero(binary) > binary.size / 2)


def _text_white(grey: np.ndarray, dark_text: bool) -> np.ndarray:
    """Otsu-binarise so that the characters are white."""
    mode = cv2.THRESH_BINARY_INV if dark_text else cv2.THRESH_BINARY
    return cv2.threshold(grey, 0, 255, mode + cv2.THRESH_OTSU)[1]


def _clear_border(binary: np.ndarray) -> np.ndarray:
    """Remove the plate frame and white blobs that touch the image border.

    Long horizontal runs (the frame's top and bottom edges) are removed first, so that
    a character touching the frame is not taken away with it.
    """
    length = max(3, binary.shape[1] // 2)
    lines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    binary = cv2.subtract(binary, lines)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    height, width = binary.shape[:2]
    touching = [
        label
        for label in range(1, count)
        if stats[label, 0] == 0
        or stats[label, 1] == 0
        or stats[label, 0] + stats[label, 2] >= width
        or stats[label, 1] + stats[label, 3] >= height
    ]
    binary[np.isin(labels, touching)] = 0
    return binary


def _plate_region(grey: np.ndarray) -> np.ndarray:
    """Warp the plate's bright rectangle upright, or return ``grey`` when none stands out.

    The largest bright blob of a plate crop is the plate's background; its minimum-area
    rectangle gives both the tight crop and the skew.
    """
    _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return grey
    contour = max(contours, key=cv2.contourArea)
    (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
    if w < h:
        w, h, angle = h, w, angle - 90
    # Equivalent rectangles differ by 180 degrees; the smallest turn keeps text upright.
    angle = (angle + 90) % 180 - 90
    if not (0.2 * grey.size <= w * h <= 0.9 * grey.size and 1.3 <= w / max(h, 1) <= 8):
        return grey
    rotation = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    rotation[0, 2] += w / 2 - cx
    rotation[1, 2] += h / 2 - cy
    return cv2.warpAffine(
        grey, rotation, (round(w), round(h)), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def prepare(crop: np.ndarray) -> np.ndarray:
    """Make a plate crop ready for single-line OCR: black text on white, upright, tight.

    Steps: grey; upscale to a working height; cut out and straighten the plate's bright
    rectangle; straighten again by the line through the character blobs; cut tight around
    the row of characters; scale to :data:`TARGET_HEIGHT`, widened by :data:`WIDEN`;
    binarise; clear the frame; pad with white.
    """
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    scale = 2 * TARGET_HEIGHT / max(1, grey.shape[0])
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    grey = _plate_region(cv2.GaussianBlur(grey, (3, 3), 0))
    dark_text = _dark_text(grey)

    boxes = _character_boxes(_text_white(grey, dark_text))
    if len(boxes) >= 3:
        centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes])
        slope = float(np.polyfit(centres[:, 0], centres[:, 1], 1)[0])
        angle = math.degrees(math.atan(slope))
        if 0.5 < abs(angle) < 25:
            centre = (grey.shape[1] / 2, grey.shape[0] / 2)
            rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
            grey = cv2.warpAffine(
                grey,
                rotation,
                (grey.shape[1], grey.shape[0]),
                flags=cv2.INTER_CUBIC,
                borderMode=cv2.BORDER_REPLICATE,
            )
            boxes = _character_boxes(_text_white(grey, dark_text))
    if len(boxes) >= 3:
        # Keep the band of the character row (the plate's other lines and frame go).
        median = float(np.median([h for _, _, _, h in boxes]))
        row = [b for b in boxes if 0.7 * median <= b[3] <= 1.3 * median]
        y1 = min(y for _, y, _, _ in row)
        y2 = max(y + h for _, y, _, h in row)
        pad = int(0.15 * median)
        grey = grey[max(0, y1 - pad) : y2 + pad]

    scale = TARGET_HEIGHT / max(1, grey.shape[0])
    grey = cv2.resize(grey, None, fx=scale * WIDEN, fy=scale, interpolation=cv2.INTER_AREA)
    black_on_white = cv2.bitwise_not(_clear_border(_text_white(grey, dark_text)))
    border = TARGET_HEIGHT // 4
    return cv2.copyMakeBorder(
        black_on_white, border, border, border, border, cv2.BORDER_CONSTANT, value=255
    )


def vote(reads: Sequence[TextRead], formats: Sequence[str]) -> tuple[str, float] | None:
    """Agree on one text from several normalised reads.

    Each distinct text scores the sum of its reads' confidences, doubled when it matches
    a configured format. The result's confidence is the winner's mean confidence times
    its share of the total score, so disagreement lowers it.
    """
    scores: dict[str, float] = defaultdict(float)
    confidences: dict[str, list[float]] = defaultdict(list)
    for read in reads:
        if not read.text:
            continue
        weight = 2.0 if matches_format(read.text, formats) else 1.0
        scores[read.text] += weight * max(read.confidence, 0.01)
        confidences[read.text].append(read.confidence)
    if not scores:
        return None
    winner = max(scores, key=lambda text: (scores[text], len(confidences[text])))
    share = scores[winner] / sum(scores.values())
    mean = sum(confidences[winner]) / len(confidences[winner])
    return winner, round(mean * share, 3)


class PlateReader:
    """Reads a finished track's plate for one camera's reader and plate settings."""

    def __init__(self, engine: OcrEngine, reader: ReaderConfig, plates: PlatesConfig) -> None:
        self.engine = engine
        self.reader = reader
        self.plates = plates

    def read_crop(self, crop: np.ndarray) -> TextRead:
        """One crop's normalised read; empty when too short, too long or too unsure."""
        raw = self.engine.recognise(prepare(crop))
        text = normalise(raw.text)
        if (
            raw.confidence < self.reader.min_confidence
            or not self.plates.min_length <= len(text) <= self.plates.max_length
        ):
            return TextRead("", raw.confidence)
        return TextRead(text, raw.confidence)

    def read(self, crops: Sequence[PlateCrop]) -> PlateRead | None:
        """The agreed plate of the best ``reader.crops`` crops, or ``None`` if unreadable."""
        chosen = list(crops[: self.reader.crops])
        reads = [self.read_crop(crop.image) for crop in chosen]
        agreed = vote(reads, self.plates.formats)
        if agreed is None:
            return None
        text, confidence = agreed
        valid = matches_format(text, self.plates.formats)
        if self.plates.require_valid_format and not valid:
            return None
        best = next(crop for crop, read in zip(chosen, reads, strict=True) if read.text == text)
        return PlateRead(text, confidence, valid, best, tuple(read.text for read in reads))
