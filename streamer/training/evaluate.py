"""Measuring the plate recogniser beyond ``streamer eval``'s figures
(:mod:`streamer.evaluation.evaluate`, which reads the sets with each engine side by side):
the part of ``ocr-crops-us`` never trained on as a set of its own, the speed and agreement
of each precision, and the fused engine's threshold. Runs in streamer's own environment:
no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from streamer.config import PlatesConfig
from streamer.evaluation.labels import items, label_file, labelled_plates, plates_for
from streamer.reading.ocr import PaddleEngine
from streamer.reading.recogniser import MODEL, FusedEngine, PlateRecogniser


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


__all__ = ["held_out_crops", "precisions", "sweep_sure"]


def _cpu_ms(read: Callable[[np.ndarray], object], crops: Sequence[np.ndarray]) -> float:
    """CPU milliseconds of one ``read`` of a crop, averaged over ``crops`` after a warm-up.

    CPU time, not wall time: the figure is the work of one core, whatever else the machine
    is doing (OpenVINO's one inference thread runs in this process)."""
    for crop in crops[:20]:
        read(crop)
    started = time.process_time()
    for crop in crops:
        read(crop)
    return round(1000 * (time.process_time() - started) / len(crops), 2)


def precisions(
    path: Path,
    model: Path = MODEL,
    candidates: Sequence[str] = ("f32", "bf16"),
    limit: int | None = None,
) -> list[dict[str, float | str]]:
    """The plate recogniser in each of ``candidates`` precisions on the crops of
    ``path``: CPU ms per crop (one read, one thread, the preprocessing included), and the
    share of reads identical to the first precision's; then PP-OCRv4 (``paddle``) and the
    fused engine timed the same way, with the share of crops the fused engine gave
    PP-OCRv4 too."""
    crops: list[np.ndarray] = []
    for item in items(label_file(path), "crops")[:limit]:
        crop = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if crop is not None:
            crops.append(crop)
    rows: list[dict[str, float | str]] = []
    reference: list[str] = []
    for precision in candidates:
        recogniser = PlateRecogniser(model, precision)
        milliseconds = _cpu_ms(recogniser.read, crops)
        reads = [recogniser.read(crop).text for crop in crops]
        reference = reference or reads
        same = float(np.mean([a == b for a, b in zip(reads, reference, strict=True)]))
        rows.append(
            {
                "engine": "plate",
                "precision": precision,
                "ms_per_crop": milliseconds,
                "same_reads": round(same, 4),
            }
        )
    paddle = PaddleEngine()
    rows.append(
        {"engine": "paddle", "precision": "f32", "ms_per_crop": _cpu_ms(paddle.read, crops)}
    )
    # The fused engine with the formats streamer eval fits to the set's labels.
    formats = plates_for(PlatesConfig(), labelled_plates(path)).formats
    fused = FusedEngine(PlateRecogniser(model, candidates[0]), paddle, formats)
    milliseconds = _cpu_ms(fused.read, crops)
    rows.append(
        {
            "engine": "fused",
            "precision": candidates[0],
            "ms_per_crop": milliseconds,
            "second_reads": round(fused.second_reads / max(1, fused.reads), 4),
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
