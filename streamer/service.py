"""The daemon: start-up checks, one pipeline per camera, shutdown.

``startup`` fails fast with one line when something is missing (model, Tesseract, an
unwritable folder, the dues database). ``run`` drives every enabled camera on one event
loop; a camera that fails is reported and the others go on. The first SIGINT/SIGTERM
stops intake and lets open tracks finish as events; a second one exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from streamer.api import Api, EventHistory
from streamer.config import Config
from streamer.detect import Detector, YoloDetector
from streamer.dues import DuesError, SqliteDues
from streamer.images import ImageProcessor
from streamer.metrics import Metrics
from streamer.models import ModelError
from streamer.ocr import OcrEngine, OcrError, engine_named
from streamer.outbox import Outbox, OutboxError, OutboxSink
from streamer.pipeline import FILE_IN_FLIGHT, CameraPipeline, CameraStats, FrameCallback, Stages
from streamer.recordings import EvidenceWriter
from streamer.sinks import JsonLinesSink, Sink
from streamer.webhooks import WebhookSender

logger = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Something the daemon needs is missing; the message is one line saying what."""


def build_engine(config: Config) -> OcrEngine:
    """The OCR engine named by the config.

    Raises:
        StartupError: when the engine cannot start.
    """
    try:
        return engine_named(config.reader.engine, config.reader.tessdata)
    except OcrError as error:
        raise StartupError(str(error)) from None


def build_detector(config: Config) -> Detector:
    """The plate detector of the config.

    Raises:
        StartupError: when the weights are missing or cannot be loaded.
    """
    try:
        return YoloDetector(config.model)
    except ModelError as error:
        raise StartupError(str(error)) from None


@dataclass
class Service:
    """Runs the configured cameras until their sources end or a signal stops them.

    ``processing_seconds`` is the time from the end of start-up (model loaded) to the end.

    Args:
        config: the validated configuration.
        events_log: where to write events instead of ``config.events_log``.
        extra_sinks: more sinks (the CLI adds a console printer).
        install_signal_handlers: off for tests that run the service in-process.
    """

    config: Config
    events_log: Path | None = None
    extra_sinks: Sequence[Sink] = ()
    install_signal_handlers: bool = True
    on_frame: FrameCallback | None = None
    detector: Detector | None = None
    engine: OcrEngine | None = None
    pipelines: list[CameraPipeline] = field(default_factory=list)
    senders: list[WebhookSender] = field(default_factory=list)
    outbox: Outbox | None = None
    serve_only: bool = False
    api: Api | None = None
    metrics: Metrics | None = None
    processing_seconds: float = 0.0
    stopping: bool = False
    _log: JsonLinesSink | None = None
    _evidence: EvidenceWriter | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _deadline: asyncio.TimerHandle | None = None
    _served: asyncio.Event | None = None

    def startup(self) -> Stages:
        """Build the shared stages, failing fast with one line on what is missing.

        Raises:
            StartupError: for a missing model, Tesseract, database or unwritable folder.
        """
        engine = self.engine or build_engine(self.config)
        sinks: list[Sink] = []
        try:
            dues = SqliteDues(self.config.dues.database)
            self._log = JsonLinesSink(
                self.events_log or self.config.events_log,
                self.config.events_log_max_bytes,
                self.config.events_log_backups,
            )
            self._evidence = EvidenceWriter(self.config.recordings)
            if self.config.webhooks:
                # First of the sinks: the outbox commits each event, then logs it, before
                # anything else sees it (see OutboxSink).
                self.outbox = Outbox(self.config.outbox, self.config.webhooks)
                guarded = OutboxSink(self.outbox, self._log, self._wake_senders)
                guarded.recover()
                sinks.append(guarded)
            else:
                sinks.append(self._log)
        except (DuesError, OutboxError, OSError) as error:
            raise StartupError(str(error)) from None
        detector = self.detector or build_detector(self.config)
        self.metrics = Metrics(lambda: self.pipelines, lambda: self.senders, lambda: self.outbox)
        if self.config.http.enabled or self.serve_only:
            history = EventHistory(self.config.http.recent_events, self.config.recordings.directory)
            history.load(self.events_log or self.config.events_log)
            sinks.append(history)
            processor = ImageProcessor(detector, engine, dues, self.config.cameras[0])
            self.api = Api(
                self.config, processor, dues, history, self.metrics, lambda: self.pipelines
            )
        return Stages(
            detector,
            engine,
            dues,
            [*sinks, *self.extra_sinks],
            self._evidence,
            self.metrics,
        )

    def _wake_senders(self, targets: list[str]) -> None:
        """From a pipeline thread: new deliveries are waiting for ``targets``."""
        if self._loop is None:
            return
        for sender in self.senders:
            if sender.label in targets:
                self._loop.call_soon_threadsafe(sender.wakeup.set)

    async def _housekeeping(self) -> None:
        """Retention of evidence and delivered outbox entries, at start and every 10 min."""
        while True:
            try:
                if self._evidence is not None:
                    await asyncio.to_thread(self._evidence.prune)
                if self.outbox is not None:
                    await asyncio.to_thread(self.outbox.purge_delivered)
            except OSError as error:
                logger.error("housekeeping: %s", error)
            await asyncio.sleep(600)

    async def _drain(self) -> None:
        """Give pending webhook deliveries up to ``outbox.drain_timeout_s`` to go out."""
        if not self.senders:
            return
        for sender in self.senders:
            sender.idle.clear()
            sender.wakeup.set()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(s.idle.wait() for s in self.senders)),
                self.config.outbox.drain_timeout_s,
            )
        except TimeoutError:
            assert self.outbox is not None
            pending = sum(n for (_, state), n in self.outbox.counts().items() if state == "pending")
            logger.warning(
                "%d webhook deliveries still pending; they go out on the next start", pending
            )

    async def run(self) -> dict[str, CameraStats]:
        """Run every enabled camera to completion; returns each camera's counters."""
        stages = self.startup()
        cameras = [] if self.serve_only else [c for c in self.config.cameras if c.enabled]
        self.pipelines = [
            CameraPipeline(camera, stages, on_frame=self.on_frame) for camera in cameras
        ]
        loop = self._loop = asyncio.get_running_loop()
        # Each camera may have frames in detection (FILE_IN_FLIGHT for a file, one for a
        # live source), one in its motion gate and a track in reading at once, on top of
        # the default pool the HTTP API uses; otherwise reading would queue behind other
        # cameras' detection. Threads start only when needed.
        threads = (FILE_IN_FLIGHT + 2) * len(cameras) + min(32, (os.cpu_count() or 1) + 4)
        loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="streamer"))
        if self.install_signal_handlers:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self.request_stop, signum)
        session = aiohttp.ClientSession() if self.outbox is not None else None
        background = [asyncio.create_task(self._housekeeping(), name="housekeeping")]
        if self.outbox is not None and session is not None:
            self.senders = [
                WebhookSender(webhook, self.outbox, session) for webhook in self.config.webhooks
            ]
            background += [
                asyncio.create_task(sender.run(), name=f"webhook-{sender.label}")
                for sender in self.senders
            ]
        if self.api is not None:
            try:
                await self.api.start()
            except OSError as error:
                for task in background:
                    task.cancel()
                if session is not None:
                    await session.close()
                raise StartupError(str(error)) from None
        started = time.monotonic()
        try:
            if self.serve_only:
                self._served = asyncio.Event()
                await self._served.wait()
            results = await asyncio.gather(*(pipeline.run() for pipeline in self.pipelines))
            self.processing_seconds = time.monotonic() - started
            if self._deadline is not None:  # open tracks are done; the drain has its own limit
                self._deadline.cancel()
            await self._drain()
        finally:
            self.processing_seconds = self.processing_seconds or time.monotonic() - started
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self.api is not None:
                await self.api.stop()
            if session is not None:
                await session.close()
            if self.install_signal_handlers:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            if self._log is not None:
                self._log.close()
        stats = {camera.name: result for camera, result in zip(cameras, results, strict=True)}
        logger.info(
            "finished: %s",
            ", ".join(f"{name} {s.frames} frames {s.events} events" for name, s in stats.items()),
        )
        return stats

    def request_stop(self, signum: int | None = None) -> None:
        """Stop reading; open tracks still become events, within ``shutdown_timeout_s``.

        A second request, or the timeout, exits at once (status 1).
        """
        if self.stopping:
            logger.warning("second stop request: exiting now, open tracks are lost")
            raise SystemExit(1)
        self.stopping = True
        if self._served is not None:
            self._served.set()
        name = signal.Signals(signum).name if signum else "request"
        logger.info(
            "stopping (%s): finishing open tracks, at most %.0f s",
            name,
            self.config.shutdown_timeout_s,
        )
        for pipeline in self.pipelines:
            pipeline.stop.set()
        self._deadline = asyncio.get_running_loop().call_later(
            self.config.shutdown_timeout_s, self._too_slow
        )

    def _too_slow(self) -> None:
        open_tracks = sum(pipeline.tracker.active for pipeline in self.pipelines)
        logger.error(
            "shutdown took longer than %.0f s (%d tracks open): exiting now",
            self.config.shutdown_timeout_s,
            open_tracks,
        )
        raise SystemExit(1)
