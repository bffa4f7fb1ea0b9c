"""Measuring the plate recogniser against PP-OCRv4 and their fusion, in ``streamer eval``'s
harness (:mod:`streamer.tools.evaluate`), on the evaluation sets.

Each engine reads each set as ``streamer eval`` reads it: the plate formats fitted to the
set's labels (``us`` for ``ocr-crops-us``, ``ua`` for ``plates-ua``), a crop read in
several views that vote (:class:`~streamer.reading.still.StillReader`), a photo detected
first. With ``views=False`` a crop is read once, as a video's crops are
(:class:`~streamer.reading.read.PlateReader`). Runs in streamer's own environment: no
torch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from streamer.api.images import ImageProcessor
from streamer.config import Config
from streamer.reading.ocr import OcrEngine, PaddleEngine
from streamer.reading.read import PlateReader
from streamer.reading.recogniser import MODEL, FusedEngine, PlateRecogniser
from streamer.reading.still import StillReader
from streamer.tools.evaluate import (
    _NoDues,
    evaluate_crops,
    evaluate_images,
    evaluate_videos,
    render_report,
    write_json,
)
from streamer.tools.labels import discover, items, label_file, labelled_plates, plates_for
from streamer.tools.tables import SetReport
from streamer.vision.detect import Detector, YoloDetector

ENGINES = ("plate", "paddle", "fused")


def held_out_crops(root: Path, folder: Path) -> Path:
    """A crops set in ``folder`` of the ``ocr-crops-us`` crops at ``root`` that are not in
    the training half (:data:`~streamer.training.data.US_SPLIT`): its ``groundtruth.csv``,
    and ``images`` linked to ``root``'s."""
    from streamer.training.data import us_training_names

    trained = us_training_names()
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        line
        for line in (root / "groundtruth.csv").read_text().splitlines()
        if line.strip() and line.split(",")[0] not in trained
    ]
    (folder / "groundtruth.csv").write_text("\n".join(rows) + "\n")
    images = folder / "images"
    if not images.exists():
        images.symlink_to((root / "images").resolve(), target_is_directory=True)
    return folder


__all__ = ["ENGINES", "evaluate", "precisions"]


def evaluate(
    paths: Sequence[Path],
    engines: Sequence[str] = ENGINES,
    model: Path = MODEL,
    precision: str = "f32",
    views: bool = True,
    out: Path | None = None,
    limit: int | None = None,
) -> str:
    """Every set at ``paths`` read by every engine of ``engines``; the markdown tables of
    ``streamer eval`` (figures, misses by cause, figures by format), and for ``fused``
    the share of crops that PP-OCRv4 read too."""
    config = Config()
    plate = PlateRecogniser(model, precision)
    paddle = PaddleEngine()
    detector: Detector | None = None
    reports: list[SetReport] = []
    notes = []
    for path in paths:
        kind = discover(path)
        camera = config.cameras[0]
        plates = plates_for(camera.plates, labelled_plates(path))
        camera = camera.model_copy(update={"plates": plates})
        for name in engines:
            engine: OcrEngine
            if name == "fused":
                engine = FusedEngine(plate, paddle, plates.formats)
            else:
                engine = plate if name == "plate" else paddle
            label = name if views or kind != "crops" else f"{name} (one view)"
            if kind == "crops":
                reader_type = StillReader if views else PlateReader
                reader = reader_type(engine, camera.reader, camera.plates)
                reports.append(evaluate_crops(label_file(path), reader, label, limit))
            elif kind == "images":
                detector = detector or YoloDetector(config.model)
                processor = ImageProcessor(detector, engine, _NoDues(), camera)
                reports.append(evaluate_images(label_file(path), processor, label, limit))
            else:
                detector = detector or YoloDetector(config.model)
                reports += evaluate_videos(label_file(path), config, detector, engine, label)
            if isinstance(engine, FusedEngine):
                share = engine.second_reads / max(1, engine.reads)
                notes.append(
                    f"- {path.name}: fused read {engine.reads} views, {engine.second_reads}"
                    f" ({share:.0%}) with PP-OCRv4 too"
                )
                engine.reads = engine.second_reads = 0
    if out is not None:
        write_json(reports, out)
    return render_report(reports) + ("\n\n" + "\n".join(notes) if notes else "")


def precisions(
    path: Path,
    model: Path = MODEL,
    candidates: Sequence[str] = ("f32", "bf16"),
    limit: int | None = None,
) -> list[dict[str, float | str]]:
    """The plate recogniser in each of ``candidates`` precisions on the crops of
    ``path``: CPU ms per crop (one read, one thread, the preprocessing included), and the
    share of reads identical to the first precision's."""
    crops: list[np.ndarray] = []
    for item in items(label_file(path), "crops")[:limit]:
        crop = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if crop is not None:
            crops.append(crop)
    rows: list[dict[str, float | str]] = []
    reference: list[str] = []
    for precision in candidates:
        recogniser = PlateRecogniser(model, precision)
        for crop in crops[:20]:  # warm up
            recogniser.read(crop)
        # CPU time, not wall time: the figure is the work of one core, whatever else the
        # machine is doing (OpenVINO's one inference thread runs in this process).
        started = time.process_time()
        reads = [recogniser.read(crop).text for crop in crops]
        elapsed = time.process_time() - started
        reference = reference or reads
        same = float(np.mean([a == b for a, b in zip(reads, reference, strict=True)]))
        rows.append(
            {
                "precision": precision,
                "ms_per_crop": round(1000 * elapsed / len(crops), 2),
                "same_reads": round(same, 4),
            }
        )
    return rows


def sweep_sure(
    crops: Sequence[np.ndarray],
    labels: Sequence[str],
    formats: Sequence[str],
    thresholds: Sequence[float],
    model: Path = MODEL,
) -> list[dict[str, float | str]]:
    """The fused engine's exact share (one read a crop, the reading path's fixes applied)
    and the share of crops PP-OCRv4 reads too, for each ``sure`` of ``thresholds``: the
    figures that choose :data:`~streamer.reading.recogniser.SURE`; then each engine's exact
    share alone. Each engine reads each crop once; the fusion is replayed for each
    threshold."""
    from streamer.reading.plates import fix_confusions, normalise
    from streamer.reading.read import zeros_for_letter_o

    plate = PlateRecogniser(model)
    paddle = PaddleEngine()
    firsts = [plate.read_characters(crop) for crop in crops]
    seconds = [paddle.read(crop) for crop in crops]

    def fixed(text: str) -> str:
        return zeros_for_letter_o(fix_confusions(normalise(text), formats), formats)

    rows: list[dict[str, float | str]] = []
    for sure in thresholds:
        fused = FusedEngine(plate, paddle, formats, sure)
        exact = asked = 0
        for first, second, label in zip(firsts, seconds, labels, strict=True):
            settled = first.text and min(first.characters) >= sure and fused.fits(first.text)
            text = first.text if settled else fused.decide(first, second).text
            asked += not settled
            exact += fixed(text) == label
        share, asked_share = exact / len(labels), asked / len(labels)
        rows.append({"engine": "fused", "sure": sure, "exact": share, "asked": asked_share})
    for name, reads in (("plate", [r.text for r in firsts]), ("paddle", [r.text for r in seconds])):
        exact = sum(fixed(text) == label for text, label in zip(reads, labels, strict=True))
        rows.append({"engine": name, "exact": exact / len(labels)})
    return rows
