"""Reading single images: the number's text line, turning it level, the views' vote,
O as 0, widening a box that cut the plate, tiles."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import PlatesConfig, ReaderConfig
from streamer.reading.lines import LineBox, TextLines, level_line, main_line
from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.read import PlateReader
from streamer.reading.still import StillReader, trimmed, widened
from streamer.sources.demo import plate_image
from streamer.vision.track import cut_crop

from support.factories import NoLines, ScriptedEngine, turned_box


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


class FixedLines:
    """A line finder that finds the lines it was given."""

    def __init__(self, boxes: list[LineBox]) -> None:
        self.boxes = boxes

    def find(self, crop: np.ndarray) -> list[LineBox]:
        return list(self.boxes)


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
