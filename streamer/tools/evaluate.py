"""Accuracy on labelled data: photos, plate crops and videos (``streamer eval``).

Three kinds of labelled sets (:func:`discover` tells which a path is):

- ``images``: photos, as ``labels.json`` (``{"1.jpeg": ["AA1234BB"]}``) or a CSV
  ``image,plate[,x,y,w,h]``; each photo is detected and read;
- ``crops``: plate crops, as a CSV ``file,state,plate``; each crop is only read;
- ``videos``: an ``events.csv`` (``video,plate,...``, one row per vehicle) replayed through
  the daemon; a video whose one row has no plate is a negative control (no event expected).

Image paths are relative to the label file's folder or its ``images/`` subfolder; plates are
compared normalised. The config's plate formats are kept when they fit the labels, otherwise
the most specific preset that fits them is used (``ua`` for Ukrainian labels, say).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.api.images import ImageProcessor
from streamer.config import Config, PlatesConfig
from streamer.reading.ocr import OcrEngine, engine_named
from streamer.reading.plates import edit_distance
from streamer.reading.read import PlateReader
from streamer.service import Service, ServiceOptions
from streamer.stores.dues import NOT_FOUND, DuesResult
from streamer.tools.labels import (
    Box,
    Labelled,
    discover,
    items,
    label_file,
    labelled_plates,
    plates_for,
    video_labels,
)
from streamer.vision.detect import Detector, YoloDetector

Metric = float | int | str
Reader = Callable[["Labelled", np.ndarray], tuple[str, bool]]

#: Metrics that are fractions 0..1, shown as percentages.
RATES = frozenset({"detected", "exact", "exact_o_as_0", "char_accuracy", "read_exactly"})


def char_accuracy(read: str, truth: str) -> float:
    """1 - edit distance / length of ``truth``, floored at 0 (1.0 when both are empty)."""
    if not truth:
        return 0.0 if read else 1.0
    return max(0.0, 1.0 - edit_distance(read, truth) / len(truth))


@dataclass(frozen=True)
class SetReport:
    """The figures of one labelled set read with one OCR engine.

    Attributes:
        name: the set (its folder, or the video's file name).
        kind: ``images``, ``crops`` or ``video``.
        engine: the OCR engine's name.
        rows: metric name to value; rates are fractions 0..1.
        misses: ``(item, label, read)`` for each item not read exactly.
    """

    name: str
    kind: str
    engine: str
    rows: dict[str, Metric]
    misses: tuple[tuple[str, str, str], ...] = ()


class _NoDues:
    """Dues that know no plate: evaluation does not look dues up."""

    def lookup(self, plate: str) -> DuesResult:
        return NOT_FOUND


def _iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def _score(path: Path, kind: str, engine: str, limit: int | None, read: Reader) -> SetReport:
    """Read the first ``limit`` items whose image loads; ``read`` gives (text, detected)."""
    count = missing = detected = exact = loose = 0
    accuracy, elapsed, misses = 0.0, 0.0, []
    for item in items(path, kind):
        if limit is not None and count >= limit:
            break
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            missing += 1
            continue
        started = time.perf_counter()
        text, found = read(item, image)
        elapsed += time.perf_counter() - started
        count, detected, exact = count + 1, detected + found, exact + (text in item.plates)
        loose += text.replace("O", "0") in {plate.replace("O", "0") for plate in item.plates}
        accuracy += max(char_accuracy(text, plate) for plate in item.plates)
        if text not in item.plates:
            misses.append((item.path.name, "|".join(item.plates), text))
    share = 1 / count if count else 0.0
    rows: dict[str, Metric] = {kind: count, "missing": missing}
    if kind == "images":
        rows["detected"] = round(detected * share, 4)
    rows |= {
        "exact": round(exact * share, 4),
        "exact_o_as_0": round(loose * share, 4),
        "char_accuracy": round(accuracy * share, 4),
        f"ms_per_{kind.removesuffix('s')}": round(1000 * elapsed * share, 1),
        "seconds": round(elapsed, 2),
    }
    return SetReport(path.parent.name, kind, engine, rows, tuple(misses))


def evaluate_images(
    labels: Path, processor: ImageProcessor, engine_name: str, limit: int | None = None
) -> SetReport:
    """Detect and read the plate of each labelled photo (at most ``limit`` photos).

    Metrics: ``images``, ``missing`` (labelled but not on disk), ``detected`` (a plate box
    was found, with IoU > 0.3 against the labelled box where one is given), ``exact``,
    ``exact_o_as_0``, ``char_accuracy`` (mean, against the nearest label), ``ms_per_image``.
    """

    def read(item: Labelled, image: np.ndarray) -> tuple[str, bool]:
        found = processor.best_plate(image)
        if found is None:
            return "", False
        text = processor.reader.read_crop(found.crop).text
        return text, item.box is None or _iou(found.bbox, item.box) > 0.3

    return _score(label_file(labels), "images", engine_name, limit, read)


def evaluate_crops(
    groundtruth: Path, reader: PlateReader, engine_name: str, limit: int | None = None
) -> SetReport:
    """Read each labelled plate crop with ``reader.read_crop`` (at most ``limit`` crops).

    Metrics: ``crops``, ``missing``, ``exact``, ``exact_o_as_0`` (O and 0 counted as one
    glyph, as the openalpr labels do), ``char_accuracy`` (mean) and ``ms_per_crop``.
    """

    def read(item: Labelled, image: np.ndarray) -> tuple[str, bool]:
        return reader.read_crop(image).text, True

    return _score(label_file(groundtruth), "crops", engine_name, limit, read)


def _replay_config(config: Config, video: Path, plates: PlatesConfig, folder: Path) -> Config:
    """``config`` with one camera on ``video``, no HTTP or webhooks, files under ``folder``."""
    camera = config.cameras[0].model_copy(
        update={"name": "eval", "source": str(video), "enabled": True, "realtime": False}
        | {"plates": plates}
    )
    http = config.http.model_copy(update={"enabled": False})
    replay = config.model_copy(update={"cameras": [camera], "http": http, "webhooks": []})
    return replay.with_files_in(folder)


def evaluate_videos(
    events_csv: Path, config: Config, detector: Detector, engine: OcrEngine, engine_name: str
) -> list[SetReport]:
    """Replay each video of ``events_csv`` through the daemon; one report per video.

    A vehicle is read exactly when an event's plate equals its label. An event matches a
    vehicle when its character accuracy against the label is at least 0.5; events that
    match no label are false (in a negative control, every event). Metrics: ``vehicles``,
    ``read_exactly`` (fraction of vehicles), ``events``, ``events_per_vehicle`` (matching
    events / vehicles), ``false_events``, ``frames``, ``fps``, ``seconds``.
    """
    events_csv = label_file(events_csv)
    labels = video_labels(events_csv)
    plates = plates_for(config.cameras[0].plates, [p for ps in labels.values() for p in ps])
    reports = []
    for video, truths in labels.items():
        with tempfile.TemporaryDirectory(prefix="streamer-eval-") as folder:
            replay = _replay_config(config, events_csv.parent / video, plates, Path(folder))
            options = ServiceOptions(
                install_signal_handlers=False, detector=detector, engine=engine
            )
            service = Service(replay, options)
            stats = asyncio.run(service.run())["eval"]
        read = [event.plate_number for event in stats.events_list]
        matching = [p for p in read if any(char_accuracy(p, t) >= 0.5 for t in truths)]
        rows: dict[str, Metric] = {"vehicles": len(truths), "events": len(read)}
        if truths:
            rows["read_exactly"] = round(sum(t in read for t in truths) / len(truths), 4)
            rows["events_per_vehicle"] = round(len(matching) / len(truths), 2)
        seconds = service.processing_seconds
        rows |= {
            "false_events": len(read) - len(matching),
            "frames": stats.frames,
            "fps": round(stats.frames / seconds, 1) if seconds > 0 else 0.0,
            "seconds": round(seconds, 2),
        }
        if stats.error:
            rows["error"] = stats.error
        misses = [(video, t, " ".join(read)) for t in truths if t not in read]
        misses += [(video, "", p) for p in read if p not in matching]
        reports.append(SetReport(video, "video", engine_name, rows, tuple(misses)))
    return reports


#: Table columns: heading, and the metrics shown in it (the first one a report has).
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("n", ("images", "crops", "vehicles")),
    ("detected", ("detected",)),
    ("exact", ("exact", "read_exactly")),
    ("exact O=0", ("exact_o_as_0",)),
    ("char acc", ("char_accuracy",)),
    ("events", ("events",)),
    ("events/vehicle", ("events_per_vehicle",)),
    ("false events", ("false_events",)),
    ("speed", ("ms_per_image", "ms_per_crop", "fps")),
)
_UNITS = {"ms_per_image": " ms/image", "ms_per_crop": " ms/crop", "fps": " frames/s"}


def _cell(report: SetReport, keys: Sequence[str]) -> str:
    key = next((k for k in keys if k in report.rows), None)
    if key is None:
        return "-"
    value = report.rows[key]
    if key in RATES and not isinstance(value, str):
        return f"{100 * value:.1f}%"
    return f"{value:g}{_UNITS.get(key, '')}" if isinstance(value, float) else str(value)


def render_table(reports: Sequence[SetReport]) -> str:
    """A markdown table, one row per set and engine; rates as percentages."""
    head = ["set", "kind", "engine", *(heading for heading, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for report in reports:
        cells = [report.name, report.kind, report.engine]
        lines.append("| " + " | ".join(cells + [_cell(report, k) for _, k in COLUMNS]) + " |")
    return "\n".join(lines)


def write_json(reports: Sequence[SetReport], path: Path) -> None:
    """Write every report (metrics and misses) to ``path`` as a JSON list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [asdict(report) for report in reports]
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run(
    paths: Sequence[Path],
    engines: Sequence[str],
    config: Config,
    out: Path | None,
    limit: int | None,
) -> str:
    """Evaluate every set at ``paths`` with every engine; returns the markdown table.

    The detector and each engine are built once, with the first camera's settings (plate
    formats fitted to each set's labels, see :func:`plates_for`).

    Raises:
        EvalError: for a path that is no labelled set, before any model is loaded.
        ModelError: when the detector cannot load (from :class:`YoloDetector`).
        OcrError: when an engine cannot start (from :func:`engine_named`).
    """
    sets = [(label_file(path), discover(path), labelled_plates(path)) for path in paths]
    detector = YoloDetector(config.model)
    built = {name: engine_named(name, config.reader.tessdata) for name in engines}
    reports: list[SetReport] = []
    for path, kind, labels in sets:
        camera = config.cameras[0]
        if kind != "videos":
            plates = plates_for(camera.plates, labels)
            camera = camera.model_copy(update={"plates": plates})
        for name, engine in built.items():
            if kind == "images":
                processor = ImageProcessor(detector, engine, _NoDues(), camera)
                reports.append(evaluate_images(path, processor, name, limit))
            elif kind == "crops":
                reader = PlateReader(engine, camera.reader, camera.plates)
                reports.append(evaluate_crops(path, reader, name, limit))
            else:
                reports += evaluate_videos(path, config, detector, engine, name)
    if out is not None:
        write_json(reports, out)
    return render_table(reports)
