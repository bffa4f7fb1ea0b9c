"""Reading single images: the number's text line, turning it level, the views' vote,
O as 0, widening a box that cut the plate, tiles."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from streamer.config import CameraConfig, PlatesConfig, ReaderConfig
from streamer.events import NOT_FOUND, DuesResult
from streamer.reading.lines import LineBox, TextLines, cut_line, level_line, main_line, turned
from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.read import PlateReader, zeros_for_letter_o
from streamer.reading.still import StillReader, trimmed, widened
from streamer.sources.demo import plate_image
from streamer.stills import StillPipeline, tiles
from streamer.stores.checks import PlateChecks
from streamer.vision.track import cut_crop


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
        # an unsure read with an extra character loses to a read matching the format, and
        # the vote settles there
        ([TextRead("AB1234CDX", 0.9), TextRead("AB1234CD", 0.8)], "AB1234CD"),
        # two unsure reads agreeing on the format's plate, too unsure to settle
        ([TextRead("AB1234CD", 0.6), TextRead("AB1234CD", 0.7), TextRead("", 0.0)], "AB1234CD"),
        # two reads that merged a repeated character, outvoted by the widened view's
        (
            [TextRead("AB733BH", 0.85), TextRead("AB733BH", 0.85), TextRead("AB7333BH", 0.95)],
            "AB7333BH",
        ),
        # nothing read
        ([TextRead("", 0.0), TextRead("", 0.0), TextRead("", 0.0)], ""),
    ],
)
def test_the_views_vote(reads: list[TextRead], expected: str) -> None:
    reader = still_reader(reads, ["ua"])
    assert reader.read_crop(np.zeros((60, 200, 3), np.uint8)).text == expected
    # every scripted read was asked for: trimmed, line (the crop: no lines), widened
    assert isinstance(reader.engine, ScriptedEngine)
    assert reader.engine.calls == len(reads)


def turned_box(angle: float, length: float = 160, thickness: float = 24) -> LineBox:
    """A text line ``length`` by ``thickness`` turned ``angle`` degrees (as
    :attr:`LineBox.angle` measures) about the point (100, 60), as the detector gives it."""
    along = (math.cos(math.radians(angle)), math.sin(math.radians(angle)))
    across = (-along[1], along[0])
    corners = [
        (
            100 + sx * length / 2 * along[0] + sy * thickness / 2 * across[0],
            60 + sx * length / 2 * along[1] + sy * thickness / 2 * across[1],
        )
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    return LineBox.around(corners)


class FixedLines:
    """A line finder that finds the lines it was given."""

    def __init__(self, boxes: list[LineBox]) -> None:
        self.boxes = boxes

    def find(self, crop: np.ndarray) -> list[LineBox]:
        return list(self.boxes)


@pytest.mark.parametrize("angle", [0.0, 10.0, -25.0, 40.0])
def test_a_line_box_knows_its_angle_and_thickness(angle: float) -> None:
    box = turned_box(angle)
    assert box.angle == pytest.approx(angle, abs=0.01)
    assert box.thickness == pytest.approx(24)
    assert box.length == pytest.approx(160)
    # without the detector's corners: level, as thick as the box is high
    assert LineBox(0, 0, 160, 24).angle == 0.0
    assert LineBox(0, 0, 160, 24).thickness == 24


@pytest.mark.parametrize("angle", [12.0, -30.0])
def test_turning_levels_the_line_and_keeps_the_crop(angle: float) -> None:
    crop = np.zeros((120, 200, 3), np.uint8)
    image, (moved,) = turned(crop, [turned_box(angle)], angle)
    assert moved.angle == pytest.approx(0.0, abs=0.01)
    assert moved.height == pytest.approx(24, abs=0.5)  # level: as high as it is thick
    assert image.shape[0] > crop.shape[0]
    assert image.shape[1] > crop.shape[1]
    assert 0 <= moved.x1 < moved.x2 <= image.shape[1]
    assert 0 <= moved.y1 < moved.y2 <= image.shape[0]


@pytest.mark.parametrize(
    ("boxes", "level"),
    [
        ([], False),
        ([turned_box(1.0)], False),  # level enough
        ([turned_box(20.0, length=30, thickness=24)], False),  # squarish: no direction
        ([turned_box(60.0)], False),  # more upright than level: not a plate's number
        ([turned_box(20.0)], True),
        ([turned_box(-15.0), turned_box(-15.0, length=60, thickness=8)], True),
    ],
)
def test_the_level_line_is_cut_only_from_a_turned_line(boxes: list[LineBox], level: bool) -> None:
    crop = np.zeros((120, 200, 3), np.uint8)
    view = level_line(crop, boxes)
    assert (view is not None) == level
    if view is not None:
        # the line's thickness and margins, not the height of the tilted box around it
        assert view.shape[0] < 0.8 * max(box.height for box in boxes)


@pytest.mark.parametrize(
    ("reads", "boxes", "calls"),
    [
        # the first two views agree on a format's plate: settled
        ([TextRead("AB1234CD", 0.9), TextRead("AB1234CD", 0.95)], [turned_box(20.0)], 2),
        # unsure and turned: trimmed, line, level line, level line widened
        ([TextRead("AB123", 0.9)] * 4, [turned_box(20.0)], 4),
        # unsure and level: trimmed, line, line widened
        ([TextRead("AB123", 0.9)] * 3, [turned_box(0.5)], 3),
    ],
)
def test_more_views_are_read_only_while_the_reads_are_unsure(
    reads: list[TextRead], boxes: list[LineBox], calls: int
) -> None:
    engine = ScriptedEngine(reads)
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]), FixedLines(boxes))
    reader.read_crop(np.zeros((120, 200, 3), np.uint8))
    assert engine.calls == calls


def test_video_reads_each_crop_once() -> None:
    engine = ScriptedEngine([TextRead("AB1234CDX", 0.9)])
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]))
    assert reader.read_crop(np.zeros((60, 200, 3), np.uint8)).text == "AB1234CDX"
    assert engine.calls == 1


def test_the_still_reader_reads_a_rendered_plate(engine: OcrEngine, lines: TextLines) -> None:
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["in_rto"]), lines)
    plate = plate_image("KA01AB1234")
    assert reader.read_crop(plate).text == "KA01AB1234"


def photographed_plate(
    number: str,
    angle: float = 0.0,
    height: int = 32,
    squeeze: float = 1.0,
    background: tuple[int, int, int] = (225, 225, 225),
) -> np.ndarray:
    """A plate crop as the detector cuts it from a photo taken askew: the demo's plate
    ``height`` pixels high (its width times ``squeeze``, a condensed font), in a dark
    holder, turned ``angle`` degrees clockwise on a light ground (a white car, snow), a
    little blurred, with the ground around it."""
    plate = plate_image(number)
    width = round(plate.shape[1] * height / plate.shape[0] * squeeze)
    plate = cv2.resize(plate, (width, height), interpolation=cv2.INTER_AREA)
    plate = cv2.copyMakeBorder(plate, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=(30, 30, 30))
    height, width = plate.shape[:2]
    pad = width // 2
    canvas = cv2.copyMakeBorder(plate, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=background)
    rotation = cv2.getRotationMatrix2D((canvas.shape[1] / 2, canvas.shape[0] / 2), -angle, 1.0)
    canvas = cv2.warpAffine(
        canvas, rotation, canvas.shape[1::-1], flags=cv2.INTER_CUBIC, borderValue=background
    )
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.8)
    corners = np.array(
        [[[pad, pad], [pad + width, pad], [pad + width, pad + height], [pad, pad + height]]], float
    )
    moved = cv2.transform(corners, rotation)[0]
    (x1, y1), (x2, y2) = moved.min(axis=0) - height / 2, moved.max(axis=0) + height / 2
    return canvas[int(y1) : int(y2), int(x1) : int(x2)]


@pytest.mark.parametrize("number", ["AB7333BH", "AB0680EA"])
def test_a_plate_photographed_askew_is_read_on_its_line_turned_level(
    engine: OcrEngine, lines: TextLines, number: str
) -> None:
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]), lines)
    crop = photographed_plate(number, angle=35.0)
    # neither the crop nor its line as the detector boxes it is read
    first, line = list(reader.views(crop))[:2]
    assert first.shape == trimmed(crop).shape
    assert PlateReader.read_crop(reader, first).text != number
    assert PlateReader.read_crop(reader, line).text != number
    # the line turned level is
    assert reader.read_crop(crop).text == number


def test_a_condensed_plate_is_read_widened(engine: OcrEngine, lines: TextLines) -> None:
    crop = photographed_plate("AA1111BB", squeeze=0.5, height=48, background=(70, 90, 120))
    # the recogniser misreads the characters set close together (here it merged the two
    # As), unless the crop is widened
    assert engine.read(crop).text != "AA1111BB"
    assert engine.read(widened(crop)).text == "AA1111BB"
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]), lines)
    assert reader.read_crop(crop).text == "AA1111BB"


@pytest.mark.parametrize(
    ("line", "calls"),
    [
        (LineBox(20, 10, 90, 36), 3),  # inside the crop: the plate is whole
        (LineBox(20, 10, 112, 36), 6),  # runs off the right: the box is widened, read again
        (LineBox(2, 10, 90, 36), 6),  # runs off the left
    ],
)
def test_only_a_line_running_off_the_crop_widens_the_box(line: LineBox, calls: int) -> None:
    engine = ScriptedEngine([TextRead("AB12", 0.9)] * calls)
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]), FixedLines([line]))
    # the box's crop is 116 by 46 pixels with its margins
    assert reader.read_plate(np.zeros((200, 400, 3), np.uint8), (100, 80, 200, 120)).text == "AB12"
    assert engine.calls == calls


def test_a_sure_read_does_not_widen_the_box() -> None:
    engine = ScriptedEngine([TextRead("AB1234CD", 0.99)])
    lines = FixedLines([LineBox(2, 10, 112, 36)])
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]), lines)
    assert reader.read_plate(np.zeros((200, 400, 3), np.uint8), (100, 80, 200, 120)).text
    assert engine.calls == 1


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("number", ["AB3391AK", "BC9911BK"])
def test_a_box_that_cut_the_plate_is_widened(
    engine: OcrEngine, lines: TextLines, number: str, side: str
) -> None:
    plate = cv2.resize(plate_image(number), None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    height, width = plate.shape[:2]
    image = np.full((300, 500, 3), (40, 45, 50), np.uint8)
    x, y = 100, 120
    image[y : y + height, x : x + width] = plate
    # the detector found half of the plate
    half = width // 2
    bbox = (
        (x, y, x + half, y + height)
        if side == "right"
        else (x + width - half, y, x + width, y + height)
    )
    reader = StillReader(engine, ReaderConfig(), PlatesConfig(formats=["ua"]), lines)
    assert reader.read_crop(cut_crop(image, bbox)).text != number
    assert reader.read_plate(image, bbox).text == number


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
    processor = StillPipeline(detector, engine, PlateChecks(NoDues()), CAMERA, lines=NoLines())
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

    processor = StillPipeline(
        Large(), ScriptedEngine([]), PlateChecks(NoDues()), CAMERA, lines=NoLines()
    )
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
