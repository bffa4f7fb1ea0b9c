"""Small plates in a wide frame: the whole frame against a region of interest on the lane.

An overview camera (1920x1080) sees the lane in a small part of its view: the demo
recording drawn ``--lanes`` pixels wide and pasted into the frame (``tests/support/overview.py``;
generated, nothing downloaded). Each input is replayed end to end (``streamer replay``
in-process, default settings) with:

- the whole frame (``detection.roi`` empty), with the motion gate and without it;
- ``detection.roi`` on the lane: the detector letterboxes the region to its input size
  (640 on the long side), so a region narrower than that is enlarged;
- the same region not enlarged (padded to the input size, its pixels as they are), and
  enlarged further (letterboxed to 960), to show which scale serves small plates.

For each: the plates read exactly (one final event per vehicle, its text the rendered
one), in how many frames with a whole plate in view (every 5th) the detector finds a
plate box, and the milliseconds of one detection (region cut, letterbox, inference, NMS;
one frame at a time on the daemon's detector) and their ratio to the whole frame's.
Writes a markdown table to ``docs/PERFORMANCE.md`` (or ``--out``) and prints it.

    .venv/bin/python bench/roi.py [--lanes 240 320 480 640] [--out docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from streamer.config import Config, DetectionConfig
from streamer.node import ServiceOptions
from streamer.reading.engines import engine_named
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DEMO_VEHICLES
from streamer.sources.files import FileSource
from streamer.vision.detect import Detector, YoloDetector
from streamer.vision.export import ensure_int8_export, ensure_openvino_export
from streamer.vision.hardware import this_machine
from streamer.vision.region import Roi, region
from streamer.vision.yolo import PAD_VALUE, OpenVinoYolo, filter_detections, letterbox

from common import ROOT, bench_config, tests_helper, write_section

#: Every how many frames the per-frame figures look.
STEP = 5
#: The whole frame with the motion gate off: every frame examined is detected.
NO_GATE: dict[str, object] = {"motion_gate": False}


class NotEnlarged:
    """A detector that never enlarges: an image smaller than the input size is padded to
    it on its long side, so the letterbox keeps its pixels as they are."""

    def __init__(self, detector: Detector, size: int) -> None:
        self.detector = detector
        self.size = size

    def detect(self, image: np.ndarray) -> sv.Detections:
        height, width = image.shape[:2]
        if max(height, width) >= self.size:
            return self.detector.detect(image)
        right = self.size - width if width >= height else 0
        bottom = self.size - height if height > width else 0
        padded = cv2.copyMakeBorder(
            image, 0, bottom, 0, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
        )
        found = self.detector.detect(padded)
        found.xyxy[:, [0, 2]] = found.xyxy[:, [0, 2]].clip(0, width)
        found.xyxy[:, [1, 3]] = found.xyxy[:, [1, 3]].clip(0, height)
        return found


def resized(detector: YoloDetector, size: int) -> Detector:
    """The detector's model and precision letterboxing to ``size`` (its export is dynamic,
    so no new export is made)."""
    if detector.backend != "openvino":
        raise SystemExit("bench/roi.py: the enlarged-further row needs the OpenVINO backend")
    made_for = detector.config.image_size
    if detector.precision == "int8":
        return OpenVinoYolo(ensure_int8_export(detector.weights, made_for), size, "f32")
    export = ensure_openvino_export(detector.weights, made_for)
    return OpenVinoYolo(export, size, detector.precision)


@dataclass(frozen=True)
class Setting:
    """One way of detecting an input."""

    name: str
    roi: Roi | None
    detector: Detector
    input_size: str
    detection: dict[str, object]


@dataclass(frozen=True)
class Row:
    """The figures of one input with one setting."""

    input: str
    frame: tuple[int, int]
    setting: Setting
    roi_pixels: str
    exact: int
    events: int
    vehicles: int
    found: int
    in_view: int
    ms_detect: float


def replay(path: Path, work: Path, setting: Setting, engine: OcrEngine) -> list[str]:
    """The plate of each final event of the pipeline run on ``path``."""
    config = bench_config(
        work,
        cameras=[{"name": "bench", "source": str(path)}],
        detection={**setting.detection, "roi": setting.roi},
    )
    options = ServiceOptions(
        install_signal_handlers=False, detector=setting.detector, engine=engine
    )
    stats = asyncio.run(Service(config, options).run())["bench"]
    return [event.plate_number for event in stats.events_list]


def sampled(overview: Any) -> tuple[list[np.ndarray], list[bool]]:
    """Every :data:`STEP`-th frame, and whether a whole plate is in view in it."""
    images, in_view = [], []
    for index, frame in enumerate(FileSource("bench", overview.path).frames()):
        if index % STEP:
            continue
        seconds = index / overview.fps
        images.append(frame.image)
        in_view.append(any(first <= seconds <= last for first, last in overview.appearances))
    return images, in_view


def found_in(images: list[np.ndarray], in_view: list[bool], setting: Setting) -> tuple[int, int]:
    """Frames with a plate in view in which a plate box is found; the tallest box's
    height in pixels."""
    config = DetectionConfig()
    found = tallest = 0
    for image, plate in zip(images, in_view, strict=True):
        boxes = filter_detections(setting.detector.detect(region(image, setting.roi)), config)
        found += plate and len(boxes) > 0
        if len(boxes):
            tallest = max(tallest, round(float((boxes.xyxy[:, 3] - boxes.xyxy[:, 1]).max())))
    return found, tallest


def ms_detect(images: list[np.ndarray], settings: list[Setting], rounds: int) -> list[float]:
    """Each setting's median milliseconds per detection over ``rounds`` rounds, the
    settings taking turns in each, so that other load on the machine touches all alike."""
    for setting in settings:  # the first call of a new input shape compiles
        setting.detector.detect(region(images[0], setting.roi))
    times: list[list[float]] = [[] for _ in settings]
    for _ in range(rounds):
        for setting, taken in zip(settings, times, strict=True):
            started = time.perf_counter()
            for image in images:
                setting.detector.detect(region(image, setting.roi))
            taken.append(1000 * (time.perf_counter() - started) / len(images))
    return [statistics.median(taken) for taken in times]


def fitted(shape: tuple[int, int], size: int, enlarge: bool = True) -> str:
    """What the detector is given for a region of ``shape`` (height, width): the
    letterboxed input's width x height, and the scale of the region in it."""
    height, width = shape
    scale = min(size / height, size / width)
    if not enlarge and scale > 1:
        scale = 1.0
        long_side = (height, size) if width >= height else (size, width)
        height, width = long_side
    image = letterbox(np.zeros((height, width, 3), np.uint8), size).image
    return f"{image.shape[1]}x{image.shape[0]}, x{scale:.2f}"


def measure(
    lane_width: int, work: Path, detector: YoloDetector, engine: OcrEngine, rounds: int
) -> list[Row]:
    """Every setting on the overview whose lane is ``lane_width`` pixels wide."""
    overview = tests_helper("overview").render_overview(
        work / f"overview-{lane_width}.mp4", DEMO_VEHICLES, lane_width=lane_width
    )
    size = detector.config.image_size
    width, height = overview.roi_pixels
    frame = overview.size[1], overview.size[0]
    lane = height, width
    settings = [
        Setting("whole frame", None, detector, fitted(frame, size), {}),
        Setting("whole frame, no motion gate", None, detector, fitted(frame, size), NO_GATE),
        Setting("lane", overview.roi, detector, fitted(lane, size), {}),
        Setting("lane", overview.roi, resized(detector, 960), fitted(lane, 960), {}),
    ]
    if max(lane) < size:  # a region as large as the input is not enlarged anyway
        not_enlarged = NotEnlarged(detector, size)
        settings.insert(
            3, Setting("lane", overview.roi, not_enlarged, fitted(lane, size, False), {})
        )
    images, in_view = sampled(overview)
    plates = [vehicle.plate for vehicle in overview.vehicles]
    # The motion gate changes which frames are detected, not what one detection costs.
    timed = [setting for setting in settings if not setting.detection]
    ms = dict(zip((id(s) for s in timed), ms_detect(images, timed, rounds), strict=True))
    ms[id(settings[1])] = ms[id(settings[0])]  # the same detections, the gate aside
    found = [found_in(images, in_view, setting) for setting in settings]
    tallest = found[2][1]  # as the lane's region finds them
    rows = []
    for index, setting in enumerate(settings):
        read = replay(overview.path, work / f"{lane_width}-{index}", setting, engine)
        rows.append(
            Row(
                f"lane {lane_width} px wide, plates up to {tallest} px tall",
                overview.size,
                setting,
                "-" if setting.roi is None else f"{width}x{height} px",
                sum(plate in read for plate in plates),
                len(read),
                len(plates),
                found[index][0],
                sum(in_view),
                ms[id(setting)],
            )
        )
    return rows


def table(rows: list[Row], detector: YoloDetector, engine: OcrEngine) -> str:
    """The markdown section."""
    lines = [
        "## Small plates: a region of interest",
        "",
        f"Measured by `bench/roi.py` on **{this_machine().describe()}**; detector on "
        f"{detector.backend} in {detector.precision}, OCR engine {engine.name}. The demo "
        "recording (5 vehicles) drawn as a lane a few hundred pixels wide in a 1920x1080 "
        "frame of empty road; replayed with the default settings. *Plates up to*: the "
        "tallest plate box found in it. *Detector input*: the letterboxed image the "
        "detector is given, and the scale of the region in it (x1.00: the region's own "
        "pixels, padded). *Found*: frames (every "
        f"{STEP}th) with a whole plate in view in which the detector finds a plate box. "
        "*ms detect*: one detection (region cut, letterbox, inference, NMS), one frame at a "
        "time, the median of rounds in which the settings take turns; the ratio is to the "
        "whole frame's.",
        "",
        "| input | frame | roi | detector input | plates read exactly | events "
        "| found | ms detect per frame | vs whole frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    whole: dict[str, float] = {}
    for r in rows:
        whole.setdefault(r.input, r.ms_detect)
        lines.append(
            f"| {r.input} | {r.frame[0]}x{r.frame[1]} | {r.setting.name}: {r.roi_pixels} | "
            f"{r.setting.input_size} | {r.exact} of {r.vehicles} | {r.events} | "
            f"{r.found} of {r.in_view} | {r.ms_detect:.1f} | "
            f"{r.ms_detect / whole[r.input]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lanes", type=int, nargs="+", default=[240, 320, 480, 640], help="lane widths in pixels"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the timing")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    args = parser.parse_args()
    config = Config()
    detector = YoloDetector(config.model)
    engine = engine_named(config.reader.engine, formats=config.cameras[0].plates.formats)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-roi-") as scratch:
        for lane_width in args.lanes:
            print(f"measuring a lane {lane_width} px wide ...", file=sys.stderr)
            rows += measure(lane_width, Path(scratch), detector, engine, args.rounds)
    text = table(rows, detector, engine)
    write_section(args.out, "roi", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
