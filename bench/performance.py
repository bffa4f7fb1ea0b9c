"""Throughput against the decode limit, and against the seed's every-frame flow.

For each input, in one run on the same file:

- decode only: OpenCV's read loop, the ceiling nothing downstream can beat;
- ``streamer replay``: the pipeline in-process (detect, track, read the best crops once
  per track), frames per second and its ratio to the ceiling;
- the seed's flow: detection and OCR on every frame, as its per-image services did
  (in-process, no HTTP), and streamer's speed-up over it;
- milliseconds per stage (decode, detect, track, OCR) and the plates each flow read.

Inputs: ``../shared/data/videos/*`` looped to at least a minute (when present), and the
demo recording. Writes a markdown table to ``docs/PERFORMANCE.md`` (or ``--out``) and
prints it. Not a test: timings on shared machines are noisy; compare ratios in one run.

    .venv/bin/python bench/performance.py [--seconds 60] [--out docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "videos"
sys.path.insert(0, str(ROOT / "tests"))

from streamer.config import Config, DetectionConfig, PlatesConfig, ReaderConfig  # noqa: E402
from streamer.demo import render_video  # noqa: E402
from streamer.detect import YoloDetector, gate  # noqa: E402
from streamer.ocr import OcrEngine, engine_named  # noqa: E402
from streamer.read import PlateReader  # noqa: E402
from streamer.service import Service  # noqa: E402
from streamer.sources import FileSource  # noqa: E402
from streamer.track import PlateTracker, cut_crop  # noqa: E402

from conftest import make_config  # noqa: E402


@dataclass(frozen=True)
class Row:
    """The figures of one input."""

    name: str
    frames: int
    decode_fps: float
    replay_fps: float
    seed_fps: float
    ms_decode: float
    ms_detect: float
    ms_track: float
    ms_ocr_track: float
    ms_ocr_frame: float
    replay_plates: list[str]
    seed_plates: list[str]


def loop_video(source: Path, target: Path, seconds: float) -> Path:
    """``source`` repeated until it lasts at least ``seconds`` (same size and frame rate)."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    for index in range(max(len(frames), int(seconds * fps))):
        writer.write(frames[index % len(frames)])
    writer.release()
    return target


def decode_only(path: Path) -> tuple[int, float]:
    """Frames and seconds of a plain OpenCV read loop."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    started = time.perf_counter()
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames, time.perf_counter() - started


def replay(
    path: Path, work: Path, detector: YoloDetector, engine: OcrEngine, formats: list[str]
) -> tuple[int, float, float, float, list[str]]:
    """streamer's pipeline: frames, seconds, ms per detection, ms per track read, plates."""
    config = make_config(
        work, cameras=[{"name": "bench", "source": str(path)}], plates={"formats": formats}
    )
    service = Service(config, install_signal_handlers=False, detector=detector, engine=engine)
    stats = asyncio.run(service.run())["bench"]
    assert service.metrics is not None
    registry = service.metrics.registry

    def mean_ms(metric: str) -> float:
        labels = {"camera": "bench"}
        count = registry.get_sample_value(f"{metric}_count", labels) or 0.0
        total = registry.get_sample_value(f"{metric}_sum", labels) or 0.0
        return 1000 * total / count if count else 0.0

    plates = [event.plate_number for event in stats.events_list]
    return (
        stats.frames,
        service.processing_seconds,
        mean_ms("streamer_detect_seconds"),
        mean_ms("streamer_ocr_seconds"),
        plates,
    )


def seed_flow(
    path: Path, detector: YoloDetector, engine: OcrEngine, formats: list[str]
) -> tuple[int, float, float, list[str]]:
    """Detection and OCR on every frame, as the seed's chained services did: frames,
    seconds, ms of OCR per frame with a plate, and the plates read (on at least 3 frames)."""
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig(formats=formats))
    reads: Counter[str] = Counter()
    ocr_seconds = 0.0
    ocr_frames = 0
    started = time.perf_counter()
    frames = 0
    for frame in FileSource("seed", path).frames():
        frames += 1
        detections = gate(detector.detect(frame.image), DetectionConfig())
        if len(detections) == 0 or detections.confidence is None:
            continue
        best = int(detections.confidence.argmax())
        x1, y1, x2, y2 = (round(float(v)) for v in detections.xyxy[best])
        ocr_started = time.perf_counter()
        text = reader.read_crop(cut_crop(frame.image, (x1, y1, x2, y2))).text
        ocr_seconds += time.perf_counter() - ocr_started
        ocr_frames += 1
        if text:
            reads[text] += 1
    seconds = time.perf_counter() - started
    plates = sorted(plate for plate, count in reads.items() if count >= 3)
    return frames, seconds, 1000 * ocr_seconds / max(ocr_frames, 1), plates


def track_ms(path: Path, detector: YoloDetector, limit: int = 300) -> float:
    """Mean milliseconds of one tracker update, on the real detections of ``path``."""
    tracker = PlateTracker("bench", Config().tracker)
    frames = []
    for frame in FileSource("bench", path).frames():
        frames.append((frame, gate(detector.detect(frame.image), DetectionConfig())))
        if len(frames) >= limit:
            break
    started = time.perf_counter()
    for frame, detections in frames:
        tracker.update(frame, detections)
    tracker.finish_all()
    return 1000 * (time.perf_counter() - started) / len(frames)


def measure(
    name: str, path: Path, work: Path, detector: YoloDetector, engine: OcrEngine, formats: list[str]
) -> Row:
    frames, decode_seconds = decode_only(path)
    replay_frames, replay_seconds, ms_detect, ms_ocr, plates = replay(
        path, work / name, detector, engine, formats
    )
    seed_frames, seed_seconds, ms_ocr_frame, seed_plates = seed_flow(
        path, detector, engine, formats
    )
    return Row(
        name,
        frames,
        frames / decode_seconds,
        replay_frames / replay_seconds,
        seed_frames / seed_seconds,
        1000 * decode_seconds / frames,
        ms_detect,
        track_ms(path, detector),
        ms_ocr,
        ms_ocr_frame,
        sorted(set(plates)),
        seed_plates,
    )


def render(rows: list[Row], detector: YoloDetector, engine: OcrEngine, seconds: float) -> str:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "# Performance",
        "",
        f"Measured by `bench/performance.py` on {platform.machine()}, "
        f"{os.cpu_count()} cores, detector on {detector.backend}, "
        f"OCR engine {engine.name}; inputs looped to at least {seconds:.0f} s. Peak RSS of "
        f"the whole run: {peak_mb:.0f} MB.",
        "",
        "| input | frames | decode only fps | replay fps | replay / decode | seed flow fps "
        "| replay / seed | ms decode | ms detect | ms track | ms OCR per track "
        "| ms OCR per frame (seed) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.frames} | {r.decode_fps:.0f} | {r.replay_fps:.1f} | "
            f"{r.replay_fps / r.decode_fps:.2f} | {r.seed_fps:.1f} | "
            f"{r.replay_fps / r.seed_fps:.2f}x | {r.ms_decode:.1f} | {r.ms_detect:.1f} | "
            f"{r.ms_track:.2f} | {r.ms_ocr_track:.1f} | {r.ms_ocr_frame:.1f} |"
        )
    lines += [
        "",
        "Plates read (streamer: one per event; seed flow: texts read on at least 3 frames):",
        "",
    ]
    for r in rows:
        lines.append(
            f"- {r.name}: streamer {', '.join(r.replay_plates) or '-'}; "
            f"seed flow {', '.join(r.seed_plates) or '-'}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    args = parser.parse_args()
    config = Config()
    detector = YoloDetector(config.model)
    engine = engine_named(config.reader.engine)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = [("demo", render_video(work / "demo.mp4").path, ["in_rto"])]
        if SHARED.is_dir():
            for video in sorted(SHARED.glob("*.mp4")):
                looped = loop_video(video, work / f"{video.stem}-looped.mp4", args.seconds)
                inputs.append((f"{video.stem} (looped)", looped, ["vn"]))
        for name, path, formats in inputs:
            print(f"measuring {name} ...", file=sys.stderr)
            rows.append(measure(name, path, work, detector, engine, formats))
    table = render(rows, detector, engine, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
