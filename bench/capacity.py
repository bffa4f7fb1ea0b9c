"""How many live 720p cameras one daemon holds on this machine.

Each camera is a ``realtime: true`` file source: the clip is released at its own 25
frames per second, as a camera would deliver it, and frames the daemon has no time for
are dropped. A number of cameras is *held* when the daemon still reads at least 95% of
the plates per camera that it reads with one camera. Each trial runs the real daemon in
a fresh process, so its CPU and peak RSS are its own.

Used by ``bench/performance.py``; one trial alone:

    .venv/bin/python bench/capacity.py --trial 8 --video clip.mp4 --plates 34A36837 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from streamer.node import ServiceOptions
from streamer.service import Service

from common import bench_config

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

    def held(self, single: Trial) -> bool:
        """Whether this many cameras read at least :data:`HELD` of one camera's plates."""
        return self.plates_per_camera >= HELD * single.plates_per_camera


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


def trial_in_process(video: Path, cameras: int, plates: list[str], formats: list[str]) -> Trial:
    """:func:`run_trial` in a fresh Python process (clean RSS and caches)."""
    command = [sys.executable, __file__, "--trial", str(cameras), "--video", str(video)]
    command += ["--plates", *plates, "--formats", *formats]
    # A trial replays a clip of known length; far longer means the daemon hung.
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"capacity trial with {cameras} cameras failed:\n{done.stderr}")
    return Trial(**json.loads(done.stdout.strip().splitlines()[-1]))


def try_counts(
    video: Path, plates: list[str], formats: list[str], counts: list[int]
) -> list[Trial]:
    """Trials for one camera and each of ``counts`` cameras."""
    return [trial_in_process(video, n, plates, formats) for n in sorted({1, *counts})]


def find_capacity(
    video: Path, plates: list[str], formats: list[str], most: int = 32
) -> list[Trial]:
    """Trials for 1, 2, 4, 8 ... cameras until one is not held, then a bisection between
    the last held and the first not held. The capacity is the largest held count."""
    single = trial_in_process(video, 1, plates, formats)
    trials = {1: single}
    print(f"  1 camera: {single.plates_read} plates", file=sys.stderr)

    def held(cameras: int) -> bool:
        trial = trials.get(cameras) or trial_in_process(video, cameras, plates, formats)
        trials[cameras] = trial
        print(
            f"  {cameras} cameras: {trial.plates_per_camera:.2f} plates per camera, "
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial", type=int, required=True, help="number of cameras")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--plates", nargs="+", required=True, help="the clip's plates")
    parser.add_argument("--formats", nargs="+", default=["vn"])
    args = parser.parse_args()
    trial = run_trial(args.video, args.trial, args.plates, args.formats)
    print(json.dumps(asdict(trial)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
