"""The plate recogniser: a small CTC network trained on plates by the project itself
(:mod:`streamer.training`), run by OpenVINO; and the fusion of it with PP-OCRv4.

The network reads one grey line image (``[1, 1, H, W]``, H and W from the model) and
gives, for each of its W/4 columns, the probabilities of a blank and of each character
of :data:`CHARACTERS`; the greedy CTC decoding (:func:`decode`) keeps each column's best
character, merges repeats and drops blanks, and gives each character the probability
of its surest column.

Two-row plates (square motorcycle plates, Vietnamese and Italian two-line plates) are
folded first (:func:`fold_rows`): when the crop holds two rows of characters of about the
same height, one above the other, the top row is put left of the bottom row, so the
network reads both in order as one line. A row of small text (a US state's name, a
slogan) is not a row of characters of the number's height and is never folded.

Everything here is numpy, OpenCV and OpenVINO: the daemon never imports torch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.plates import fix_confusions, matches_format, normalise

#: The committed model and its character list (one line, in the network's output order
#: after the blank).
MODELS = Path(__file__).resolve().parent / "models"
MODEL = MODELS / "plate_recogniser.onnx"
CHARACTERS_FILE = MODELS / "plate_recogniser.chars"
CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: A crop is looked at for two rows only when it is at most this many times as wide as it
#: is tall (two-line plates are square or 2:1; a one-line European plate is 4.7:1).
TWO_ROW_ASPECT = 3.0
#: Height, in pixels, that a crop is scaled to when looking for rows.
ROW_HEIGHT = 96


@dataclass(frozen=True)
class CharacterRead:
    """A read with a probability for each character it gives.

    Attributes:
        text: the characters read (over :data:`CHARACTERS`).
        confidence: the mean of ``characters`` (0 when nothing was read).
        characters: the probability of each character of ``text``, in order.
    """

    text: str
    confidence: float
    characters: tuple[float, ...]


@dataclass(frozen=True)
class _Blob:
    x: int
    y: int
    w: int
    h: int

    @property
    def middle(self) -> float:
        return self.y + self.h / 2


def _blobs(binary: np.ndarray) -> list[_Blob]:
    """White blobs of ``binary`` shaped like characters of a two-row plate: a fifth to
    three fifths of its height, narrower than tall, clear of its border."""
    height, width = binary.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    blobs = []
    for x, y, w, h, area in stats[1:count]:
        if x == 0 or y == 0 or x + w >= width or y + h >= height:
            continue
        if 0.18 * height <= h <= 0.6 * height and 0.08 * h <= w <= 1.1 * h and area >= 0.15 * w * h:
            blobs.append(_Blob(int(x), int(y), int(w), int(h)))
    return blobs


def _rows(blobs: list[_Blob]) -> list[list[_Blob]]:
    """``blobs`` grouped into rows: level with each other and of about the same height."""
    rows: list[list[_Blob]] = []
    for blob in sorted(blobs, key=lambda b: b.middle):
        for row in rows:
            height = float(np.median([b.h for b in row]))
            middle = float(np.median([b.middle for b in row]))
            if abs(blob.middle - middle) <= 0.3 * height and 0.7 <= blob.h / height <= 1.4:
                row.append(blob)
                break
        else:
            rows.append([blob])
    return [row for row in rows if len(row) >= 2]


def _two_rows(binary: np.ndarray) -> float | None:
    """Where, in ``binary`` (characters white), two rows of characters meet, or ``None``."""
    rows = _rows(_blobs(binary))
    if len(rows) < 2:
        return None
    # The two rows with the most ink: a plate's rows, not rivets or a sticker.
    top, bottom = sorted(
        sorted(rows, key=lambda row: sum(b.w * b.h for b in row))[-2:],
        key=lambda row: min(b.y for b in row),
    )
    top_end = max(b.y + b.h for b in top)
    bottom_start = min(b.y for b in bottom)
    top_height = float(np.median([b.h for b in top]))
    bottom_height = float(np.median([b.h for b in bottom]))
    left = max(min(b.x for b in top), min(b.x for b in bottom))
    right = min(max(b.x + b.w for b in top), max(b.x + b.w for b in bottom))
    narrower = min(max(b.x + b.w for b in row) - min(b.x for b in row) for row in (top, bottom))
    if (
        top_end <= bottom_start + 0.05 * binary.shape[0]
        and 0.6 <= top_height / bottom_height <= 1.6
        and right - left >= narrower / 3
    ):
        return (top_end + bottom_start) / 2
    return None


def row_split(grey: np.ndarray) -> int | None:
    """Where a crop of two rows of characters is to be cut (a row of ``grey``), or
    ``None`` for a one-row plate.

    Two rows: two groups of at least two character blobs each (of the characters'
    colour), one above the other without overlapping, of heights within 0.6-1.6 of each
    other, side by side by at least a third of the narrower one's width, in the crop
    binarised by Otsu's threshold. (Binarising by neighbourhood as well finds a few more
    plates in shadow, and takes a few one-row plates for two: a one-row plate cut in two
    is unreadable, a two-row plate left whole is still read in part.)
    """
    height, width = grey.shape[:2]
    if width > TWO_ROW_ASPECT * height or height < 8:
        return None
    scale = ROW_HEIGHT / height
    small = cv2.resize(
        grey, (max(1, round(width * scale)), ROW_HEIGHT), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (3, 3), 0)
    bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    # The characters are the minority in the middle of the crop, where the plate is: dark
    # on a bright plate, or bright on a dark one. (The other way round, the holes of 8s and
    # 0s make rows of their own; and the crop's edges may be the car, not the plate.)
    rows, columns = bright.shape
    middle = bright[rows // 5 : rows - rows // 5, columns // 5 : columns - columns // 5]
    dark_text = np.count_nonzero(middle) > middle.size / 2
    cut = _two_rows(cv2.bitwise_not(bright) if dark_text else bright)
    return None if cut is None else round(cut / scale)


def fold_rows(grey: np.ndarray) -> np.ndarray:
    """``grey`` as one line: a two-row plate's top row put left of its bottom row (each
    scaled to the taller one's height), anything else unchanged. See :func:`row_split`."""
    cut = row_split(grey)
    if cut is None:
        return grey
    top, bottom = grey[:cut], grey[cut:]
    height = max(top.shape[0], bottom.shape[0])
    rows = [
        cv2.resize(row, (max(1, round(row.shape[1] * height / row.shape[0])), height))
        for row in (top, bottom)
    ]
    return np.hstack(rows)


def network_input(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """A BGR (or grey) crop as the network reads it: grey, rows folded
    (:func:`fold_rows`), scaled to ``height`` x ``width`` (uint8)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    line = fold_rows(grey)
    shrinking = line.shape[0] > height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(line, (width, height), interpolation=interpolation)


def decode(probabilities: np.ndarray, characters: str = CHARACTERS) -> CharacterRead:
    """Greedy CTC decoding of one ``[T, 1 + len(characters)]`` array of probabilities
    (blank first): each column's best class, repeats merged, blanks dropped; a character's
    probability is the highest of the columns that gave it."""
    best = probabilities.argmax(axis=1)
    scores = probabilities.max(axis=1)
    text: list[str] = []
    sure: list[float] = []
    previous = 0
    for index, score in zip(best.tolist(), scores.tolist(), strict=True):
        if index != 0 and index == previous:
            sure[-1] = max(sure[-1], score)
        elif index != 0:
            text.append(characters[index - 1])
            sure.append(score)
        previous = index
    confidence = sum(sure) / len(sure) if sure else 0.0
    return CharacterRead("".join(text), confidence, tuple(sure))


def _compile(model: Path, precision: str, threads: int) -> object:
    import openvino as ov

    core = ov.Core()
    settings = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": precision,
        "CACHE_DIR": "",
    }
    return core.compile_model(core.read_model(model), "CPU", settings)


class PlateRecogniser:
    """The project's plate recogniser (:data:`MODEL`) on OpenVINO's CPU plugin, one
    inference thread, like :class:`~streamer.reading.ocr.PaddleEngine`'s network.

    Thread-safe: one inference at a time.

    Args:
        model: the ONNX file; its character list is beside it (``.chars``).
        precision: OpenVINO's inference precision hint (``f32``, ``bf16``).
        threads: inference threads.

    Raises:
        OcrError: when the model or its character list is missing.

    Example:
        >>> recogniser = PlateRecogniser()
        >>> recogniser.read_characters(crop)
        CharacterRead(text='AB1234CD', confidence=0.99, characters=(0.99, ...))
    """

    name = "plate"

    def __init__(self, model: Path = MODEL, precision: str = "f32", threads: int = 1) -> None:
        from streamer.reading.ocr import OcrError

        chars = model.with_suffix(".chars")
        if not model.is_file() or not chars.is_file():
            raise OcrError(f"reader.engine plate: the model {model} or its {chars.name} is missing")
        self.characters = chars.read_text().strip()
        compiled = _compile(model, precision, threads)
        shape = compiled.input(0).get_shape()  # type: ignore[attr-defined]
        self.height, self.width = int(shape[2]), int(shape[3])
        self._request = compiled.create_infer_request()  # type: ignore[attr-defined]
        self._lock = threading.Lock()

    def probabilities(self, crop: np.ndarray) -> np.ndarray:
        """The network's ``[T, 1 + len(characters)]`` probabilities for a crop."""
        image = network_input(crop, self.height, self.width).astype(np.float32)
        with self._lock:
            out = self._request.infer({0: image[None, None]})[0]
        return np.array(out[0])

    def read_characters(self, crop: np.ndarray) -> CharacterRead:
        """The text of a BGR plate crop, with each character's probability."""
        return decode(self.probabilities(crop), self.characters)

    def read(self, crop: np.ndarray) -> TextRead:
        """The text and its mean character probability (the :class:`OcrEngine` call)."""
        read = self.read_characters(crop)
        return TextRead(read.text, read.confidence)


#: A plate read whose every character is at least this sure, and which fits a configured
#: format, is taken by the fused engine without asking PP-OCRv4.
SURE = 0.9


class FusedEngine:
    """The plate recogniser first, PP-OCRv4 only where it is unsure; the two decided per
    character position by confidence and by fit to the configured formats.

    1. The plate read is taken as it is when every character is at least ``sure`` and
       it fits a format (after :func:`~streamer.reading.plates.fix_confusions`).
    2. Otherwise PP-OCRv4 reads the crop too. When both reads have the same length, a
       third candidate takes PP-OCRv4's character at each position where the plate
       model's is less sure than PP-OCRv4's mean confidence.
    3. Of the candidates, one that fits a format beats one that does not; then the
       surer one wins (the plate model's mean character probability against PP-OCRv4's
       mean score), the two reads agreeing counting as sure as the surer of them.

    Args:
        plate: the plate recogniser.
        paddle: the second engine (PP-OCRv4, :class:`~streamer.reading.ocr.PaddleEngine`).
        formats: the camera's plate formats (``plates.formats``).
        sure: see step 1.
    """

    name = "fused"

    def __init__(
        self, plate: PlateRecogniser, paddle: OcrEngine, formats: Sequence[str], sure: float = SURE
    ) -> None:
        self.plate, self.paddle, self.formats, self.sure = plate, paddle, list(formats), sure
        self.reads = 0  # how many crops were read, and how many by PP-OCRv4 too
        self.second_reads = 0

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits a configured format once look-alikes are fixed."""
        return bool(text) and matches_format(fix_confusions(text, self.formats), self.formats)

    def read(self, crop: np.ndarray) -> TextRead:
        """The fused read of a BGR plate crop (the :class:`OcrEngine` call)."""
        self.reads += 1
        first = self.plate.read_characters(crop)
        if first.text and min(first.characters) >= self.sure and self.fits(first.text):
            return TextRead(first.text, first.confidence)
        self.second_reads += 1
        return self.decide(first, self.paddle.read(crop))

    def decide(self, first: CharacterRead, second: TextRead) -> TextRead:
        """The better of the plate read ``first``, PP-OCRv4's ``second``, and their
        per-position merge (see the class)."""
        other = normalise(second.text)
        if other == first.text:
            return TextRead(first.text, max(first.confidence, second.confidence))
        candidates = [TextRead(first.text, first.confidence), TextRead(other, second.confidence)]
        if other and len(other) == len(first.text):
            merged = "".join(
                mine if probability >= second.confidence else theirs
                for mine, probability, theirs in zip(
                    first.text, first.characters, other, strict=True
                )
            )
            sureness = [max(p, second.confidence) for p in first.characters]
            candidates.append(TextRead(merged, sum(sureness) / len(sureness)))
        return max(candidates, key=lambda read: (self.fits(read.text), read.confidence))
