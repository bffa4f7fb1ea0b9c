"""Reading single images: the number's text line, the views' vote, O as 0, tiles."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from streamer.api.images import ImageProcessor, tiles
from streamer.config import CameraConfig, PlatesConfig, ReaderConfig
from streamer.reading.lines import LineBox, TextLines, cut_line, main_line
from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.read import PlateReader, zeros_for_letter_o
from streamer.reading.still import StillReader
from streamer.stores.dues import NOT_FOUND, DuesResult
from streamer.tools.demo import plate_image


def box(x1: float, y1: float, x2: float, y2: float) -> LineBox:
    """A line box in crop pixels."""
    return LineBox(x1, y1, x2, y2)


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([], None),
        # state name above, slogan below: the number is the tallest line
        (
            [box(60, 2, 240, 30), box(20, 40, 300, 120), box(90, 125, 230, 145)],
            box(20, 40, 300, 120),
        ),
        # a number split by a logo: both halves are kept, the sticker is not
        (
            [box(10, 40, 120, 120), box(170, 42, 300, 118), box(270, 120, 310, 140)],
            box(10, 40, 300, 120),
        ),
        # small stacked letters beside the number are left out
        (
            [box(5, 45, 25, 75), box(5, 80, 25, 110), box(40, 40, 300, 120)],
            box(40, 40, 300, 120),
        ),
        # a tall box that is not level with the number (a logo below it) is not joined
        ([box(40, 10, 300, 70), box(10, 60, 60, 140)], box(10, 60, 60, 140)),
    ],
)
def test_main_line_keeps_the_tallest_text(boxes: list[LineBox], expected: LineBox | None) -> None:
    assert main_line(boxes) == expected


def test_cut_line_adds_margins_and_stays_in_the_crop() -> None:
    crop = np.zeros((100, 200, 3), np.uint8)
    assert cut_line(crop, box(10, 20, 190, 80)).shape == (72, 198, 3)
    assert cut_line(crop, box(0, 0, 200, 100)).shape == (100, 200, 3)


def us_plate(number: str, stacked: str = "", state: str = "") -> np.ndarray:
    """A plate crop with a big number, small letters stacked at its left and a state name
    above, in the way of many US plates."""
    plate = np.full((150, 320, 3), 235, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    if state:
        cv2.putText(plate, state, (95, 28), font, 0.8, (40, 40, 160), 2, cv2.LINE_AA)
    for row, letter in enumerate(stacked):
        cv2.putText(plate, letter, (12, 72 + 38 * row), font, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
    cv2.putText(plate, number, (50, 112), font, 2.6, (20, 20, 20), 7, cv2.LINE_AA)
    return plate


@pytest.fixture(scope="module")
def lines() -> TextLines:
    """The real text line detector."""
    return TextLines()


def test_the_text_lines_of_a_plate_put_the_number_first(lines: TextLines) -> None:
    crop = us_plate("7364", stacked="HC", state="MINNESOTA")
    line = main_line(lines.find(crop))
    assert line is not None
    # the number's line: below the state name, right of the stacked letters
    assert line.y1 > 35
    assert line.x1 > 35
    assert line.height > 50


class ScriptedEngine:
    """Reads each view as told: by call order."""

    name = "scripted"

    def __init__(self, reads: list[TextRead]) -> None:
        self.reads = list(reads)
        self.calls = 0

    def read(self, crop: np.ndarray) -> TextRead:
        self.calls += 1
        return self.reads.pop(0)


class NoLines:
    """A line finder that finds nothing."""

    def find(self, crop: np.ndarray) -> list[LineBox]:
        return []


def still_reader(reads: list[TextRead], formats: list[str]) -> StillReader:
    engine = ScriptedEngine(reads)
    return StillReader(engine, ReaderConfig(), PlatesConfig(formats=formats), NoLines())


def test_a_sure_first_read_is_taken_alone() -> None:
    reader = still_reader([TextRead("AB1234CD", 0.99)], ["ua"])
    assert reader.read_crop(np.zeros((60, 200, 3), np.uint8)) == TextRead("AB1234CD", 0.99)
    assert isinstance(reader.engine, ScriptedEngine)
    assert reader.engine.calls == 1


@pytest.mark.parametrize(
    ("reads", "expected"),
    [
        # an unsure read with an extra character loses to a read matching the format
        ([TextRead("AB1234CDX", 0.9), TextRead("AB1234CD", 0.8)], "AB1234CD"),
        # two unsure reads agreeing on the format's plate
        ([TextRead("AB1234CD", 0.6), TextRead("AB1234CD", 0.7)], "AB1234CD"),
        # nothing read
        ([TextRead("", 0.0), TextRead("", 0.0)], ""),
    ],
)
def test_the_views_vote(reads: list[TextRead], expected: str) -> None:
    reader = still_reader(reads, ["ua"])
    assert reader.read_crop(np.zeros((60, 200, 3), np.uint8)).text == expected


def test_video_reads_each_crop_once() -> None:
    engine = ScriptedEngine([TextRead("AB1234CDX", 0.9)])
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]))
    assert reader.read_crop(np.zeros((60, 200, 3), np.uint8)).text == "AB1234CDX"
    assert engine.calls == 1


def test_the_still_reader_reads_a_rendered_plate(engine: OcrEngine, lines: TextLines) -> None:
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["in_rto"]), lines)
    plate = plate_image("KA01AB1234")
    assert reader.read_crop(plate).text == "KA01AB1234"


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


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (691, 518), (101, 77)])
def test_tiles_cover_the_image_with_overlap(width: int, height: int) -> None:
    found = tiles(width, height)
    assert len(found) == 4
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in found:
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    # neighbours overlap, so a plate on one tile's edge is whole in another
    assert found[0][2] > found[1][0]
    assert found[0][3] > found[2][1]


class TileDetector:
    """Sees the plate only when it fills enough of the image it is given (as a detector
    at a fixed input size misses a far plate); records the sizes it was given."""

    def __init__(self, plate: tuple[int, int, int, int], confidence: float) -> None:
        self.plate, self.confidence, self.sizes = plate, confidence, []

    def detect(self, image: np.ndarray) -> sv.Detections:
        self.sizes.append(image.shape[:2])
        x1, y1, x2, y2 = self.plate
        height, width = image.shape[:2]
        if width > 1500 or x2 > width or y2 > height:  # whole image, or not in this tile
            return sv.Detections.empty()
        return sv.Detections(
            xyxy=np.array([[x1, y1, x2, y2]], float), confidence=np.array([self.confidence])
        )


CAMERA = CameraConfig(name="still", source="none.mp4")


class NoDues:
    def lookup(self, plate: str) -> DuesResult:
        return NOT_FOUND


def test_a_small_plate_missed_by_the_first_look_is_found_in_a_tile() -> None:
    detector = TileDetector((100, 100, 180, 130), 0.8)
    engine = ScriptedEngine([])
    processor = ImageProcessor(detector, engine, NoDues(), CAMERA, lines=NoLines())
    found = processor.best_plate(np.zeros((1080, 1920, 3), np.uint8))
    assert found is not None
    assert found.bbox == (100, 100, 180, 130)  # the top-left tile: no offset
    assert len(detector.sizes) == 5  # the whole image, then four tiles


def test_a_large_plate_needs_no_second_look() -> None:
    class Large:
        calls = 0

        def detect(self, image: np.ndarray) -> sv.Detections:
            Large.calls += 1
            return sv.Detections(
                xyxy=np.array([[100, 100, 500, 200]], float), confidence=np.array([0.9])
            )

    processor = ImageProcessor(Large(), ScriptedEngine([]), NoDues(), CAMERA, lines=NoLines())
    assert processor.best_plate(np.zeros((1080, 1920, 3), np.uint8)) is not None
    assert Large.calls == 1


def test_on_real_us_crops_the_still_reader_reads_more_exactly(
    shared_data: Path, engine: OcrEngine, lines: TextLines
) -> None:
    plates = PlatesConfig(formats=["us"])
    single = PlateReader(engine, ReaderConfig(), plates)
    still = StillReader(engine, ReaderConfig(), plates, lines)
    rows = (shared_data / "ocr-crops-us" / "groundtruth.csv").read_text().splitlines()[::5]
    exact = {"single": 0, "still": 0}
    for row in rows:
        name, _, label = row.split(",")
        crop = cv2.imread(str(shared_data / "ocr-crops-us" / "images" / name))
        if crop is None:
            continue
        exact["single"] += single.read_crop(crop).text == label
        exact["still"] += still.read_crop(crop).text == label
    assert exact["still"] >= exact["single"]
