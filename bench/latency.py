"""How soon a vehicle is reported: from the first frame in which its plate is readable to
its early event, to the webhook receiver's 2xx, and to its final event.

Inputs, each replayed in real time (``realtime: true``: frames released at their media
time, as a camera sends them): the demo recording, a generated clip of a car that stops
20 s at the barrier, and the ``../shared/data`` videos with labelled plates.

*Readable*: the first frame, in media time, in which the detector's best box, cut and read
on its own, gives the vehicle's labelled plate (every frame detected and read once,
offline). The daemon runs in-process with a webhook receiver on localhost; a sink behind
the events log notes when each event has been logged, the receiver when each request
arrives (it answers 204 at once). Each input is replayed twice: with early events (the
default) and without (``events.early: false``, one event per vehicle when its track
ends, as before they existed).

    .venv/bin/python bench/latency.py [--out docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from streamer.config import Config, DetectionConfig, PlatesConfig, ReaderConfig
from streamer.evaluation.labels import video_labels
from streamer.events import Event, PlateEvent
from streamer.node import ServiceOptions
from streamer.reading.engines import engine_named
from streamer.reading.read import PlateReader
from streamer.service import Service
from streamer.sources.demo import DEMO_VEHICLES, DemoVehicle, render_video
from streamer.sources.files import FileSource
from streamer.sources.frame import Frame
from streamer.vision.detect import YoloDetector
from streamer.vision.hardware import this_machine
from streamer.vision.track import cut_crop
from streamer.vision.yolo import filter_detections

from common import ROOT, SHARED_VIDEOS, bench_config, write_section


@dataclass
class Receiver:
    """A webhook receiver in its own thread: when each (Idempotency-Key) arrived."""

    arrived: dict[str, float] = field(default_factory=dict)
    port: int = 0

    def start(self) -> Receiver:
        ready = threading.Event()

        async def handle(request: web.Request) -> web.Response:
            self.arrived.setdefault(request.headers["Idempotency-Key"], time.time())
            await request.read()
            return web.Response(status=204)

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/hook", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            ready.set()
            await asyncio.Event().wait()

        threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
        ready.wait(10)
        return self


@dataclass
class Logged:
    """A sink after the events log: when each plate event got there."""

    events: list[tuple[float, PlateEvent]] = field(default_factory=list)
    started: float | None = None  # wall time of media time 0

    def send(self, event: Event) -> None:
        if isinstance(event, PlateEvent):
            self.events.append((time.time(), event))

    def frame(self, frame: Frame) -> None:
        if self.started is None and frame.media_time_s is not None:
            self.started = frame.captured_at.timestamp() - frame.media_time_s


@dataclass(frozen=True)
class Vehicle:
    """One labelled vehicle of one replay: when it became readable and what came of it."""

    source: str
    plate: str
    readable_s: float | None
    early_s: float | None = None  # seconds after it was readable
    webhook_s: float | None = None
    final_s: float | None = None
    early_plate: str | None = None
    final_plate: str | None = None


def readable_times(
    video: Path, plates: list[str], detector: YoloDetector, formats: list[str]
) -> dict[str, float]:
    """The first media time at which each plate is read exactly from one frame's best box."""
    reader = PlateReader(engine_named("paddle"), ReaderConfig(), PlatesConfig(formats=formats))
    first: dict[str, float] = {}
    for frame in FileSource("readable", video).frames():
        found = filter_detections(detector.detect(frame.image), DetectionConfig())
        if len(found) == 0 or found.confidence is None:
            continue
        for box in found.xyxy[found.confidence.argsort()[::-1]]:
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            text = reader.read_crop(cut_crop(frame.image, (x1, y1, x2, y2))).text
            if text in plates and text not in first:
                first[text] = frame.media_time_s or 0.0
    return first


def replay(
    name: str,
    video: Path,
    plates: list[str],
    formats: list[str],
    detector: YoloDetector,
    early: bool,
    readable: dict[str, float],
    work: Path,
) -> list[Vehicle]:
    """The vehicles of one real-time replay, with their intervals."""
    receiver = Receiver().start()
    logged = Logged()
    config = bench_config(
        work,
        cameras=[{"name": "bench", "source": str(video), "realtime": True}],
        plates={"formats": formats},
        events={"early": early},
        webhooks=[{"url": f"http://127.0.0.1:{receiver.port}/hook"}],
        log_level="WARNING",
    )
    options = ServiceOptions(
        install_signal_handlers=False,
        detector=detector,
        extra_sinks=[logged],
        on_frame=logged.frame,
    )
    asyncio.run(Service(config, options).run())
    assert logged.started is not None
    vehicles = []
    for plate in plates:
        at = readable.get(plate)
        # The vehicle's events: those of the event_id whose final event is nearest its plate.
        finals = [(t, e) for t, e in logged.events if e.phase == "final"]
        final = next(((t, e) for t, e in finals if e.plate_number == plate), None)
        if final is None or at is None:
            vehicles.append(
                Vehicle(name, plate, at, final_plate=final[1].plate_number if final else None)
            )
            continue
        event_id = final[1].event_id
        earlies = [
            (t, e) for t, e in logged.events if e.event_id == event_id and e.phase == "early"
        ]
        first = earlies[0] if earlies else final
        key = f"{event_id}:{first[1].phase}"
        base = logged.started + at
        vehicles.append(
            Vehicle(
                name,
                plate,
                at,
                early_s=first[0] - base if earlies else None,
                webhook_s=receiver.arrived[key] - base if key in receiver.arrived else None,
                final_s=final[0] - base,
                early_plate=earlies[0][1].plate_number if earlies else None,
                final_plate=final[1].plate_number,
            )
        )
    return vehicles


def percentiles(values: list[float]) -> str:
    """``p50 / p95`` in seconds."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} / {values[0]:.2f}"
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    return f"{statistics.median(values):.2f} / {p95:.2f}"


def table(runs: dict[str, list[Vehicle]]) -> str:
    """The latency and accuracy table, one row per configuration and input, and all."""
    lines = [
        "| events | input | vehicles | readable → early event (p50 / p95 s) "
        "| readable → webhook 2xx | readable → final event | early exact | final exact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, vehicles in runs.items():
        sources = [*sorted({v.source for v in vehicles}), "all"]
        for source in sources:
            chosen = [v for v in vehicles if source in ("all", v.source)]
            first = [v.early_s for v in chosen if v.early_s is not None]
            hooked = [v.webhook_s for v in chosen if v.webhook_s is not None]
            final = [v.final_s for v in chosen if v.final_s is not None]
            early_exact = sum(v.early_plate == v.plate for v in chosen)
            final_exact = sum(v.final_plate == v.plate for v in chosen)
            early_cell = f"{early_exact} of {len(chosen)}" if label.startswith("early") else "-"
            lines.append(
                f"| {label} | {source} | {len(chosen)} | {percentiles(first)} | "
                f"{percentiles(hooked)} | {percentiles(final)} | {early_cell} | "
                f"{final_exact} of {len(chosen)} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    args = parser.parse_args()
    config = Config()
    detector = YoloDetector(config.model)
    runs: dict[str, list[Vehicle]] = {"early and final (default)": [], "final only (before)": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        barrier = DemoVehicle("MH12XY7395", 0.0, "")
        inputs = [
            (
                "demo",
                render_video(work / "demo.mp4").path,
                [v.plate for v in DEMO_VEHICLES],
                ["in_rto"],
            ),
            (
                "stop at the barrier",
                render_video(
                    work / "barrier.mp4",
                    (barrier,),
                    seconds_per_vehicle=3.0,
                    stop_seconds=20.0,
                    seed=3,
                ).path,
                [barrier.plate],
                ["in_rto"],
            ),
        ]
        if SHARED_VIDEOS.is_dir():
            for video, plates in video_labels(SHARED_VIDEOS / "events.csv").items():
                if plates:
                    inputs.append((video, SHARED_VIDEOS / video, plates, ["vn"]))
        for name, video, plates, formats in inputs:
            print(f"measuring {name} ...", file=sys.stderr)
            readable = readable_times(video, plates, detector, formats)
            for label, early in (
                ("early and final (default)", True),
                ("final only (before)", False),
            ):
                folder = work / f"{name}-{early}"
                runs[label] += replay(
                    name, video, plates, formats, detector, early, readable, folder
                )
    text = "\n".join(
        [
            "## Alert latency",
            "",
            f"Measured by `bench/latency.py` on **{this_machine().describe()}**, detector in "
            f"{detector.precision}. Real-time replays; seconds from the first frame in which "
            "the plate is readable on its own to the vehicle's first event in the events "
            "log (the early one, or the final one when it has none), to the webhook "
            "receiver's 2xx for it, and to its final event. Exact: vehicles whose early / "
            "final plate is the labelled one.",
            "",
            table(runs),
        ]
    )
    write_section(args.out, "latency", text)
    print(text)
    for label, vehicles in runs.items():
        worse = [v for v in vehicles if v.early_plate and v.early_plate != v.plate == v.final_plate]
        print(
            f"{label}: early read worse than final for {len(worse)} vehicle(s): {worse}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
