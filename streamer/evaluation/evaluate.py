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

Besides the figures of each set, every plate not read exactly is given one cause
(:func:`miss_cause`), and the figures are broken down by the plate format of the labels;
:mod:`streamer.evaluation.tables` renders the three tables.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from streamer.config import Config, PlatesConfig
from streamer.evaluation.labels import (
    Box,
    Labelled,
    discover,
    items,
    label_file,
    label_format,
    labelled_plates,
    plates_for,
    video_labels,
)
from streamer.evaluation.tables import (
    CAUSES,
    RATES,
    Metric,
    SetReport,
    format_rows,
    render_report,
    render_table,
    write_json,
)
from streamer.events import NOT_FOUND, DuesResult
from streamer.node import ServiceOptions
from streamer.reading.engines import EnginePool
from streamer.reading.ocr import OcrEngine
from streamer.reading.plates import confusable_form, edit_distance
from streamer.reading.read import PlateReader
from streamer.reading.recogniser import MODEL, FusedEngine
from streamer.reading.still import StillReader
from streamer.service import Service
from streamer.stills import StillPipeline
from streamer.stores.checks import PlateChecks
from streamer.vision.detect import Detector, YoloDetector

__all__ = [
    "CAUSES",
    "RATES",
    "ItemRead",
    "Metric",
    "SetReport",
    "char_accuracy",
    "evaluate_crops",
    "evaluate_images",
    "evaluate_videos",
    "miss_cause",
    "render_report",
    "render_table",
    "run",
    "write_json",
]


@dataclass(frozen=True)
class ItemRead:
    """What evaluation got from one photo or crop.

    Attributes:
        text: the normalised read; empty when nothing was read.
        found: a plate was detected (always true for a crop).
        overlaps: the plate's box overlaps the labelled one (IoU > 0.3); true without a
            labelled box.
    """

    text: str
    found: bool = True
    overlaps: bool = True


Reader = Callable[[Labelled, np.ndarray], ItemRead]


def char_accuracy(read: str, truth: str) -> float:
    """1 - edit distance / length of ``truth``, floored at 0 (1.0 when both are empty)."""
    if not truth:
        return 0.0 if read else 1.0
    return max(0.0, 1.0 - edit_distance(read, truth) / len(truth))


def miss_cause(read: str, truth: str, found: bool = True, overlaps: bool = True) -> str | None:
    """Why ``read`` is not ``truth``: one of :data:`CAUSES`, or ``None`` when it is.

    In order: ``not found`` (no plate detected), ``wrong box`` (the plate found is not the
    labelled one), ``extra`` (the read is longer: stacked letters, stickers), ``missing``
    (shorter, or empty), ``confusion`` (same length, each difference a look-alike pair
    such as O/0, I/1 or B/8, see :func:`confusable_form`), else ``other``.

    Example:
        >>> miss_cause("AB1234", "AB1234"), miss_cause("A81234", "AB1234")
        (None, 'confusion')
    """
    if read == truth:
        return None
    if not found:
        return "not found"
    if not overlaps:
        return "wrong box"
    if len(read) != len(truth):
        return "extra" if len(read) > len(truth) else "missing"
    return "confusion" if confusable_form(read) == confusable_form(truth) else "other"


class _NoDues:
    """Dues that know no plate: evaluation does not look dues up."""

    def lookup(self, plate: str) -> DuesResult:
        return NOT_FOUND


def _iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def _applicable(kind: str, boxed: bool) -> tuple[str, ...]:
    """The causes that can happen in a set of ``kind`` (``boxed``: some labels have a box)."""
    cannot = {"images": set() if boxed else {"wrong box"}, "video": {"wrong box"}}.get(
        kind, {"not found", "wrong box"}
    )
    return tuple(cause for cause in CAUSES if cause not in cannot)


def _count(misses: Sequence[tuple[str, str, str, str]], causes: Sequence[str]) -> dict[str, int]:
    """How many of ``misses`` have each of ``causes`` (their last element)."""
    return {cause: sum(miss[3] == cause for miss in misses) for cause in causes}


def _score(
    path: Path, kind: str, engine: str, limit: int | None, read: Reader, formats: Sequence[str]
) -> SetReport:
    """Read the first ``limit`` items whose image loads, each with ``read``; ``formats``
    are the plate formats the labels are grouped by."""
    count = missing = detected = exact = loose = 0
    accuracy, elapsed, boxed = 0.0, 0.0, False
    misses: list[tuple[str, str, str, str]] = []
    scored: list[tuple[str, bool, float]] = []
    for item in items(path, kind):
        if limit is not None and count >= limit:
            break
        image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if image is None:
            missing += 1
            continue
        started = time.perf_counter()
        result = read(item, image)
        elapsed += time.perf_counter() - started
        text, hit = result.text, result.text in item.plates
        count, exact, boxed = count + 1, exact + hit, boxed or item.box is not None
        detected += result.found and result.overlaps
        loose += text.replace("O", "0") in {plate.replace("O", "0") for plate in item.plates}
        nearest = max(item.plates, key=lambda plate: char_accuracy(text, plate))
        accuracy += char_accuracy(text, nearest)
        scored.append((label_format(item.plates, formats), hit, char_accuracy(text, nearest)))
        if cause := miss_cause(text, nearest, result.found, result.overlaps):
            misses.append((item.path.name, "|".join(item.plates), text, cause))
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
    causes = _count(misses, _applicable(kind, boxed))
    return SetReport(
        path.parent.name, kind, engine, rows, tuple(misses), causes, format_rows(scored)
    )


def evaluate_images(
    labels: Path, processor: StillPipeline, engine_name: str, limit: int | None = None
) -> SetReport:
    """Detect and read the plate of each labelled photo (at most ``limit`` photos).

    Metrics: ``images``, ``missing`` (labelled but not on disk), ``detected`` (a plate box
    was found, with IoU > 0.3 against the labelled box where one is given), ``exact``,
    ``exact_o_as_0``, ``char_accuracy`` (mean, against the nearest label), ``ms_per_image``;
    each miss's cause (:func:`miss_cause`) and the figures per format of the labels (the
    formats of ``processor.reader.plates``).
    """

    def read(item: Labelled, image: np.ndarray) -> ItemRead:
        found = processor.best_plate(image)
        if found is None:
            return ItemRead("", found=False)
        text = processor.reader.read_plate(image, found.bbox).text
        return ItemRead(text, overlaps=item.box is None or _iou(found.bbox, item.box) > 0.3)

    formats = processor.reader.plates.formats
    return _score(label_file(labels), "images", engine_name, limit, read, formats)


def evaluate_crops(
    groundtruth: Path, reader: PlateReader, engine_name: str, limit: int | None = None
) -> SetReport:
    """Read each labelled plate crop with ``reader.read_crop`` (at most ``limit`` crops).

    Metrics: ``crops``, ``missing``, ``exact``, ``exact_o_as_0`` (O and 0 counted as one
    glyph, as the openalpr labels do), ``char_accuracy`` (mean) and ``ms_per_crop``; each
    miss's cause (:func:`miss_cause`) and the figures per format of the labels (the formats
    of ``reader.plates``).
    """

    def read(item: Labelled, image: np.ndarray) -> ItemRead:
        return ItemRead(reader.read_crop(image).text)

    formats = reader.plates.formats
    return _score(label_file(groundtruth), "crops", engine_name, limit, read, formats)


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
    events / vehicles), ``false_events``, ``frames``, ``fps``, ``seconds``. A vehicle not
    read exactly is missed for the cause (:func:`miss_cause`) of its nearest matching event,
    or ``not found`` when no event matches it.
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
        # Plates read; vehicles whose plate was not read are not reads of a plate.
        read = [event.plate_number for event in stats.events_list if event.plate_number]
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
        causes_of = {t: _vehicle_cause(t, matching) for t in truths}
        misses = [(video, t, " ".join(read), c) for t, c in causes_of.items() if c is not None]
        misses += [(video, "", p, "false event") for p in read if p not in matching]
        causes = _count(misses, _applicable("video", boxed=False))
        scored = [
            (label_format([t], plates.formats), t in read, max(_accuracies(read, t), default=0.0))
            for t in truths
        ]
        reports.append(
            SetReport(video, "video", engine_name, rows, tuple(misses), causes, format_rows(scored))
        )
    return reports


def _accuracies(reads: Sequence[str], truth: str) -> list[float]:
    return [char_accuracy(read, truth) for read in reads]


def _vehicle_cause(truth: str, matching: Sequence[str]) -> str | None:
    """Why a vehicle was not read exactly: against the nearest event that matches it, or
    ``not found`` when none does (no event for it)."""
    if not matching:
        return miss_cause("", truth, found=False)
    return miss_cause(max(matching, key=lambda read: char_accuracy(read, truth)), truth)


def _second_reads(engine: OcrEngine) -> tuple[int, int]:
    """How many reads the fused ``engine`` has made, and how many with PP-OCRv4 too."""
    return (engine.reads, engine.second_reads) if isinstance(engine, FusedEngine) else (0, 0)


def _with_second_reads(report: SetReport, engine: OcrEngine, before: tuple[int, int]) -> SetReport:
    """``report`` with, for the fused engine, the share of its reads since ``before`` (see
    :func:`_second_reads`) that asked PP-OCRv4 too."""
    if not isinstance(engine, FusedEngine):
        return report
    reads, second = (now - then for now, then in zip(_second_reads(engine), before, strict=True))
    share = round(second / reads, 4) if reads else 0.0
    return replace(report, rows=report.rows | {"second_reads": share})


def run(
    paths: Sequence[Path],
    engines: Sequence[str],
    config: Config,
    out: Path | None,
    limit: int | None,
    model: Path = MODEL,
) -> str:
    """Evaluate every set at ``paths`` with every engine; returns the markdown tables (see
    :func:`render_report`): the figures, the misses by cause and the figures by format,
    each engine a row beside the others; for the ``fused`` engine, the share of its reads
    that asked PP-OCRv4 too. ``model`` is the plate recogniser's ONNX file.

    The detector and each engine are built once, with the first camera's settings (plate
    formats fitted to each set's labels, see :func:`plates_for`).

    Raises:
        EvalError: for a path that is no labelled set, before any model is loaded.
        ModelError: when the detector cannot load (from :class:`YoloDetector`).
        OcrError: when an engine cannot start (from
            :class:`~streamer.reading.engines.EnginePool`).
    """
    sets = [(label_file(path), discover(path), labelled_plates(path)) for path in paths]
    detector = YoloDetector(config.model)
    pool = EnginePool(model=model)
    readers = {name: config.reader.model_copy(update={"engine": name}) for name in engines}
    for reader in readers.values():  # each engine starts (or fails) before any set is read
        pool(reader, config.cameras[0].plates.formats)
    reports: list[SetReport] = []
    for path, kind, labels in sets:
        camera = config.cameras[0]
        plates = plates_for(camera.plates, labels)  # videos: fitted in the replay's config
        if kind != "videos":
            camera = camera.model_copy(update={"plates": plates})
        for name, reader in readers.items():
            engine = pool(reader, plates.formats)
            first = _second_reads(engine)
            if kind == "images":
                processor = StillPipeline(detector, engine, PlateChecks(_NoDues()), camera)
                found = [evaluate_images(path, processor, name, limit)]
            elif kind == "crops":  # each crop read as a still photo's is
                still = StillReader(engine, camera.reader, camera.plates)
                found = [evaluate_crops(path, still, name, limit)]
            else:
                found = evaluate_videos(path, config, detector, engine, name)
            reports += [_with_second_reads(report, engine, first) for report in found]
    if out is not None:
        write_json(reports, out)
    return render_report(reports)
