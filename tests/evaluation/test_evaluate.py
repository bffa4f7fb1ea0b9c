"""``streamer eval``: metrics, label discovery, and evaluation on rendered plates."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import Config, PlatesConfig, ReaderConfig
from streamer.evaluation.evaluate import (
    char_accuracy,
    evaluate_crops,
    evaluate_images,
    miss_cause,
    run,
)
from streamer.evaluation.labels import LABEL_FILES, EvalError, discover, label_format, plates_for
from streamer.evaluation.tables import (
    FormatRow,
    SetReport,
    format_rows,
    render_causes,
    render_formats,
    render_report,
    render_table,
    write_json,
)
from streamer.reading.ocr import OcrEngine
from streamer.reading.read import PlateReader
from streamer.sources.demo import plate_image
from streamer.stills import StillPipeline
from streamer.stores.checks import PlateChecks
from streamer.stores.dues import SqlDues
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
    ("read", "truth", "found", "overlaps", "cause"),
    [
        ("KA01AB1234", "KA01AB1234", True, True, None),
        ("KA01AB1234", "KA01AB1234", True, False, None),  # read right off another box
        ("", "AA1234BB", False, True, "not found"),
        ("", "AA1234BB", False, False, "not found"),
        ("AA1234BB", "AA1234BC", True, False, "wrong box"),
        ("Y0SPEED", "YOSPEED", True, True, "confusion"),  # O read as 0
        ("355DCT", "355OCT", True, True, "confusion"),  # O read as D: both look like 0
        ("W772U0", "W772UQ", True, True, "confusion"),
        ("N7BBBY", "N788BY", True, True, "confusion"),  # every 8 read as B
        ("5A0J230", "5AOJ230", True, True, "confusion"),  # 0 read as O
        ("BJLC3833", "BJL833", True, True, "extra"),  # a stacked state letter
        ("4100AAA", "100AAA", True, True, "extra"),
        ("KA01AB123", "KA01AB1234", True, True, "missing"),
        ("", "KA01AB1234", True, True, "missing"),  # found but nothing read
        ("ADK80S", "ADT80S", True, True, "other"),
        ("00IBBB", "000BBB", True, True, "other"),  # 0 and I do not look alike
        ("Y0SPEEO", "YOSPEEX", True, True, "other"),  # one look-alike, one not
    ],
)
def test_miss_cause(read: str, truth: str, found: bool, overlaps: bool, cause: str) -> None:
    assert miss_cause(read, truth, found, overlaps) == cause


@pytest.mark.parametrize(
    ("plates", "formats", "expected"),
    [
        (["AA1234BB"], ["in_rto", "ua"], "ua"),
        (["KA01AB1234"], ["in_rto", "ua"], "in_rto"),
        (["ANYTEXT", "AA1234BB"], ["ua"], "ua"),  # the first label that matches any
        (["ANYTEXT"], ["ua"], "none"),
        (["AB12"], [r"[A-Z]{2}[0-9]{2}"], r"[A-Z]{2}[0-9]{2}"),
    ],
)
def test_label_format(plates: list[str], formats: list[str], expected: str) -> None:
    assert label_format(plates, formats) == expected


def test_format_rows_group_by_format_most_items_first_and_none_last() -> None:
    scored = [("none", False, 0.5), ("ua", True, 1.0), ("ua", False, 0.75), ("us", True, 1.0)]
    scored += [("none", True, 1.0), ("none", True, 1.0)]
    assert format_rows(scored) == (
        FormatRow("ua", 2, 0.5, 0.875),
        FormatRow("us", 1, 1.0, 1.0),
        FormatRow("none", 3, 0.6667, 0.8333),
    )
    assert format_rows([]) == ()


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
    assert report.misses == (("0.png", "KA05MN4829", "KA05MN4821", "other"),)
    assert report.causes == {"confusion": 0, "extra": 0, "missing": 0, "other": 1}
    assert report.formats == (FormatRow("in_rto", 2, 0.5, 0.95),)


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
    processor = StillPipeline(detector, engine, PlateChecks(SqlDues(tmp_path / "d.sqlite")), camera)
    report = evaluate_images(tmp_path / "labels.csv", processor, "paddle")
    assert report.kind == "images"
    assert report.rows["images"] == 3
    assert report.rows["detected"] == pytest.approx(2 / 3, abs=1e-3)
    assert report.rows["exact"] == 1.0


def test_evaluate_images_gives_each_miss_one_cause(
    tmp_path: Path, detector: YoloDetector, engine: OcrEngine
) -> None:
    image = np.full((480, 640, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "empty.jpg"), image)  # no plate to find
    image[300:348, 220:415] = cv2.resize(plate_image(PLATES[0]), (195, 48))
    cv2.imwrite(str(tmp_path / "car.jpg"), image)
    rows = [
        "empty.jpg,KA05MN4821,220,300,195,48",
        "car.jpg,KA05MN4821,220,300,195,48",  # read exactly
        "car.jpg,KA05MN4827,10,10,100,25",  # another plate, elsewhere
        "car.jpg,KA05MN482,220,300,195,48",  # a character fewer than on the plate
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    camera = Config().cameras[0]
    processor = StillPipeline(detector, engine, PlateChecks(SqlDues(tmp_path / "d.sqlite")), camera)
    report = evaluate_images(tmp_path / "labels.csv", processor, "paddle")
    assert [miss[3] for miss in report.misses] == ["not found", "wrong box", "extra"]
    assert report.causes == dict.fromkeys(
        ["not found", "wrong box", "confusion", "extra", "missing", "other"], 0
    ) | {"not found": 1, "wrong box": 1, "extra": 1}
    assert report.formats == (
        FormatRow("in_rto", 3, 0.3333, 0.6333),  # (0 + 1 + 0.9) / 3
        FormatRow("none", 1, 0.0, 0.8889),  # KA05MN482 is no Indian plate
    )


def reports() -> list[SetReport]:
    causes = {"not found": 2, "confusion": 0, "extra": 0, "missing": 4, "other": 2}
    return [
        SetReport(
            "plates-xx",
            "images",
            "paddle",
            {"images": 21, "detected": 0.9524, "exact": 0.8},
            (("3.jpeg", "AT6883CM", "", "not found"),),
            causes,
            (FormatRow("ua", 20, 0.65, 0.7826), FormatRow("none", 1, 0.0, 0.125)),
        ),
        SetReport(
            "crops-yy",
            "crops",
            "tesseract",
            {"crops": 751, "exact_o_as_0": 0.514},
            causes={"confusion": 54, "extra": 56, "missing": 15, "other": 8},
            formats=(FormatRow("us", 751, 0.8216, 0.9484),),
        ),
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


def test_render_causes_shows_counts_and_shares_of_the_set() -> None:
    lines = render_causes(reports()).splitlines()
    assert lines[0] == (
        "| set | kind | engine | n | not found | wrong box | confusion | extra | missing "
        "| other | not exact |"
    )
    assert len(lines) == 2 + 3
    assert lines[2] == (
        "| plates-xx | images | paddle | 21 | 2 (9.5%) | - | 0 (0.0%) | 0 (0.0%) "
        "| 4 (19.0%) | 2 (9.5%) | 8 (38.1%) |"
    )
    assert lines[3] == (
        "| crops-yy | crops | tesseract | 751 | - | - | 54 (7.2%) | 56 (7.5%) "
        "| 15 (2.0%) | 8 (1.1%) | 133 (17.7%) |"
    )
    assert lines[4] == "| cars.mp4 | video | paddle | 3 | - | - | - | - | - | - | 0 (0.0%) |"


def test_render_formats_shows_one_row_per_set_and_format() -> None:
    assert render_formats(reports()).splitlines() == [
        "| set | kind | engine | format | n | exact | char acc |",
        "|---|---|---|---|---|---|---|",
        "| plates-xx | images | paddle | ua | 20 | 65.0% | 78.3% |",
        "| plates-xx | images | paddle | none | 1 | 0.0% | 12.5% |",
        "| crops-yy | crops | tesseract | us | 751 | 82.2% | 94.8% |",
    ]


def test_render_report_prints_the_three_tables_in_order() -> None:
    report = render_report(reports())
    tables = [render_table(reports()), render_causes(reports()), render_formats(reports())]
    positions = [report.index(table) for table in tables]
    assert positions == sorted(positions)
    assert report.startswith(tables[0])
    assert report.endswith(tables[2])


def test_write_json(tmp_path: Path) -> None:
    path = tmp_path / "out" / "eval.json"
    write_json(reports(), path)
    data = json.loads(path.read_text())
    assert [d["name"] for d in data] == ["plates-xx", "crops-yy", "cars.mp4"]
    assert data[0]["rows"]["exact"] == 0.8
    assert data[0]["misses"] == [["3.jpeg", "AT6883CM", "", "not found"]]
    assert data[0]["causes"]["missing"] == 4
    assert data[0]["cause_shares"]["missing"] == 0.1905
    assert data[1]["formats"] == [
        {"format": "us", "items": 751, "exact": 0.8216, "char_accuracy": 0.9484}
    ]
    assert (data[2]["causes"], data[2]["cause_shares"], data[2]["formats"]) == ({}, {}, [])


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
    assert f"| {tmp_path.name} | crops | paddle | 3 | - | - | 0 (0.0%) |" in table
    assert f"| {tmp_path.name} | crops | paddle | in_rto | 3 | 100.0% | 100.0% |" in table
    data = json.loads(out.read_text())
    assert data[0]["rows"]["exact"] == 1.0
    assert data[0]["causes"] == {"confusion": 0, "extra": 0, "missing": 0, "other": 0}


def test_run_puts_engines_side_by_side_with_the_fused_engines_second_reads(
    tmp_path: Path,
) -> None:
    crops_set(tmp_path)
    out = tmp_path / "eval.json"
    table = run([tmp_path], ["plate", "paddle", "fused"], Config(), out, limit=4)
    figures = table.split("\n\n")[0].splitlines()
    assert figures[0].endswith("| speed | PP-OCRv4 too |")
    assert [line.split(" | ")[2] for line in figures[2:]] == ["plate", "paddle", "fused"]
    data = {report["engine"]: report["rows"] for report in json.loads(out.read_text())}
    assert all(rows["crops"] == 4 and rows["ms_per_crop"] > 0 for rows in data.values())
    assert 0.0 <= float(data["fused"]["second_reads"]) <= 1.0
    assert "second_reads" not in data["plate"]
    assert "| plate | 4 |" in table.split("\n\n")[2]  # the misses by cause, per engine


@pytest.mark.shared_data
def test_us_crops_from_shared_data(shared_data: Path, engine: OcrEngine) -> None:
    # The first 30 openalpr crops: 28 (93%) read exactly when measured.
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig(formats=["us"]))
    report = evaluate_crops(shared_data / "ocr-crops-us", reader, "paddle", limit=30)
    assert report.rows["crops"] == 30
    assert float(report.rows["exact"]) >= 0.8, report.misses
