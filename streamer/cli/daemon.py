"""The commands that run the pipeline: run, serve, replay, process, demo, check-config."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from streamer.cameras import CameraStats
from streamer.cli.common import EXIT_FAILED, EXIT_OK, fail, load
from streamer.cluster.deployment import open_deployment
from streamer.config import Action, Config, mask_url
from streamer.delivery.sinks import ConsoleSink
from streamer.node import ServiceOptions, build_stills, open_stores
from streamer.service import Service
from streamer.sources.frame import Frame


def summary(stats: dict[str, CameraStats], seconds: float) -> str:
    frames = sum(s.frames for s in stats.values())
    events = sum(s.events for s in stats.values())
    fps = frames / seconds if seconds > 0 else 0.0
    detected = sum(s.detected for s in stats.values())
    return (
        f"{frames} frames in {seconds:.1f} s ({fps:.1f} frames/s), {events} events, "
        f"{detected} frames detected, "
        f"{sum(s.merged for s in stats.values())} merged repeats, "
        f"{sum(s.unread for s in stats.values())} unreadable tracks"
    )


class Progress:
    """A one-line progress display on a terminal; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.decoded: dict[str, int] = {}
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, frame: Frame) -> None:
        self.decoded[frame.camera] = frame.index + 1
        now = time.monotonic()
        if self.enabled and now - self.last >= 0.25:
            self.last = now
            frames = sum(self.decoded.values())
            fps = frames / max(now - self.started, 1e-6)
            media = f" at {frame.media_time_s:6.1f} s" if frame.media_time_s is not None else ""
            print(
                f"\r{frame.camera}{media}: {frames} frames, {fps:5.1f} frames/s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def _run_service(
    config: Config, events_out: Path | None = None, progress: Progress | None = None
) -> tuple[dict[str, CameraStats], float]:
    options = ServiceOptions(events_log=events_out, extra_sinks=[ConsoleSink()], on_frame=progress)
    service = Service(config, options)
    try:
        stats = asyncio.run(service.run())
    finally:
        if progress is not None:
            progress.close()
    return stats, service.processing_seconds


def cmd_serve(args: argparse.Namespace) -> int:
    config = load(args)
    service = Service(config, ServiceOptions(serve_only=True))
    asyncio.run(service.run())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = load(args)
    stats, seconds = _run_service(config)
    print(summary(stats, seconds), file=sys.stderr)
    return EXIT_FAILED if any(s.error for s in stats.values()) else EXIT_OK


def camera_names(files: Sequence[Path]) -> list[str]:
    """Unique, config-valid camera names from file names (``cars.mp4`` → ``cars``)."""
    names: list[str] = []
    for path in files:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).strip("._-")[:56] or "file"
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}-{suffix}", suffix + 1
        names.append(name)
    return names


def cmd_replay(args: argparse.Namespace) -> int:
    config = load(args)
    template = config.cameras[0]
    cameras = [
        template.model_copy(update={"name": name, "source": str(path), "enabled": True})
        for name, path in zip(camera_names(args.files), args.files, strict=True)
    ]
    # A batch job: no HTTP server.
    http = config.http.model_copy(update={"enabled": False})
    config = config.model_copy(update={"cameras": cameras, "http": http})
    stats, seconds = _run_service(config, args.events_out, Progress())
    print(summary(stats, seconds))
    failed = [name for name, s in stats.items() if s.error]
    if failed:
        return fail(
            f"{len(failed)} of {len(stats)} files could not be processed: "
            + ", ".join(stats[name].error or name for name in failed)
        )
    return EXIT_OK


def cmd_process(args: argparse.Namespace) -> int:
    from streamer.sources.photos import ImageError, decode_image

    config = load(args)
    stills, deployment = build_stills(config)
    status = EXIT_OK
    try:
        for path in args.images:
            result: dict[str, object]
            try:
                image = decode_image(path.read_bytes(), config.http.max_image_pixels)
                result = stills.process(image)
            except (OSError, ImageError) as error:
                reason = error.strerror if isinstance(error, OSError) else str(error)
                result = {
                    "success": False,
                    "plate_number": None,
                    "detector_confidence": 0.0,
                    "bbox": None,
                    "dues_result": None,
                    "error": f"{path}: {reason}",
                }
                status = EXIT_FAILED
            print(json.dumps({"image": str(path), **result}), flush=True)
    finally:
        deployment.close()
    return status


def describe(action: Action) -> str:
    """What a rule's action does, for ``check-config``, with the URL's secrets masked."""
    if action.http is not None:
        return f"http {action.http.method} {mask_url(action.http.url)}"
    assert action.mqtt is not None
    return f"mqtt {action.mqtt.topic}"


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load(args)
    enabled = [c for c in config.cameras if c.enabled]
    print(
        f"config OK: {len(enabled)} camera(s) enabled: "
        + ", ".join(f"{c.name} ({mask_url(c.source)})" for c in enabled)
    )
    for webhook in config.webhooks:
        print(f"webhook {webhook.label}: {mask_url(webhook.url)}")
    for rule in config.rules:
        print(f"rule {rule.name}: " + ", ".join(describe(action) for action in rule.do))
    if config.mqtt is not None:
        mqtt = config.mqtt
        topics = f"topics under {mqtt.topic_prefix}/"
        if mqtt.discovery.enabled:
            topics += f", discovery under {mqtt.discovery.prefix}/"
        print(f"mqtt: {mqtt.display} as {mqtt.client_id}, {topics}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from streamer.sources.demo import DEMO_VEHICLES, render_video, seed_demo_dues

    config = Config()
    config = config.model_copy(update={"http": config.http.model_copy(update={"enabled": False})})
    video = Path(config.cameras[0].source)
    if not video.exists():
        print(f"rendering the demo recording {video} ...", file=sys.stderr)
        render_video(video)
    with closing(open_deployment(config)) as deployment:
        seed_demo_dues(open_stores(config, deployment).dues)
    print(f"processing {video} with the default config; events go to {config.events_log}")
    stats, seconds = _run_service(config, progress=Progress())
    print(summary(stats, seconds))
    expected = {vehicle.plate for vehicle in DEMO_VEHICLES}
    read = {event.plate_number for s in stats.values() for event in s.events_list}
    print(f"demo plates read: {len(expected & read)} of {len(expected)}")
    return EXIT_FAILED if any(s.error for s in stats.values()) else EXIT_OK
