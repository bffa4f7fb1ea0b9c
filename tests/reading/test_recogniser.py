"""The plate recogniser: the committed model and its card, the decoding, the folding of
two-row plates, reads of rendered plates, and the fusion with PP-OCRv4."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np
import pytest

from streamer.reading.ocr import TextRead
from streamer.reading.recogniser import (
    CHARACTERS,
    MODEL,
    MODELS,
    CharacterRead,
    FusedEngine,
    PlateRecogniser,
    decode,
    fold_rows,
    network_input,
    row_split,
)
from streamer.training.designs import render_plate

BLANK = 0


def probabilities(columns: list[tuple[str, float]]) -> np.ndarray:
    """A ``[T, C]`` array whose column ``t`` gives ``columns[t]`` (``"-"``: blank) with
    its probability, the rest spread over the other classes."""
    array = np.zeros((len(columns), 1 + len(CHARACTERS)), np.float32)
    for row, (char, probability) in enumerate(columns):
        index = BLANK if char == "-" else 1 + CHARACTERS.index(char)
        array[row] = (1 - probability) / (array.shape[1] - 1)
        array[row, index] = probability
    return array


@pytest.mark.parametrize(
    ("columns", "text", "sure"),
    [
        ([("-", 0.9), ("A", 0.8), ("A", 0.95), ("-", 0.9), ("A", 0.7)], "AA", (0.95, 0.7)),
        ([("7", 0.6), ("-", 0.9), ("7", 0.9), ("3", 0.99)], "773", (0.6, 0.9, 0.99)),
        ([("-", 0.99), ("-", 0.99)], "", ()),
    ],
)
def test_decode_merges_repeats_and_keeps_the_surest_column(
    columns: list[tuple[str, float]], text: str, sure: tuple[float, ...]
) -> None:
    read = decode(probabilities(columns))
    assert read.text == text
    assert read.characters == pytest.approx(sure)
    assert read.confidence == pytest.approx(sum(sure) / len(sure) if sure else 0.0)


def plate_image(design: str, seed: int) -> tuple[np.ndarray, str]:
    """A clean rendered plate of ``design`` (BGR uint8) and its number."""
    plate = render_plate(np.random.default_rng(seed), design)
    return np.ascontiguousarray((plate.image[:, :, ::-1] * 255).astype(np.uint8)), plate.label


def test_a_two_row_plate_is_folded_top_row_first() -> None:
    grey = np.full((120, 160), 230, np.uint8)
    for x in (30, 70, 110):  # three dark bars above, three below, each 30 px high
        grey[15:45, x : x + 12] = 20
        grey[70:100, x : x + 12] = 20
    grey[70:100, 20:28] = 20  # the bottom row starts further left
    cut = row_split(grey)
    assert cut is not None
    assert 45 <= cut <= 70
    line = fold_rows(grey)
    assert line.shape[0] == max(cut, 120 - cut)
    assert line.shape[1] > 160


def test_a_row_of_small_text_above_the_number_is_not_a_second_row() -> None:
    grey = np.full((150, 300), 230, np.uint8)
    for x in range(60, 240, 30):  # a state's name: letters 12 px high
        grey[10:22, x : x + 8] = 20
    for x in range(30, 270, 40):  # the number: 60 px high
        grey[45:105, x : x + 22] = 20
    assert row_split(grey) is None
    assert network_input(grey, 48, 160).shape == (48, 160)


@pytest.fixture(scope="module")
def recogniser() -> PlateRecogniser:
    return PlateRecogniser()


def test_the_model_is_the_one_its_card_describes(recogniser: PlateRecogniser) -> None:
    card = (MODELS / "MODEL_CARD.md").read_text()
    recorded = re.search(r"SHA-256[^`]*`([0-9a-f]{64})`", card)
    assert recorded is not None, "the card gives no SHA-256"
    assert hashlib.sha256(MODEL.read_bytes()).hexdigest() == recorded.group(1)
    assert MODEL.stat().st_size <= 15 * 1024 * 1024
    assert recogniser.characters == CHARACTERS
    assert (recogniser.height, recogniser.width) == (48, 160)


def exact_share(recogniser: PlateRecogniser, plates: list[tuple[np.ndarray, str]]) -> float:
    return sum(recogniser.read(image).text == label for image, label in plates) / len(plates)


@pytest.mark.parametrize("design", ["eu", "ua", "us", "br", "in", "vn"])
def test_rendered_one_row_plates_read_exactly(recogniser: PlateRecogniser, design: str) -> None:
    plates = [plate_image(design, seed) for seed in range(20)]
    assert exact_share(recogniser, plates) >= 0.7
    read = recogniser.read_characters(plates[0][0])
    assert len(read.characters) == len(read.text)
    assert min(read.characters, default=0.0) > 0.3


def two_row_plates(region: str, count: int) -> list[tuple[np.ndarray, str]]:
    """The first ``count`` rendered two-row plates of ``region``."""
    plates = []
    for seed in range(1000):
        plate = render_plate(np.random.default_rng(seed), "two_rows")
        if plate.region == region:
            plates.append(plate_image("two_rows", seed))
        if len(plates) == count:
            break
    return plates


@pytest.mark.parametrize(
    "plates",
    [
        pytest.param(lambda: [plate_image("vn_two_rows", seed) for seed in range(10)], id="vn"),
        pytest.param(lambda: two_row_plates("it_moto", 4), id="it_moto"),
    ],
)
def test_rendered_two_row_plates_read_top_row_first(
    recogniser: PlateRecogniser, plates: Callable[[], list[tuple[np.ndarray, str]]]
) -> None:
    made = plates()
    for image, _ in made:
        assert row_split(image.mean(axis=2).astype(np.uint8)) is not None
    assert exact_share(recogniser, made) >= 0.7


class Fixed:
    """A stand-in engine that reads the same text whatever the crop."""

    name = "fixed"

    def __init__(self, read: TextRead) -> None:
        self.reads = 0
        self.text = read

    def read(self, crop: np.ndarray) -> TextRead:
        self.reads += 1
        return self.text


class FixedPlate:
    def __init__(self, read: CharacterRead) -> None:
        self.character_read = read

    def read_characters(self, crop: np.ndarray) -> CharacterRead:
        return self.character_read


def sure(text: str, *probabilities: float) -> CharacterRead:
    chars = probabilities if probabilities else (0.99,) * len(text)
    return CharacterRead(text, sum(chars) / len(chars), tuple(chars))


@pytest.mark.parametrize(
    ("plate", "paddle", "expected", "asked"),
    [
        # sure and in format: PP-OCRv4 is not asked
        (sure("AA1234BB"), TextRead("AA1234BE", 0.99), "AA1234BB", False),
        # one unsure character: PP-OCRv4's character at that position
        (sure("AA1234B8", *(0.99,) * 7, 0.4), TextRead("AA1234BB", 0.9), "AA1234BB", True),
        # a read that fits the formats beats one that does not
        (sure("AA12348B", *(0.99,) * 6, 0.5, 0.99), TextRead("A1234BB", 0.95), "AA12348B", True),
        (sure("AAA1234BB", *(0.6,) * 9), TextRead("AA-1234-BB", 0.9), "AA1234BB", True),
        # both unsure and neither fits: the surer
        (sure("A12", 0.5, 0.5, 0.5), TextRead("A123", 0.8), "A123", True),
    ],
)
def test_fusion_decides_by_confidence_and_format(
    plate: CharacterRead, paddle: TextRead, expected: str, asked: bool
) -> None:
    second = Fixed(paddle)
    fused = FusedEngine(FixedPlate(plate), second, ["ua"])  # type: ignore[arg-type]
    assert fused.read(np.zeros((10, 10, 3), np.uint8)).text == expected
    assert bool(second.reads) == asked
