"""Reading: preprocessing and real Tesseract on rendered plates, and the vote."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import PlatesConfig, ReaderConfig
from streamer.reading.engines import engine_named
from streamer.reading.ocr import OcrEngine, OcrError, TesseractEngine, TextRead, find_tessdata
from streamer.reading.preprocess import prepare
from streamer.reading.read import PlateReader, vote, zeros_for_letter_o
from streamer.sources.demo import plate_image
from streamer.sources.frame import Frame
from streamer.vision.track import PlateCrop

from support.fuzz import bounded


def rendered_plate(
    text: str, angle: float = 0.0, dark: bool = False, height: int = 60
) -> np.ndarray:
    """A plate crop as the detector would cut it: the demo's plate, tilted, with some
    of the vehicle around it; ``dark`` inverts the plate (light text on dark)."""
    plate = plate_image(text)
    plate = cv2.resize(
        plate,
        (round(plate.shape[1] * height / plate.shape[0]), height),
        interpolation=cv2.INTER_AREA,
    )
    if dark:
        plate = 255 - plate
    width = plate.shape[1]
    canvas = np.full((height * 2, width + height, 3), (70, 90, 120), np.uint8)
    canvas[height // 2 : height // 2 + height, height // 2 : height // 2 + width] = plate
    centre = (canvas.shape[1] / 2, canvas.shape[0] / 2)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    canvas = cv2.warpAffine(
        canvas, rotation, (canvas.shape[1], canvas.shape[0]), borderMode=cv2.BORDER_REPLICATE
    )
    margin = height // 3
    return canvas[
        height // 2 - margin : height // 2 + height + margin,
        height // 2 - margin : height // 2 + width + margin,
    ]


@pytest.fixture(scope="module", params=["fused", "plate", "paddle", "tesseract"])
def reader(
    request: pytest.FixtureRequest, engine: OcrEngine, tesseract: TesseractEngine
) -> PlateReader:
    """A plate reader on each engine (the default one, fused, built once for the session)."""
    chosen = {"fused": engine, "tesseract": tesseract}.get(request.param)
    chosen = chosen or engine_named(request.param)
    assert chosen.name.startswith(request.param[:4]) or request.param == "tesseract"
    return PlateReader(chosen, ReaderConfig(), PlatesConfig())


@pytest.mark.parametrize(
    ("text", "angle", "dark", "height"),
    [
        ("KA01AB1234", 0.0, False, 60),
        ("MH12DE1433", 6.0, False, 60),
        ("TN09BC5678", -8.0, False, 60),
        ("DL3CAB1234", 0.0, True, 60),
        ("KA05MN2468", 0.0, False, 24),
    ],
    ids=["plain", "tilted", "tilted-other-way", "dark-plate", "small"],
)
def test_reads_rendered_plates(
    reader: PlateReader, text: str, angle: float, dark: bool, height: int
) -> None:
    read = reader.read_crop(rendered_plate(text, angle, dark, height))
    assert read.text == text
    assert 0.3 <= read.confidence <= 1.0


def test_prepare_gives_black_text_on_white_upright(tmp_path: Path) -> None:
    prepared = prepare(rendered_plate("KA01AB1234", angle=7.0, dark=True))
    assert prepared.ndim == 2
    assert set(np.unique(prepared)) <= {0, 255}
    assert np.mean(prepared == 255) > 0.6  # mostly white background
    # Upright: the rows containing ink form one band, not a slanted smear.
    ink_rows = np.flatnonzero((prepared == 0).any(axis=1))
    assert ink_rows[-1] - ink_rows[0] < 0.8 * prepared.shape[0]


def test_blank_crop_reads_nothing(reader: PlateReader) -> None:
    assert reader.read_crop(np.full((40, 160, 3), 200, np.uint8)).text == ""


@pytest.mark.parametrize(
    ("reads", "expected"),
    [
        ([("KA01AB1234", 0.9), ("KA01AB1234", 0.8), ("KA0IAB1234", 0.95)], "KA01AB1234"),
        ([("", 0.0), ("MH12DE1433", 0.7)], "MH12DE1433"),
        # a format-valid read outweighs a slightly more confident invalid one
        ([("KA01AB1234", 0.6), ("KAO1AB1234", 0.7)], "KA01AB1234"),
        ([("", 0.0), ("", 0.0)], None),
        # one confident stray read does not outvote two that agree
        ([("KA01AB1234", 0.8), ("KA01AB1234", 0.8), ("XY99ZZ0000", 0.99)], "KA01AB1234"),
        # each read has one character wrong, in a different place: the vote gets it right
        ([("KA01AB1Z34", 0.9), ("KA01A81234", 0.9), ("KAO1AB1234", 0.9)], "KA01AB1234"),
        # a read that dropped a character does not spoil the position vote
        ([("KA01AB1234", 0.8), ("KA01AB124", 0.9), ("KA01AB1234", 0.7)], "KA01AB1234"),
    ],
)
def test_vote(reads: list[tuple[str, float]], expected: str | None) -> None:
    result = vote([TextRead(t, c) for t, c in reads], ["in_rto"])
    assert (result[0] if result else None) == expected


class ScriptedEngine:
    """Reads each crop as the text written in its first pixel's index (a stage fake)."""

    name = "scripted"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def read(self, crop: np.ndarray) -> TextRead:
        return TextRead(self.texts[int(crop[0, 0, 0])], 0.9)


def test_a_vote_no_single_read_made_still_names_its_crop() -> None:
    texts = ["KA01AB1284", "KA07AB1234", "KA01AR1234"]  # each valid, each wrong once
    reader = PlateReader(ScriptedEngine(texts), ReaderConfig(crops=3), PlatesConfig())
    frame = Frame("cam", 0, np.zeros((8, 8, 3), np.uint8), datetime.now(UTC), 0.0)
    crops = [
        PlateCrop(np.full((20, 60, 3), index, np.uint8), (0, 0, 60, 20), 0.9, 1 - index / 10, frame)
        for index in range(3)
    ]
    read = reader.read(crops)
    assert read is not None
    assert read.text == "KA01AB1234"
    assert read.crop is crops[0]
    assert read.votes == tuple(texts)


@pytest.mark.parametrize(
    ("texts", "formats", "valid", "matched"),
    [
        (["BMW1234", "BMW1234"], ["fr", "de", "us_ny"], True, "de"),
        (["BMW1234", "BMW1234"], ["us_ny", "de"], True, "us_ny"),
        (["AB12"], ["fr", r"[A-Z]{2}[0-9]{2}"], True, r"[A-Z]{2}[0-9]{2}"),
        (["AB12"], ["fr", "de"], True, "de"),
        (["3479"], ["fr", "de"], False, None),
    ],
)
def test_the_agreed_plate_names_the_format_it_matched(
    texts: list[str], formats: list[str], valid: bool, matched: str | None
) -> None:
    reader = PlateReader(
        ScriptedEngine(texts), ReaderConfig(crops=3), PlatesConfig(formats=formats)
    )
    frame = Frame("cam", 0, np.zeros((8, 8, 3), np.uint8), datetime.now(UTC), 0.0)
    crops = [
        PlateCrop(np.full((20, 60, 3), index, np.uint8), (0, 0, 60, 20), 0.9, 0.9, frame)
        for index in range(len(texts))
    ]
    read = reader.read(crops)
    assert read is not None
    assert (read.text, read.format_valid, read.format) == (texts[0], valid, matched)


def test_disagreement_lowers_confidence() -> None:
    agreed = vote([TextRead("KA01AB1234", 0.9)] * 3, ["in_rto"])
    split = vote([TextRead("KA01AB1234", 0.9), TextRead("KA01AB1284", 0.9)] * 1, ["in_rto"])
    assert agreed is not None
    assert split is not None
    assert agreed[1] > split[1]


def test_missing_tesseract_data_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TESSDATA_PREFIX", raising=False)
    monkeypatch.setattr("streamer.reading.ocr.glob.glob", lambda pattern: [])
    monkeypatch.setattr("streamer.reading.ocr.Path.is_file", lambda self: False)
    with pytest.raises(OcrError, match="install Debian's tesseract-ocr"):
        find_tessdata(tmp_path)


@pytest.mark.parametrize(
    ("plate", "formats", "expected"),
    [
        ("COUGAR", ["us"], "C0UGAR"),  # the format needs a digit: the Os are zeros
        ("MOTORZ", ["us"], "M0T0RZ"),
        ("GO26", ["us"], "GO26"),  # already matches: unchanged
        ("COUGAR", ["eu"], "COUGAR"),  # no format fits either way: unchanged
        ("ABCDEF", ["us"], "ABCDEF"),  # no O to read as 0
    ],
)
def test_zeros_for_letter_o(plate: str, formats: list[str], expected: str) -> None:
    assert zeros_for_letter_o(plate, formats) == expected


def test_a_page_of_ocr_garbage_is_bounded_before_any_format_sees_it() -> None:
    """A format that is quick on a plate's 20 characters may take minutes on thousands
    (this one is cubic), and OCR can return a page of text from a noisy crop."""
    plates = PlatesConfig(formats=["[A-Z]*[A-Z]*[A-Z]*[0-9]", "in_rto"])
    reader = PlateReader(ScriptedEngine(["A" * 3000, "A-" * 1000 + "1"]), ReaderConfig(), plates)
    for index in range(2):
        with bounded(2.0, 200.0):
            assert reader.read_crop(np.full((20, 60, 3), index, np.uint8)).text == ""
