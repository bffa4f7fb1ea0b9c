"""``streamer eval``: metrics, label discovery, and evaluation on rendered plates."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.api.images import ImageProcessor
from streamer.config import Config, PlatesConfig, ReaderConfig
from streamer.reading.ocr import OcrEngine
from streamer.reading.read import PlateReader
from streamer.stores.dues import SqlDues
from streamer.tools.demo import plate_image
from streamer.tools.evaluate import (
    SetReport,
    char_accuracy,
    evaluate_crops,
    evaluate_images,
    render_table,
    run,
    write_json,
)
from streamer.tools.labels import LABEL_FILES, EvalError, discover, plates_for
from streamer.vision.detect import YoloDetector

PLATES = ("KA05MN4821", "MH12XY7395", "TN09CK2046", "HR26K4417")


@pytest.mark.parametrize(
    ("read", "truth", "expected"),
    [
        ("KA01AB1234", "KA01AB1234", 1.0),
        ("KA01AB1284", "KA01AB1234", 0.9),
        ("KA01AB123", "KA01AB1234", 0.9),
        ("XKA01AB1234", "KA01AB1234", 0.9),
        ("", "KA01AB1234", 0.0),
        ("ZZZZZZZZZZZZZZZZZZZZ", "AB12", 0.0),
        ("AB21", "AB12", 0.5),
        ("", "", 1.0),
        ("A", "", 0.0),
    ],
)
def test_char_accuracy(read: str, truth: str, expected: float) -> None:
    assert char_accuracy(read, truth) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("labels.json", '{"1.jpeg": ["AA1234BB"]}', "images"),
        ("photos.csv", "image,plate\ncar.jpg,AB12CD\n", "images"),
        ("photos.csv", "car.jpg,AB12CD,10,20,100,30\n", "images"),
        ("groundtruth.csv", "ak1165.png,ak,FUW999\n", "crops"),
        ("crops.csv", "file,state,plate\nak1165.png,ak,FUW999\n", "crops"),
        ("events.csv", "video,plate,first_frame,last_frame\ncars.mp4,34A-368.37,,\n", "videos"),
    ],
)
def test_discover_kinds(tmp_path: Path, name: str, content: str, kind: str) -> None:
    (tmp_path / name).write_text(content)
    assert discover(tmp_path / name) == kind
    if name in LABEL_FILES:  # a folder with one known label file
        assert discover(tmp_path) == kind


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", "hello"),
        ("odd.csv", "a,b,c,d\n"),
        ("empty.csv", ""),
        ("list.json", '["AA1234BB"]'),
        ("broken.json", "{"),
    ],
)
def test_discover_refuses_other_files(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=r"expected labels\.json"):
        discover(tmp_path / name)


def test_discover_refuses_a_folder_without_one_label_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected one of"):
        discover(tmp_path)
    (tmp_path / "labels.json").write_text("{}")
    (tmp_path / "events.csv").write_text("video,plate\n")
    with pytest.raises(ValueError, match="expected one of"):
        discover(tmp_path)


def test_plates_for_keeps_fitting_formats_or_picks_the_most_specific_preset() -> None:
    india = PlatesConfig()
    assert plates_for(india, ["KA01AB1234", "MH12DE1433"]) is india
    assert plates_for(india, []) is india
    assert plates_for(india, ["AA1234BB", "BC3496HC", "AO1306CH"]).formats == ["ua"]
    assert plates_for(india, ["34A36837", "89C20339"]).formats == ["vn"]
    assert plates_for(india, ["FUW999", "6A5730A", "2006R", "1TARHEEL"]).formats == ["us"]
    assert plates_for(india, ["ANYTEXT", "SAMPLE"]) is india  # nothing fits


def crops_set(folder: Path, plates: tuple[str, ...] = PLATES) -> Path:
    """Rendered plate crops in ``folder/images`` and their ``groundtruth.csv``."""
    (folder / "images").mkdir()
    rows = []
    for index, plate in enumerate(plates):
        cv2.imwrite(str(folder / "images" / f"{index}.png"), plate_image(plate))
        rows.append(f"{index}.png,in,{plate}")
    (folder / "groundtruth.csv").write_text("\n".join(rows) + "\n")
    return folder / "groundtruth.csv"


def test_evaluate_crops_reads_rendered_plates(tmp_path: Path, engine: OcrEngine) -> None:
    groundtruth = crops_set(tmp_path)
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig())
    report = evaluate_crops(groundtruth, reader, "paddle")
    assert (report.name, report.kind, report.engine) == (tmp_path.name, "crops", "paddle")
    assert report.rows["crops"] == len(PLATES)
    assert report.rows["exact"] == 1.0
    assert report.rows["exact_o_as_0"] == 1.0
    assert report.rows["char_accuracy"] == 1.0
    assert report.misses == ()
    assert evaluate_crops(groundtruth, reader, "paddle", limit=2).rows["crops"] == 2


def test_evaluate_crops_counts_misreads_and_missing_files(
    tmp_path: Path, engine: OcrEngine
) -> None:
    groundtruth = crops_set(tmp_path, PLATES[:2])
    with groundtruth.open("a") as stream:
        stream.write("gone.png,in,DL07CR6158\n")
    text = groundtruth.read_text().replace("KA05MN4821", "KA05MN4829")
    groundtruth.write_text(text)
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig())
    report = evaluate_crops(groundtruth, reader, "paddle")
    assert (report.rows["crops"], report.rows["missing"]) == (2, 1)
    assert report.rows["exact"] == 0.5
    assert report.rows["char_accuracy"] == pytest.approx(0.95)
    assert report.misses == (("0.png", "KA05MN4829", "KA05MN4821"),)


def test_evaluate_images_detects_and_reads(
    tmp_path: Path, detector: YoloDetector, engine: OcrEngine
) -> None:
    rows = ["image,plate,x,y,w,h"]
    for index, plate in enumerate(PLATES[:3]):
        image = np.full((480, 640, 3), 90, np.uint8)
        image[300:348, 220:415] = cv2.resize(plate_image(plate), (195, 48))
        cv2.imwrite(str(tmp_path / f"{index}.jpg"), image)
        box = "220,300,195,48" if index < 2 else "10,10,100,25"  # the last box is wrong
        rows.append(f"{index}.jpg,{plate},{box}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    camera = Config().cameras[0]
    processor = ImageProcessor(detector, engine, SqlDues(tmp_path / "d.sqlite"), camera)
    report = evaluate_images(tmp_path / "labels.csv", processor, "paddle")
    assert report.kind == "images"
    assert report.rows["images"] == 3
    assert report.rows["detected"] == pytest.approx(2 / 3, abs=1e-3)
    assert report.rows["exact"] == 1.0


def reports() -> list[SetReport]:
    return [
        SetReport(
            "plates-xx", "images", "paddle", {"images": 21, "detected": 0.9524, "exact": 0.8}
        ),
        SetReport("crops-yy", "crops", "tesseract", {"crops": 751, "exact_o_as_0": 0.514}),
        SetReport("cars.mp4", "video", "paddle", {"vehicles": 3, "fps": 47.25, "events": 4}),
    ]


def test_render_table_shows_sets_and_rates_as_percentages() -> None:
    table = render_table(reports())
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("| set | kind | engine |")
    assert "| plates-xx | images | paddle | 21 | 95.2% | 80.0% |" in table
    assert "51.4%" in table
    assert "crops-yy" in table
    assert "47.25 frames/s" in table


def test_write_json(tmp_path: Path) -> None:
    path = tmp_path / "out" / "eval.json"
    write_json(reports(), path)
    data = json.loads(path.read_text())
    assert [d["name"] for d in data] == ["plates-xx", "crops-yy", "cars.mp4"]
    assert data[0]["rows"]["exact"] == 0.8


def test_run_refuses_unknown_paths_before_loading_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a known kind"):
        run([tmp_path / "notes.txt"], ["paddle"], Config(), None, None)


def test_run_refuses_malformed_labels_before_loading_models(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("car.jpg,AB12CD,left,top,100,30\n")
    with pytest.raises(EvalError, match="malformed images labels"):
        run([tmp_path], ["paddle"], Config(), None, None)


def test_run_renders_and_writes_json(tmp_path: Path) -> None:
    crops_set(tmp_path)
    out = tmp_path / "eval.json"
    table = run([tmp_path], ["paddle"], Config(), out, limit=3)
    assert f"| {tmp_path.name} | crops | paddle | 3 |" in table
    assert json.loads(out.read_text())[0]["rows"]["exact"] == 1.0


@pytest.mark.shared_data
def test_us_crops_from_shared_data(shared_data: Path, engine: OcrEngine) -> None:
    # The first 30 openalpr crops: 28 (93%) read exactly when measured.
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig(formats=["us"]))
    report = evaluate_crops(shared_data / "ocr-crops-us", reader, "paddle", limit=30)
    assert report.rows["crops"] == 30
    assert float(report.rows["exact"]) >= 0.8, report.misses
