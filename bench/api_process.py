"""Latency and throughput of ``POST /process`` at several client concurrencies.

Starts ``streamer serve`` in-process on a free port, sends a frame of the demo recording
(the second vehicle close to the camera) from N concurrent clients, and prints a markdown
table (and writes it to ``--out`` when given). Not a test: timings on shared machines are
noisy, so compare rows of one run.

    .venv/bin/python bench/api_process.py --requests 200 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import cv2

from streamer.config import Config
from streamer.node import ServiceOptions
from streamer.reading.engines import engine_named
from streamer.sources.demo import render_video
from streamer.threaded import ServiceThread
from streamer.vision.detect import YoloDetector

from common import bench_config, frame_at


async def measure(
    url: str, image: bytes, requests: int, concurrency: int
) -> tuple[list[float], float, int]:
    """Latencies (s), wall time (s) and correct answers of ``requests`` POSTs."""
    latencies: list[float] = []
    plates: list[str | None] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            queue.get_nowait()
            form = aiohttp.FormData()
            form.add_field("file", image, filename="frame.png", content_type="image/png")
            started = time.perf_counter()
            async with session.post(f"{url}/process", data=form) as response:
                body = await response.json()
            latencies.append(time.perf_counter() - started)
            plates.append(body.get("plate_number"))

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, len([p for p in plates if p])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo = render_video(work / "demo.mp4")
        _, last = demo.appearances[1]
        ok, png = cv2.imencode(".png", frame_at(demo.path, last - 0.3))
        assert ok
        config = bench_config(work, http={"enabled": True, "port": 0})
        defaults = Config()
        detector = YoloDetector(defaults.model)
        engine = engine_named(defaults.reader.engine, formats=defaults.cameras[0].plates.formats)
        rows = []
        options = ServiceOptions(detector=detector, engine=engine, serve_only=True)
        with ServiceThread(config, options) as server:
            asyncio.run(measure(server.url, png.tobytes(), 5, 1))  # warm-up
            for concurrency in args.concurrency:
                latencies, wall, correct = asyncio.run(
                    measure(server.url, png.tobytes(), args.requests, concurrency)
                )
                p95 = statistics.quantiles(latencies, n=20)[18]
                rows.append(
                    f"| {concurrency} | {args.requests} | "
                    f"{statistics.median(latencies) * 1000:.1f} | {p95 * 1000:.1f} | "
                    f"{args.requests / wall:.1f} | {correct}/{args.requests} |"
                )
    table = "\n".join(
        [
            f"`POST /process`, 1280x720 PNG, detector on {detector.backend}",
            "",
            "| clients | requests | median ms | p95 ms | requests/s | plates read |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
