"""Replay throughput of checkouts of streamer against a baseline, interleaved in one run.

Each round replays the same input once per checkout, in turn, the order rotating from
round to round, so that other load on a shared machine falls on all alike. Each replay
runs in a child process whose ``streamer`` package is that checkout's (``PYTHONPATH``),
with this environment's packages and model cache, and the settings of ``streamer
replay`` in ``bench/performance.py`` (defaults, ``plates.formats: [vn]``); frames per
second are over the service's processing time (model loading excluded). Prints frames
per second and CPU milliseconds per frame (less moved by other load than wall time) per
round, the median ratio of each checkout to the baseline, and the plates each replay read
(one per final event) against the video's labels.

The input is ``../shared/data/videos/parkpow_cars.mp4`` (or ``--video``) looped to at
least ``--seconds``, its own stream repeated, as ``bench/performance.py`` loops it. A
baseline checkout is made with ``git worktree add /tmp/streamer-base <commit>``.

    .venv/bin/python bench/replay_compare.py --baseline /tmp/streamer-base \\
        [--head PATH ...] [--rounds 3] [--seconds 60] [--out replay.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, SHARED_VIDEOS, bench_config, describe

#: The plate formats ``bench/performance.py`` reads its recorded videos with.
FORMATS = ["vn"]


@dataclass(frozen=True)
class Replay:
    """One replay by one checkout."""

    frames: int
    detected: int
    seconds: float
    cpu_seconds: float
    plates: list[str]
    precision: str
    package: str

    @property
    def fps(self) -> float:
        """Frames per second of processing time."""
        return self.frames / self.seconds

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds (every thread of the process) per frame."""
        return 1000 * self.cpu_seconds / self.frames


def replay_here(video: Path, work: Path) -> Replay:
    """Replay ``video`` with the ``streamer`` this process imports (the child's side)."""
    import asyncio

    import streamer
    from streamer.config import Config
    from streamer.service import Service
    from streamer.vision.detect import YoloDetector

    try:
        from streamer.node import ServiceOptions
    except ImportError:  # a checkout from before the composition root
        from streamer.service import ServiceOptions  # type: ignore[attr-defined,no-redef]

    defaults = Config()
    detector = YoloDetector(defaults.model)
    try:
        from streamer.reading.engines import engine_named

        engine = engine_named(defaults.reader.engine, formats=FORMATS)
    except ImportError:  # a checkout from before the plate recogniser: PP-OCRv4 only
        from streamer.reading.ocr import engine_named

        engine = engine_named(defaults.reader.engine)
    config = bench_config(
        work, cameras=[{"name": "bench", "source": str(video)}], plates={"formats": FORMATS}
    )
    service = Service(
        config, ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    )
    cpu_before = time.process_time()
    stats = asyncio.run(service.run())["bench"]
    cpu_seconds = time.process_time() - cpu_before
    return Replay(
        stats.frames,
        stats.detected,
        service.processing_seconds,
        cpu_seconds,
        [event.plate_number for event in stats.events_list],
        detector.precision,
        str(Path(streamer.__file__).parent),
    )


def replay_in(checkout: Path, video: Path, work: Path) -> Replay:
    """Replay ``video`` in a child process running ``checkout``'s streamer."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, __file__, "--replay-here", str(video), str(work)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"replay in {checkout} failed:\n{result.stderr[-2000:]}")
    replay = Replay(**json.loads(result.stdout.splitlines()[-1]))
    if Path(replay.package) != checkout.resolve() / "streamer":
        raise SystemExit(f"{checkout}: the child imported streamer from {replay.package}")
    return replay


def table(
    names: list[str],
    runs: dict[str, list[Replay]],
    labels: list[str],
    video: Path,
    seconds: float,
) -> str:
    """The markdown report: one row per checkout and round, then the median ratios."""
    from streamer.vision.hardware import this_machine

    baseline = names[0]
    rounds = len(runs[baseline])
    lines = [
        "## Replay throughput against a baseline",
        "",
        f"Measured by `bench/replay_compare.py` on **{this_machine().describe()}**: "
        f"{video.name} looped to at least {seconds:.0f} s, {rounds} rounds, the checkouts "
        "taking turns in each (order rotating); frames per second of processing time, and "
        "CPU milliseconds per frame (every thread of the replaying process: less moved by "
        "other load on the machine than wall time); detector in "
        f"{runs[baseline][0].precision}. Ratios are to the baseline's figure of the same "
        f"round, above 1 better. Labelled plates: {', '.join(labels) or '-'}.",
        "",
        "| checkout | round | frames | detected | frames/s | vs baseline | CPU ms per frame "
        "| vs baseline | plates read (final events) | labelled plates read |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for index, (run, base) in enumerate(zip(runs[name], runs[baseline], strict=True)):
            exact = sum(plate in run.plates for plate in labels)
            lines.append(
                f"| {name} | {index + 1} | {run.frames} | {run.detected} | {run.fps:.1f} "
                f"| {run.fps / base.fps:.3f} | {run.cpu_ms:.2f} | {base.cpu_ms / run.cpu_ms:.3f} "
                f"| {', '.join(run.plates) or '-'} | {exact} of {len(labels)} |"
            )
    lines += [
        "",
        "| checkout | median frames/s | median ratio (frames/s) | median CPU ms per frame "
        "| median ratio (CPU) |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        pairs = list(zip(runs[name], runs[baseline], strict=True))
        fps = statistics.median(run.fps for run in runs[name])
        cpu = statistics.median(run.cpu_ms for run in runs[name])
        fps_ratio = statistics.median(run.fps / base.fps for run, base in pairs)
        cpu_ratio = statistics.median(base.cpu_ms / run.cpu_ms for run, base in pairs)
        lines.append(f"| {name} | {fps:.1f} | {fps_ratio:.3f} | {cpu:.2f} | {cpu_ratio:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    if sys.argv[1:2] == ["--replay-here"]:  # the child: see replay_in()
        video, work = (Path(arg) for arg in sys.argv[2:4])
        print(json.dumps(replay_here(video, work).__dict__))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="checkout to compare with")
    parser.add_argument(
        "--head", type=Path, nargs="+", default=[ROOT], help="checkouts measured (default: this)"
    )
    parser.add_argument("--video", type=Path, default=SHARED_VIDEOS / "parkpow_cars.mp4")
    parser.add_argument("--seconds", type=float, default=60.0, help="loop the video to this long")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    from performance import loop_video

    from streamer.evaluation.labels import video_labels

    checkouts = [args.baseline, *args.head]
    names = [f"baseline {describe(args.baseline)}"]
    names += [f"{describe(path)} ({path})" for path in args.head]
    labels_csv = args.video.parent / "events.csv"
    labels = video_labels(labels_csv).get(args.video.name, []) if labels_csv.is_file() else []
    runs: dict[str, list[Replay]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as scratch:
        work = Path(scratch)
        video = loop_video(args.video, work / f"{args.video.stem}-looped.mp4", args.seconds)
        order = list(range(len(checkouts)))
        for index in range(args.rounds):
            shift = index % len(checkouts)
            for position in order[shift:] + order[:shift]:
                name = names[position]
                run = replay_in(checkouts[position], video, work / f"{index}-{position}")
                runs[name].append(run)
                print(
                    f"round {index + 1} {name}: {run.fps:.1f} fps, {run.cpu_ms:.2f} CPU ms "
                    f"a frame, {run.plates}",
                    file=sys.stderr,
                )
    text = table(names, runs, labels, args.video, args.seconds)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
