"""How many live 720p cameras one daemon holds on this machine.

Each camera is a ``realtime: true`` file source: the clip is released at its own 25
frames per second, as a camera would deliver it, and frames the daemon has no time for
are dropped. A number of cameras is *held* when the daemon still reads at least 95% of
the plates per camera that it reads with one camera, in the median of several runs (one
run on a shared machine is not a capacity). Each trial runs the real daemon in a fresh
process, so its CPU and peak RSS are its own.

Used by ``bench/performance.py``. On its own, it compares checkouts run by run (each
trial's ``streamer`` package is that checkout's, through ``PYTHONPATH``), in turns, so
other load falls on all alike; it prints a table and writes it to the ``capacity``
section of ``--out`` (such as ``docs/PERFORMANCE.md``):

    .venv/bin/python bench/capacity.py --cameras 12 16 --runs 3 --seconds 60 \
        [--baseline /tmp/streamer-base] [--out docs/PERFORMANCE.md]

One trial alone (what each child runs):

    .venv/bin/python bench/capacity.py --trial 8 --video clip.mp4 --plates 34A36837 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2

from streamer.node import ServiceOptions
from streamer.service import Service

from common import bench_config, describe, write_section

#: A number of cameras is held when each reads at least this share of the plates one
#: camera reads.
HELD = 0.95


@dataclass(frozen=True)
class Trial:
    """One run of the daemon with ``cameras`` live cameras on the same clip."""

    cameras: int
    seconds: float
    plates_read: int
    plates_per_camera: float
    frames: int
    detected: int
    dropped: int
    cpu_percent: float
    peak_rss_mb: float
    ms_detect: float
    #: How many runs this trial is the median of, and their lowest and highest plates
    #: per camera.
    runs: int = 1
    spread: tuple[float, float] = (0.0, 0.0)

    def held(self, single: Trial) -> bool:
        """Whether this many cameras read at least :data:`HELD` of one camera's plates."""
        return self.plates_per_camera >= HELD * single.plates_per_camera

    def plates_cell(self) -> str:
        """Plates per camera, with the runs' range where there were several."""
        low, high = self.spread
        if self.runs < 2 or low == high:
            return f"{self.plates_per_camera:.2f}"
        return f"{self.plates_per_camera:.2f} ({low:.2f} to {high:.2f})"


def median_of(trials: list[Trial]) -> Trial:
    """The median of several runs of one trial: the run in the middle by plates per
    camera (then by CPU), with the runs' spread."""
    ordered = sorted(trials, key=lambda t: (t.plates_per_camera, -t.cpu_percent))
    middle = ordered[(len(ordered) - 1) // 2]
    plates = [t.plates_per_camera for t in trials]
    return replace(middle, runs=len(trials), spread=(min(plates), max(plates)))


def resample(source: Path, target: Path, fps: float, seconds: float) -> Path:
    """``source`` at a constant ``fps``, looped to at least ``seconds``.

    Frames are chosen by their timestamps, so motion keeps its real speed whatever the
    source's (possibly variable) frame rate.
    """
    capture = cv2.VideoCapture(str(source))
    frames, times = [], []
    while capture.grab():
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
        frames.append(capture.retrieve()[1])
    capture.release()
    duration = times[-1] + (times[-1] - times[0]) / max(len(times) - 1, 1)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    source_index = 0
    for index in range(round(seconds * fps)):
        t = (index / fps) % duration
        if t < times[source_index]:
            source_index = 0
        while source_index + 1 < len(times) and times[source_index + 1] <= t:
            source_index += 1
        writer.write(frames[source_index])
    writer.release()
    return target


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``). Not ``ru_maxrss``: Linux carries
    that over from the parent across fork and exec, so a child would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_trial(video: Path, cameras: int, plates: list[str], formats: list[str]) -> Trial:
    """The daemon with ``cameras`` live cameras on ``video`` until the clip ends."""
    with tempfile.TemporaryDirectory(prefix="streamer-capacity-") as folder:
        config = bench_config(
            Path(folder),
            cameras=[
                {"name": f"cam-{n}", "source": str(video), "realtime": True} for n in range(cameras)
            ],
            plates={"formats": formats},
            # The clip loops every ~19 s: each pass of a vehicle is its own event.
            dedup={"window_s": 10.0},
            log_level="WARNING",
        )
        service = Service(config, ServiceOptions(install_signal_handlers=False))
        cpu = time.process_time()
        started = time.monotonic()
        stats = asyncio.run(service.run())
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu
        # Every camera's detection time (including any wait for a free inference).
        detect: Counter[str] = Counter()
        for metric in service.node.metrics.registry.collect():
            if metric.name == "streamer_detect_seconds":
                for sample in metric.samples:
                    detect[sample.name.rsplit("_", 1)[-1]] += sample.value
    read = sum(e.plate_number in plates for s in stats.values() for e in s.events_list)
    return Trial(
        cameras=cameras,
        seconds=round(seconds, 1),
        plates_read=read,
        plates_per_camera=read / cameras,
        frames=sum(s.frames for s in stats.values()),
        detected=sum(s.detected for s in stats.values()),
        dropped=sum(s.skipped for s in stats.values()),
        cpu_percent=round(100 * cpu / seconds, 1),
        peak_rss_mb=round(peak_rss_mb()),
        ms_detect=round(1000 * detect["sum"] / max(detect["count"], 1), 1),
    )


def trial_in_process(
    video: Path,
    cameras: int,
    plates: list[str],
    formats: list[str],
    checkout: Path | None = None,
) -> Trial:
    """:func:`run_trial` in a fresh Python process (clean RSS and caches), with
    ``checkout``'s ``streamer`` package (default: the one this process imports)."""
    command = [sys.executable, __file__, "--trial", str(cameras), "--video", str(video)]
    command += ["--plates", *plates, "--formats", *formats]
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    # A trial replays a clip of known length; far longer means the daemon hung.
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=900, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"capacity trial with {cameras} cameras failed:\n{done.stderr}")
    return Trial(**json.loads(done.stdout.strip().splitlines()[-1]))


def try_counts(
    video: Path, plates: list[str], formats: list[str], counts: list[int], runs: int = 1
) -> list[Trial]:
    """The median trial (by plates per camera, then CPU) of ``runs`` for one camera and
    each of ``counts`` cameras, each with the spread of its runs."""
    return [
        median_of([trial_in_process(video, n, plates, formats) for _ in range(runs)])
        for n in sorted({1, *counts})
    ]


def find_capacity(
    video: Path, plates: list[str], formats: list[str], most: int = 32, runs: int = 1
) -> list[Trial]:
    """Trials for 1, 2, 4, 8 ... cameras until one is not held, then a bisection between
    the last held and the first not held; each the median of ``runs`` runs. The capacity
    is the largest held count."""
    single = try_counts(video, plates, formats, [], runs)[0]
    trials = {1: single}
    print(f"  1 camera: {single.plates_read} plates", file=sys.stderr)

    def held(cameras: int) -> bool:
        trial = trials.get(cameras) or try_counts(video, plates, formats, [cameras], runs)[-1]
        trials[cameras] = trial
        print(
            f"  {cameras} cameras: {trial.plates_cell()} plates per camera, "
            f"{trial.cpu_percent:.0f}% CPU, {trial.peak_rss_mb:.0f} MB",
            file=sys.stderr,
        )
        return trial.held(single)

    good, bad = 1, None
    cameras = 2
    while cameras <= most:
        if not held(cameras):
            bad = cameras
            break
        good, cameras = cameras, cameras * 2
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if held(middle) else (good, middle)
    return [trials[n] for n in sorted(trials)]


def capacity(trials: list[Trial]) -> int:
    """The largest number of cameras held (see :meth:`Trial.held`)."""
    single = trials[0]
    return max(t.cameras for t in trials if t.held(single))


def compare(
    checkouts: dict[str, Path | None],
    video: Path,
    plates: list[str],
    counts: list[int],
    runs: int,
) -> dict[str, list[Trial]]:
    """Each checkout's median trial for one camera and each of ``counts``: the checkouts
    take turns for every run of every count (the order rotating), so that other load on
    the machine falls on all of them alike."""
    measured: dict[str, dict[int, list[Trial]]] = {name: {} for name in checkouts}
    names = list(checkouts)
    turn = 0
    for cameras in sorted({1, *counts}):
        for _ in range(runs):
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                trial = trial_in_process(video, cameras, plates, FORMATS, checkouts[name])
                measured[name].setdefault(cameras, []).append(trial)
                print(
                    f"  {name}, {cameras} cameras: {trial.plates_per_camera:.2f} plates per "
                    f"camera, {trial.cpu_percent:.0f}% CPU, {trial.peak_rss_mb:.0f} MB",
                    file=sys.stderr,
                )
            turn += 1
    return {
        name: [median_of(trials) for _, trials in sorted(by_count.items())]
        for name, by_count in measured.items()
    }


def trials_table(trials: list[Trial]) -> list[str]:
    """The markdown rows of one checkout's trials (the first: one camera)."""
    lines = [
        "| cameras | runs | plates read per camera (median, range) | held | frames dropped "
        "| frames detected | ms per detection | CPU | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        lines.append(
            f"| {t.cameras} | {t.runs} | {t.plates_cell()} | "
            f"{'yes' if t.held(trials[0]) else 'no'} | "
            f"{100 * t.dropped / max(t.frames, 1):.1f}% | "
            f"{100 * t.detected / max(t.frames, 1):.0f}% | {t.ms_detect:.1f} | "
            f"{t.cpu_percent:.0f}% | {t.peak_rss_mb:.0f} MB |"
        )
    return lines


#: The plate formats of the clip's plates (Vietnamese).
FORMATS = ["vn"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial", type=int, help="one trial with this many cameras (a child)")
    parser.add_argument("--video", type=Path)
    parser.add_argument("--plates", nargs="+", help="the clip's plates")
    parser.add_argument("--formats", nargs="+", default=FORMATS)
    parser.add_argument("--cameras", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--runs", type=int, default=3, help="runs of each count")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each trial")
    parser.add_argument("--baseline", type=Path, help="a checkout to compare with")
    parser.add_argument("--out", type=Path, help="write the table to this page's capacity section")
    args = parser.parse_args()
    if args.trial is not None:
        trial = run_trial(args.video, args.trial, args.plates, args.formats)
        print(json.dumps(asdict(trial)))
        return 0
    from streamer.evaluation.labels import video_labels
    from streamer.vision.hardware import this_machine

    from common import ROOT, SHARED_VIDEOS

    parkpow = SHARED_VIDEOS / "parkpow_cars.mp4"
    if not parkpow.is_file():
        print(f"skipped: {parkpow} is absent", file=sys.stderr)
        return 0
    plates = video_labels(SHARED_VIDEOS / "events.csv")[parkpow.name]
    checkouts: dict[str, Path | None] = {}
    if args.baseline is not None:
        checkouts[f"baseline ({describe(args.baseline)})"] = args.baseline
    checkouts[f"this checkout ({describe(ROOT)})"] = ROOT
    with tempfile.TemporaryDirectory() as work:
        clip = resample(parkpow, Path(work) / "parkpow-25fps.mp4", 25.0, args.seconds)
        results = compare(checkouts, clip, plates, args.cameras, args.runs)
    lines = [
        "## Live cameras, checkouts compared",
        "",
        f"Measured by `bench/capacity.py` on **{this_machine().describe()}**: each camera "
        f"replays the parkpow clip at 25 fps in real time for {args.seconds:.0f} s; "
        f"{args.runs} runs of each count, the checkouts taking turns. Held: the median "
        f"run reads at least {HELD:.0%} of the plates per camera one camera reads.",
    ]
    for name, trials in results.items():
        lines += ["", f"### {name}: capacity {capacity(trials)} cameras", "", *trials_table(trials)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        write_section(args.out, "capacity", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
