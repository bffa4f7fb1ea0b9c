"""Throughput against the decode limit, and against the seed's every-frame flow.

For each input, in one run on the same file:

- decode only: OpenCV's read loop, the ceiling nothing downstream can beat;
- ``streamer replay``: the pipeline in-process (detect, track, read the best crops once
  per track) with the default settings, frames per second and its ratio to the ceiling;
- the same without the speed-ups (every frame detected, no motion gate), to show that
  they read the same plates;
- the seed's flow: detection and OCR on every frame, as its per-image services did
  (in-process, no HTTP), with its own stack (ultralytics' YOLO on torch, the ``tesseract``
  command through pytesseract), on one pass of the video, and streamer's speed-up over it;
- the same flow with streamer's components (the OpenVINO detector compiled for one waiting
  caller, its fastest that way, and the PP-OCRv4 engine), which isolates what tracking
  and the detection rate gain;
- milliseconds per stage (decode, detect, track, OCR) and the plates each flow read;
- capacity (``bench/capacity.py``): how many live 720p cameras at 25 fps one daemon holds
  at 95% of the plates one camera reads, with its CPU and peak RSS.

Inputs: ``../shared/data/videos/*`` looped to at least a minute (when present; their own
H.264 stream repeated, or re-encoded as MPEG-4 with ``--reencode``), and the demo
recording. Writes markdown tables to ``docs/PERFORMANCE.md`` (or ``--out``) and prints
them. Not a test: timings on shared machines are noisy; compare ratios in one run.

    .venv/bin/python bench/performance.py [--seconds 60] [--no-capacity] [--reencode]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.config import (
    Config,
    DetectionConfig,
    ModelConfig,
    PlatesConfig,
    ReaderConfig,
)
from streamer.evaluation.labels import video_labels
from streamer.node import ServiceOptions
from streamer.reading.engines import engine_named
from streamer.reading.ocr import OcrEngine, TesseractEngine
from streamer.reading.read import PlateReader
from streamer.service import Service
from streamer.sources.demo import render_video
from streamer.sources.files import FileSource
from streamer.vision.detect import Detector, YoloDetector
from streamer.vision.export import ensure_int8_export, ensure_openvino_export, export_python
from streamer.vision.hardware import this_machine
from streamer.vision.track import PlateTracker, cut_crop
from streamer.vision.yolo import OpenVinoYolo, filter_detections

from capacity import HELD, Trial, capacity, find_capacity, resample, trials_table, try_counts
from common import ROOT, SHARED_VIDEOS, bench_config, write_section

#: The settings that turn the speed-ups off: every frame detected, no motion gate.
EVERY_FRAME: dict[str, object] = {"rate_fps": 0, "motion_gate": False}


@dataclass(frozen=True)
class Flow:
    """Detection and OCR on every frame: frames, seconds, ms of OCR per frame with a plate,
    and the plates read (texts read on at least 3 frames)."""

    frames: int
    seconds: float
    ms_ocr_frame: float
    plates: list[str]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


@dataclass(frozen=True)
class Row:
    """The figures of one input."""

    name: str
    frames: int
    decode_fps: float
    replay_fps: float
    detected: int
    every_frame_fps: float
    seed: Flow
    flow: Flow
    ms_decode: float
    ms_detect: float
    ms_track: float
    ms_ocr_track: float
    replay_plates: list[str]
    every_frame_plates: list[str]


def loop_video(source: Path, target: Path, seconds: float) -> Path:
    """``source`` repeated until it lasts at least ``seconds``.

    Its compressed stream is copied, not re-encoded, so decoding the loop costs what
    decoding the original does (an MPEG-4 re-encode of the parkpow clip decodes 40% faster
    than its H.264, which would move the ceiling every ratio is taken against).
    """
    import av

    with av.open(str(source)) as original:
        stream = original.streams.video[0]
        stamps = sorted(p.dts for p in original.demux(stream) if p.dts is not None)
        time_base = stream.time_base
    step = int(np.median(np.diff(stamps))) if len(stamps) > 1 else 1
    span = stamps[-1] - stamps[0] + step  # one pass, in the stream's time base
    loops = max(1, math.ceil(seconds / float(span * time_base)))
    with av.open(str(target), "w") as output:
        copy = None
        for loop in range(loops):
            with av.open(str(source)) as original:
                stream = original.streams.video[0]
                copy = copy or output.add_stream_from_template(stream)
                for packet in original.demux(stream):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.dts += loop * span
                    if packet.pts is not None:
                        packet.pts += loop * span
                    packet.stream = copy
                    output.mux(packet)
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


@dataclass(frozen=True)
class Replay:
    """The figures of one replay of an input."""

    frames: int
    detected: int
    seconds: float
    ms_detect: float
    ms_ocr: float
    plates: list[str]


def replay(
    path: Path,
    work: Path,
    detector: YoloDetector,
    engine: OcrEngine,
    formats: list[str],
    detection: dict[str, object] | None = None,
) -> Replay:
    """streamer's pipeline on ``path``, with the default detection settings or ``detection``."""
    config = bench_config(
        work,
        cameras=[{"name": "bench", "source": str(path)}],
        plates={"formats": formats},
        detection=detection or {},
    )
    service = Service(
        config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    )
    stats = asyncio.run(service.run())["bench"]
    registry = service.node.metrics.registry

    def mean_ms(metric: str) -> float:
        labels = {"camera": "bench"}
        count = registry.get_sample_value(f"{metric}_count", labels) or 0.0
        total = registry.get_sample_value(f"{metric}_sum", labels) or 0.0
        return 1000 * total / count if count else 0.0

    return Replay(
        stats.frames,
        stats.detected,
        service.processing_seconds,
        mean_ms("streamer_detect_seconds"),
        mean_ms("streamer_ocr_seconds"),
        sorted({event.plate_number for event in stats.events_list}),
    )


def fast_detector(detector: YoloDetector) -> Detector:
    """The every-frame flow's detector: on OpenVINO, compiled for latency (one frame over
    every core), which suits a caller that waits for each frame better than streamer's
    one-stream-per-core compilation; the same weights, model and precision."""
    if detector.backend != "openvino":
        return detector
    size = detector.config.image_size
    if detector.precision == "int8":
        return OpenVinoYolo(ensure_int8_export(detector.weights, size), size, "f32", latency=True)
    export = ensure_openvino_export(detector.weights, size)
    return OpenVinoYolo(export, size, detector.precision, latency=True)


def seed_flow(path: Path, formats: list[str], limit: int) -> Flow:
    """The seed's every-frame flow on its own stack (ultralytics' YOLO on torch, the
    ``tesseract`` command), run in the model export environment, which has torch."""
    command = [str(export_python()), __file__, "--seed-flow", str(path), str(limit), *formats]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return Flow(**json.loads(result.stdout.splitlines()[-1]))


def every_frame_flow(
    path: Path, detector: Detector, engine: OcrEngine, formats: list[str], limit: int | None
) -> Flow:
    """Detection and OCR of the best box on every frame (the first ``limit``), as the
    seed's chained per-image services did."""
    reader = PlateReader(engine, ReaderConfig(), PlatesConfig(formats=formats))
    reads: Counter[str] = Counter()
    ocr_seconds = 0.0
    ocr_frames = 0
    started = time.perf_counter()
    frames = 0
    for frame in FileSource("seed", path).frames():
        frames += 1
        detections = filter_detections(detector.detect(frame.image), DetectionConfig())
        if len(detections) and detections.confidence is not None:
            best = int(detections.confidence.argmax())
            x1, y1, x2, y2 = (round(float(v)) for v in detections.xyxy[best])
            ocr_started = time.perf_counter()
            text = reader.read_crop(cut_crop(frame.image, (x1, y1, x2, y2))).text
            ocr_seconds += time.perf_counter() - ocr_started
            ocr_frames += 1
            if text:
                reads[text] += 1
        if frames == limit:
            break
    seconds = time.perf_counter() - started
    plates = sorted(plate for plate, count in reads.items() if count >= 3)
    return Flow(frames, seconds, 1000 * ocr_seconds / max(ocr_frames, 1), plates)


def track_ms(path: Path, detector: YoloDetector, limit: int = 300) -> float:
    """Mean milliseconds of one tracker update, on the real detections of ``path``."""
    tracker = PlateTracker("bench", Config().tracker)
    frames = []
    for frame in FileSource("bench", path).frames():
        frames.append((frame, filter_detections(detector.detect(frame.image), DetectionConfig())))
        if len(frames) >= limit:
            break
    started = time.perf_counter()
    for frame, detections in frames:
        tracker.update(frame, detections)
    tracker.finish_all()
    return 1000 * (time.perf_counter() - started) / len(frames)


def measure(
    name: str,
    path: Path,
    one_pass: int,
    work: Path,
    detector: YoloDetector,
    engine: OcrEngine,
    formats: list[str],
) -> Row:
    """Every figure of one input; the seed's own stack, being slow, reads its first
    ``one_pass`` frames (one pass of a looped video)."""
    frames, decode_seconds = decode_only(path)
    fast = replay(path, work / name, detector, engine, formats)
    every = replay(path, work / f"{name}-every", detector, engine, formats, EVERY_FRAME)
    flow = every_frame_flow(path, fast_detector(detector), engine, formats, None)
    seed = seed_flow(path, formats, one_pass)
    return Row(
        name,
        frames,
        frames / decode_seconds,
        fast.frames / fast.seconds,
        fast.detected,
        every.frames / every.seconds,
        seed,
        flow,
        1000 * decode_seconds / frames,
        every.ms_detect,
        track_ms(path, detector),
        fast.ms_ocr,
        fast.plates,
        every.plates,
    )


def render(
    rows: list[Row],
    trials: list[Trial],
    detector: YoloDetector,
    engine: OcrEngine,
    seconds: float,
) -> str:
    machine = this_machine()
    amx = (
        "This CPU has AMX: bfloat16 is its fast path, and the figures would be slower without it."
        if machine.has_amx
        else "This CPU has no AMX: on one with AMX, bfloat16 is faster still."
    )
    lines = [
        "## Throughput and capacity",
        "",
        f"Measured by `bench/performance.py` on **{machine.describe()}**; detector on "
        f"{detector.backend} in **{detector.precision}** ({precision_reason(detector)}), OCR "
        f"engine {engine.name}; inputs looped to at least {seconds:.0f} s (their own "
        "compressed stream repeated, unless marked MPEG-4: re-encoded). One run: compare "
        f"the ratios, not the absolute figures. {amx}",
        "",
        "### Detector precision on this machine",
        "",
        "From `streamer model info` (ms per frame with every inference stream busy, on "
        "held-out rendered frames; IoU against float32's boxes):",
        "",
        detector.choice.table() if detector.choice else "(pinned by the config: not measured)",
        "",
        "### Throughput on recorded video",
        "",
        "`replay` is `streamer replay` with the default settings (detection at "
        f"{DetectionConfig().rate_fps:g} frames per second of video, motion gate on); "
        "*every frame* is the same pipeline with `detection: {rate_fps: 0, motion_gate: "
        "false}`. The *seed flow* detects and reads every frame as the seed's per-image "
        "services did (in-process, no HTTP), with the seed's own stack: ultralytics' YOLO "
        "on torch and the `tesseract` command through pytesseract, on one pass of the "
        "video. *Detect + OCR every frame* is that flow with streamer's components (the "
        "OpenVINO model, compiled for one caller that waits for each frame, its fastest "
        "that way, and the PP-OCRv4 engine), on the whole input: it shows what the "
        "tracking and the detection rate gain by themselves.",
        "",
        "| input | frames | decode only fps | replay fps | replay / decode | frames detected "
        "| every frame fps | seed flow fps | replay / seed | detect + OCR every frame fps "
        "| replay / that | ms decode | ms detect | ms track | ms OCR per track "
        "| ms OCR per frame (seed / streamer's) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.frames} | {r.decode_fps:.0f} | {r.replay_fps:.1f} | "
            f"{r.replay_fps / r.decode_fps:.2f} | {100 * r.detected / r.frames:.0f}% | "
            f"{r.every_frame_fps:.1f} | {r.seed.fps:.1f} | {r.replay_fps / r.seed.fps:.1f}x | "
            f"{r.flow.fps:.1f} | {r.replay_fps / r.flow.fps:.1f}x | "
            f"{r.ms_decode:.1f} | {r.ms_detect:.1f} | {r.ms_track:.2f} | {r.ms_ocr_track:.1f} | "
            f"{r.seed.ms_ocr_frame:.1f} / {r.flow.ms_ocr_frame:.1f} |"
        )
    lines += [
        "",
        "Plates read (replay and every frame: one per event; the two every-frame flows: "
        "texts read on at least 3 frames):",
        "",
    ]
    for r in rows:
        same = "same as replay" if r.every_frame_plates == r.replay_plates else None
        lines.append(
            f"- {r.name}: replay {', '.join(r.replay_plates) or '-'}; every frame "
            f"{same or ', '.join(r.every_frame_plates) or '-'}; "
            f"seed flow ({r.seed.frames} frames) {', '.join(r.seed.plates) or '-'}; "
            f"detect + OCR every frame {', '.join(r.flow.plates) or '-'}"
        )
    if trials:
        lines += [
            "",
            "### Live cameras",
            "",
            f"Each camera replays the same 1280x720 clip at 25 fps in real time "
            f"(`realtime: true`), {trials[0].seconds:.0f} s; frames the daemon has no time "
            f"for are dropped, as with a live camera. Each count is run {trials[0].runs} "
            "times; the table shows the median run and the range of plates read. Held: in "
            f"the median run each camera reads at least {HELD:.0%} of the plates one "
            f"camera reads. Capacity: **{capacity(trials)} "
            "cameras**. CPU is the daemon's process time over the wall time (200% = both "
            "cores); RSS is the peak of that daemon's own process.",
            "",
            *trials_table(trials),
        ]
    return "\n".join(lines) + "\n"


def precision_reason(detector: YoloDetector) -> str:
    """Why the detector runs in its precision."""
    return detector.choice.reason if detector.choice else "pinned by model.precision"


def main() -> int:
    if sys.argv[1:2] == ["--seed-flow"]:  # in the export environment: see seed_flow()
        path, limit, *formats = sys.argv[2:]
        flow = every_frame_flow(
            Path(path),
            YoloDetector(ModelConfig(backend="torch")),
            TesseractEngine(in_process=False),
            formats,
            int(limit),
        )
        print(json.dumps(asdict(flow)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="loop inputs to this long")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    parser.add_argument("--no-capacity", action="store_true", help="skip the camera search")
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="loop the recorded videos by re-encoding them as MPEG-4, not by copying their "
        "own stream (cheaper to decode than the original H.264)",
    )
    parser.add_argument("--most", type=int, default=32, help="most cameras tried")
    parser.add_argument("--runs", type=int, default=3, help="runs of each number of cameras")
    parser.add_argument(
        "--cameras", type=int, nargs="+", help="try these numbers of cameras instead of searching"
    )
    args = parser.parse_args()
    config = Config()
    detector = YoloDetector(config.model)
    engine = engine_named(config.reader.engine, formats=config.cameras[0].plates.formats)
    rows = []
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo = render_video(work / "demo.mp4").path
        inputs = [("demo", demo, decode_only(demo)[0], ["in_rto"])]
        if SHARED_VIDEOS.is_dir():
            for video in sorted(SHARED_VIDEOS.glob("*.mp4")):
                target = work / f"{video.stem}-looped.mp4"
                if args.reencode:
                    rate = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
                    looped = resample(video, target, rate, args.seconds)
                    name = f"{video.stem} (looped, MPEG-4)"
                else:
                    looped = loop_video(video, target, args.seconds)
                    name = f"{video.stem} (looped)"
                inputs.append((name, looped, decode_only(video)[0], ["vn"]))
        for name, path, one_pass, formats in inputs:
            print(f"measuring {name} ...", file=sys.stderr)
            rows.append(measure(name, path, one_pass, work, detector, engine, formats))
        parkpow = SHARED_VIDEOS / "parkpow_cars.mp4"
        if not args.no_capacity and parkpow.is_file():
            print("searching for the number of live cameras held ...", file=sys.stderr)
            clip = resample(parkpow, work / "parkpow-25fps.mp4", 25.0, args.seconds)
            plates = video_labels(SHARED_VIDEOS / "events.csv")[parkpow.name]
            if args.cameras:
                trials = try_counts(clip, plates, ["vn"], args.cameras, args.runs)
            else:
                trials = find_capacity(clip, plates, ["vn"], args.most, args.runs)
    table = render(rows, trials, detector, engine, args.seconds)
    write_section(args.out, "performance", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
