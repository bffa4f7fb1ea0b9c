"""The daemon: start-up checks, one pipeline per camera, graceful shutdown.

:meth:`Service.run` is ``startup() → main_loop() → shutdown()``, as uvicorn's server has
it. ``startup`` fails fast with one line when something is missing (model, Tesseract, an
unwritable folder, the dues database) and registers the teardown of each part as it
starts it, so whatever started is stopped again, in reverse order, however the run ends.
``main_loop`` drives every enabled camera on one event loop; a camera that fails is
reported and the others go on. The first SIGINT/SIGTERM stops intake and lets open
tracks finish as events; a second one exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from streamer.api.app import Api
from streamer.api.images import ImageProcessor
from streamer.api.metrics import Metrics
from streamer.cluster import ClusterRunner, Leases
from streamer.config import CameraConfig, Config, MqttConfig, ReaderConfig
from streamer.delivery.broker import MqttRefusedError
from streamer.delivery.cluster_outbox import ClusterOutbox
from streamer.delivery.deliveries import Deliveries
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox, OutboxError, OutboxSink
from streamer.delivery.recordings import EvidenceWriter
from streamer.delivery.sinks import JsonLinesSink, Sink
from streamer.delivery.webhooks import WebhookSender
from streamer.pipeline import FILE_IN_FLIGHT, CameraPipeline, CameraStats, FrameCallback, Stages
from streamer.reading.ocr import EnginePool, OcrEngine, OcrError
from streamer.reporter import finals_of
from streamer.rules import RuleRunner
from streamer.stores.history import EventHistory
from streamer.stores.open import open_database, open_stores
from streamer.stores.postgres import PostgresDatabase
from streamer.stores.records import StoreError
from streamer.stores.shared_history import SharedHistory
from streamer.vision.detect import Detector, YoloDetector
from streamer.vision.models import ModelError

logger = logging.getLogger(__name__)

#: Seconds between retention runs (evidence, delivered outbox entries).
HOUSEKEEPING_INTERVAL_S = 600


class StartupError(RuntimeError):
    """Something the daemon needs is missing; the message is one line saying what."""


def build_engine(reader: ReaderConfig, engines: EnginePool | None = None) -> OcrEngine:
    """The OCR engine of a ``reader`` setting (from ``engines`` when given).

    Raises:
        StartupError: when the engine cannot start.
    """
    try:
        return (engines or EnginePool())(reader)
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


@dataclass(frozen=True)
class ServiceOptions:
    """How a :class:`Service` runs, beside its config.

    Args:
        events_log: where to write events instead of ``config.events_log``.
        extra_sinks: more sinks (the CLI adds a console printer).
        install_signal_handlers: off for tests that run the service in-process.
        on_frame: called with every tracked frame (the CLI's progress line).
        detector: a detector already loaded (tests share one); default: the config's.
        engine: an OCR engine for every camera (tests share one); default: each
            camera's ``reader.engine``.
        serve_only: the HTTP API and dashboard without cameras (``streamer serve``).
    """

    events_log: Path | None = None
    extra_sinks: Sequence[Sink] = ()
    install_signal_handlers: bool = True
    on_frame: FrameCallback | None = None
    detector: Detector | None = None
    engine: OcrEngine | None = None
    serve_only: bool = False


@dataclass
class Service:
    """Runs the configured cameras until their sources end or a signal stops them.

    ``processing_seconds`` is the time from the end of start-up (model loaded) to the end.

    Example:
        >>> stats = asyncio.run(Service(config).run())
    """

    config: Config
    options: ServiceOptions = field(default_factory=ServiceOptions)
    pipelines: list[CameraPipeline] = field(init=False, default_factory=list)
    #: The outbox and the senders of every target (see Deliveries).
    deliveries: Deliveries | None = field(init=False, default=None)
    rules: RuleRunner | None = field(init=False, default=None)
    #: With ``cluster.database``: runs this node's share of the cameras.
    cluster: ClusterRunner | None = field(init=False, default=None)
    api: Api | None = field(init=False, default=None)
    metrics: Metrics | None = field(init=False, default=None)
    processing_seconds: float = field(init=False, default=0.0)
    stopping: bool = field(init=False, default=False)
    _exit: contextlib.AsyncExitStack = field(init=False, default_factory=contextlib.AsyncExitStack)
    _evidence: EvidenceWriter | None = field(init=False, default=None)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)
    _deadline: asyncio.TimerHandle | None = field(init=False, default=None)
    _stop_requested: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    #: Set once start-up is done (the API listens), for callers in other threads.
    started: threading.Event = field(init=False, default_factory=threading.Event)

    async def run(self) -> dict[str, CameraStats]:
        """Start, run every enabled camera to completion, drain; returns each camera's
        counters.

        Raises:
            StartupError: for a missing model, Tesseract, database, unwritable folder or
                an address already in use.
        """
        async with self._exit:
            await self.startup()
            self.started.set()
            stats = await self.main_loop()
            await self.shutdown()
        logger.info(
            "finished: %s",
            ", ".join(f"{name} {s.frames} frames {s.events} events" for name, s in stats.items()),
        )
        return stats

    async def startup(self) -> None:
        """Build the shared stages and start the cameras' helpers: signal handlers,
        webhook and MQTT senders, housekeeping and the HTTP API. Each part's teardown is
        registered as it starts."""
        options, config = self.options, self.config
        loop = self._loop = asyncio.get_running_loop()
        cameras = [] if options.serve_only else [c for c in config.cameras if c.enabled]
        engines = EnginePool(options.engine)
        for reader in [camera.reader for camera in cameras] or [config.cameras[0].reader]:
            build_engine(reader, engines)  # every engine a camera needs, before anything
        events_log = options.events_log or config.events_log
        sinks: list[Sink] = []
        try:
            database = open_database(config)
            dues, lists = open_stores(config, database)
            for name, count in lists.load_files().items():
                logger.info("list %s: %d entries from %s", name, count, config.lists[name].file)
            log = JsonLinesSink(events_log, config.events_log_max_bytes, config.events_log_backups)
            self._exit.callback(log.close)
            self._evidence = EvidenceWriter(config.recordings)
            # First of the sinks: the outbox commits each event, then logs it, before
            # anything else sees it (see OutboxSink).
            outbox = Outbox(config.outbox, config.delivery_targets)
            deliveries = self.deliveries = Deliveries(outbox)
            guarded = OutboxSink(outbox, log, deliveries.wake)
            guarded.recover()
            sinks.append(guarded)
        except (StoreError, OutboxError, OSError) as error:
            raise StartupError(str(error)) from None
        detector = options.detector or build_detector(config)
        self.metrics = Metrics(
            lambda: [pipeline.snapshot() for pipeline in self.pipelines],
            lambda: deliveries.senders,
            lambda: self.deliveries,
        )
        leases = None
        if config.cluster is not None and isinstance(database, PostgresDatabase):
            leases = Leases(database, config.cluster, [camera.name for camera in cameras])
        shared = None
        if leases is not None:  # the cluster's events, for every node's /api/events
            recordings = config.recordings
            shared = SharedHistory(
                leases.database, leases.node, recordings.directory, recordings.max_age_days
            )
            sinks.append(shared)
            deliveries.shared = ClusterOutbox(leases.database, leases.node, config.outbox)
        if config.http.enabled or options.serve_only:
            history = EventHistory(config.http.recent_events, config.recordings.directory)
            history.load(events_log)
            sinks.append(history)
            camera = config.cameras[0]
            processor = ImageProcessor(detector, engines(camera.reader), dues, camera, lists)
            self.api = Api(
                config,
                processor,
                dues,
                lists,
                history,
                self.metrics,
                lambda: [pipeline.snapshot() for pipeline in self.pipelines],
                leases,
                shared,
            )
            if shared is not None:  # the other nodes' events, for the live stream
                self._thread(lambda stop: shared.listen(history.receive, stop), "cluster-events")
        sinks += options.extra_sinks
        session = await self._exit.enter_async_context(aiohttp.ClientSession())
        if config.rules:  # after the outbox and the log, so an action follows its event
            self.rules = RuleRunner(config.rules, loop, session, counter=self.metrics)
            self._exit.push_async_callback(self.rules.close)
            sinks.insert(1, self.rules)
        for final in finals_of(outbox.orphans(), dues, lists):  # a crash ended their tracks
            for sink in sinks:
                sink.send(final)
        stages = Stages(detector, engines, dues, sinks, self._evidence, self.metrics, lists)

        def pipeline(camera: CameraConfig) -> CameraPipeline:
            return CameraPipeline(camera, stages, on_frame=options.on_frame)

        if leases is None:
            self.pipelines = [pipeline(camera) for camera in cameras]
        else:  # this node's share of the cameras, as it changes
            named = {camera.name: camera for camera in cameras}
            self.cluster = ClusterRunner(leases, named, pipeline, self.pipelines)
            if shared is not None:
                self.cluster.recent = shared.recent
        # Each camera may have frames in detection (FILE_IN_FLIGHT for a file, one for a
        # live source), one in its motion gate and a track in reading at once, on top of
        # the default pool the HTTP API uses; otherwise reading would queue behind other
        # cameras' detection. Threads start only when needed.
        threads = (FILE_IN_FLIGHT + 2) * len(cameras) + min(32, (os.cpu_count() or 1) + 4)
        loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="streamer"))
        if options.install_signal_handlers:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self.request_stop, signum)
                self._exit.callback(loop.remove_signal_handler, signum)
        hooks = [WebhookSender(hook, deliveries.webhooks, session) for hook in config.webhooks]
        deliveries.senders += hooks
        for sender in hooks:
            self._background(sender.run(), f"webhook-{sender.label}")
        if forwarder := deliveries.start([hook.label for hook in hooks]):
            self._background(forwarder.run(), "forwarder")
        if config.mqtt is not None:
            await self._start_mqtt(config.mqtt, outbox, cameras)
        self._background(self._housekeeping(), "housekeeping")
        if self.api is not None:
            try:
                await self.api.start()
            except OSError as error:
                raise StartupError(str(error)) from None
            self._exit.push_async_callback(self.api.stop)

    async def _start_mqtt(
        self, mqtt: MqttConfig, outbox: Outbox, cameras: Sequence[CameraConfig]
    ) -> None:
        """Start the MQTT sender and wait for its first connection attempt: a broker that
        refuses the credentials stops the start; one that cannot be reached is logged, and
        the events wait in the outbox until it answers (as for a webhook that is down)."""
        try:
            sender = MqttSender(
                mqtt, outbox, cameras, lambda: [p.snapshot() for p in self.pipelines]
            )
            if self.deliveries is not None:
                self.deliveries.senders.append(sender)
            if self.rules is not None:
                self.rules.publish = sender.publish_now
            self._background(sender.run(), "mqtt")
            await sender.first_attempt()
        except (ValueError, MqttRefusedError) as error:  # a certificate, the credentials
            raise StartupError(str(error)) from None

    def _thread(self, work: Callable[[threading.Event], None], name: str) -> None:
        """Run ``work`` on a thread of its own until the service stops (it returns once
        the event it is given is set)."""
        stop = threading.Event()
        thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
        thread.start()
        self._exit.callback(thread.join, 5)
        self._exit.callback(stop.set)

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` until the service stops."""
        task = asyncio.create_task(work, name=name)

        async def cancel() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self._exit.push_async_callback(cancel)

    async def main_loop(self) -> dict[str, CameraStats]:
        """Run the cameras to their end (``streamer serve``, and a cluster's node: until a
        stop is requested)."""
        started = time.monotonic()
        try:
            if self.options.serve_only:
                await self._stop_requested.wait()
            if self.cluster is not None:
                results = await self.cluster.run(self._stop_requested)
            else:
                ran = await asyncio.gather(*(pipeline.run() for pipeline in self.pipelines))
                results = {p.camera.name: r for p, r in zip(self.pipelines, ran, strict=True)}
        finally:
            self.processing_seconds = time.monotonic() - started
        if self._deadline is not None:  # open tracks are done; the drain has its own limit
            self._deadline.cancel()
        return results

    async def shutdown(self) -> None:
        """Give pending deliveries (webhooks, MQTT) up to ``outbox.drain_timeout_s`` to go
        out; the rest go out on the next start."""
        if self.deliveries is not None:
            await self.deliveries.drain(self.config.outbox.drain_timeout_s)

    async def _housekeeping(self) -> None:
        """Retention of evidence and delivered outbox entries, at start and then regularly."""
        while True:
            try:
                if self._evidence is not None:
                    await asyncio.to_thread(self._evidence.prune)
                if self.deliveries is not None:
                    await asyncio.to_thread(self.deliveries.purge_delivered)
            except OSError as error:
                logger.error("housekeeping: %s", error)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    def request_stop(self, signum: int | None = None) -> None:
        """Stop reading; open tracks still become events, within ``shutdown_timeout_s``.

        A second request, or the timeout, exits at once (status 1).
        """
        if self.stopping:
            logger.warning("second stop request: exiting now, open tracks are lost")
            raise SystemExit(1)
        self.stopping = True
        self._stop_requested.set()
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
