"""The composition root: every part of a daemon, built in start-up order.

:func:`start_node` reads as the list of what a daemon is made of; each part is made by a
short ``_build_*`` function from the parts before it, passed by constructor, and nothing is
set on a part afterwards. Whether the daemon is alone or a node of a cluster is chosen
once (:func:`~streamer.cluster.deployment.open_deployment`) and asked of the deployment
wherever the two differ. Each part that must be stopped registers its teardown on the
service's ``AsyncExitStack`` as it starts, so whatever started is stopped again, in reverse
order, however the run ends (:mod:`streamer.service` drives the lifecycle)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from streamer.api.app import Api
from streamer.api.metrics import Metrics
from streamer.cameras import CameraRunner, Cameras, NoCameras
from streamer.cluster.deployment import Deployment, open_deployment
from streamer.config import CameraConfig, Config, ReaderConfig
from streamer.delivery.broker import MqttRefusedError
from streamer.delivery.deliveries import Deliveries
from streamer.delivery.eventlog import OutboxSink
from streamer.delivery.jsonlines import JsonLinesSink
from streamer.delivery.mqtt import MqttSender
from streamer.delivery.outbox import Outbox, OutboxError
from streamer.delivery.recordings import EvidenceWriter
from streamer.delivery.rules import Publish, RuleRunner, no_broker
from streamer.delivery.senders import OutboxSender
from streamer.delivery.sinks import FanOut, Sink
from streamer.delivery.webhooks import WebhookSender
from streamer.pipeline import CameraPipeline, FrameCallback, Stages, size_executor
from streamer.reading.engines import EnginePool
from streamer.reading.ocr import OcrEngine, OcrError
from streamer.reporter import finals_of
from streamer.stills import StillPipeline
from streamer.stores.checks import PlateChecks
from streamer.stores.dues import SqlDues
from streamer.stores.history import EventHistory
from streamer.stores.lists import SqlLists
from streamer.stores.records import StoreError
from streamer.vision.detect import Detector, YoloDetector
from streamer.vision.models import ModelError
from streamer.vision.vehicles import NoVehicles, OpenVinoVehicles, VehicleDetector
from streamer.vision.watch import WatchBudget

logger = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Something the daemon needs is missing; the message is one line saying what."""


@dataclass(frozen=True)
class ServiceOptions:
    """How a daemon runs, beside its config.

    Args:
        events_log: where to write events instead of ``config.events_log``.
        extra_sinks: more sinks (the CLI adds a console printer).
        install_signal_handlers: off for tests that run the service in-process.
        on_frame: called with every tracked frame (the CLI's progress line).
        detector: a detector already loaded (tests share one); default: the config's.
        engine: an OCR engine for every camera (tests share one); default: each
            camera's ``reader.engine``.
        serve_only: the HTTP API and dashboard without cameras (``streamer serve``).
        vehicles: a vehicle detector already loaded (tests share one); default: the
            config's.
    """

    events_log: Path | None = None
    extra_sinks: Sequence[Sink] = ()
    install_signal_handlers: bool = True
    on_frame: FrameCallback | None = None
    detector: Detector | None = None
    engine: OcrEngine | None = None
    serve_only: bool = False
    vehicles: VehicleDetector | None = None


@dataclass(frozen=True)
class Stores:
    """The plate stores of a deployment: the dues, the lists, and both looked up together."""

    dues: SqlDues
    lists: SqlLists
    checks: PlateChecks


@dataclass(frozen=True)
class Node:
    """A running daemon's parts (see :func:`start_node`)."""

    config: Config
    deployment: Deployment
    stores: Stores
    cameras: Cameras
    runner: CameraRunner
    deliveries: Deliveries
    #: The events log, guarded by the outbox (what waits for either is settled at the end).
    events_log: OutboxSink
    metrics: Metrics
    api: Api


async def start_node(
    config: Config, options: ServiceOptions, exit: contextlib.AsyncExitStack
) -> Node:
    """Build and start every part, in order; each registers its teardown on ``exit``.

    Raises:
        StartupError: for a missing model or OCR engine, an unreachable or invalid
            database, an unwritable folder, refused MQTT credentials, an address in use.
    """
    loop = asyncio.get_running_loop()
    cameras = [] if options.serve_only else [c for c in config.cameras if c.enabled]
    engines = _build_engines(options, cameras or config.cameras[:1])
    deployment = _guarded(open_deployment, config)
    exit.callback(deployment.close)
    stores = _guarded(open_stores, config, deployment, load_files=True)
    log = _guarded(_build_log, config, options)
    exit.callback(log.close)
    evidence = _guarded(EvidenceWriter, config.recordings)
    outbox = _guarded(Outbox, config.outbox, config.delivery_targets)
    exit.callback(outbox.close)
    detector = options.detector or build_detector(config)
    vehicles = options.vehicles or build_vehicles(config, cameras or config.cameras[:1])
    running = Cameras()
    session = await exit.enter_async_context(aiohttp.ClientSession())
    queue = deployment.webhook_queue(outbox)
    webhooks = [WebhookSender(hook, queue, session) for hook in config.webhooks]
    mqtt = _build_mqtt(config, outbox, running)
    senders: list[OutboxSender] = [*webhooks, *mqtt]
    deliveries = Deliveries(outbox, senders, deployment.relay(outbox, webhooks), loop)
    metrics = Metrics(running.snapshots, deliveries)
    history = _build_history(config, options, loop)
    rules = RuleRunner(config.rules, loop, _publish(mqtt), metrics)
    exit.push_async_callback(rules.close)
    events_log = _build_events_log(outbox, log, deliveries)
    sinks: list[Sink] = [events_log, rules, history, *deployment.sinks(), *options.extra_sinks]
    _guarded(_finish_orphans, outbox, stores.checks, [s for s in sinks if s is not rules])
    looks = WatchBudget(config.cameras[0].vehicles.watch_looks_per_s)
    stages = Stages(
        detector, engines, stores.checks, sinks, evidence, metrics, vehicles, looks, outbox.passes
    )
    runner = _build_runner(deployment, cameras, stages, running, options)
    first = config.cameras[0]
    reader = engines(first.reader, first.plates.formats)
    stills = StillPipeline(detector, reader, stores.checks, first, vehicles)
    api = Api(
        config, stills, stores.dues, stores.lists, history, deployment, metrics, running.snapshots
    )
    size_executor(loop, len(cameras))
    for sender in senders:
        _background(exit, sender.run(), f"deliver-{sender.label}")
    _background(exit, deliveries.relay.run(), "relay")
    await _first_mqtt_attempt(mqtt)
    _background(exit, _housekeeping(evidence, deliveries), "housekeeping")
    _background(exit, events_log.run(), "events-log")
    _thread(exit, lambda stop: deployment.follow(history.receive, stop), "cluster-events")
    if config.http.enabled or options.serve_only:
        await _start_api(api, exit)
    return Node(config, deployment, stores, running, runner, deliveries, events_log, metrics, api)


def open_stores(config: Config, deployment: Deployment, load_files: bool = False) -> Stores:
    """The dues and the plate lists where the deployment keeps them; with ``load_files``,
    the lists that are files read again (as a daemon does at its start).

    Raises:
        StoreError: when their database cannot be opened, or a list file is invalid.
    """
    dues = SqlDues(deployment.database)
    lists = SqlLists(deployment.database, config.list_files)
    if load_files:
        for name, count in lists.load_files().items():
            logger.info("list %s: %d entries from %s", name, count, config.lists[name].file)
    return Stores(dues, lists, PlateChecks(dues, lists))


def build_detector(config: Config) -> Detector:
    """The plate detector of the config.

    Raises:
        StartupError: when the weights are missing or cannot be loaded.
    """
    try:
        return YoloDetector(config.model)
    except ModelError as error:
        raise StartupError(str(error)) from None


def build_vehicles(config: Config, cameras: Sequence[CameraConfig]) -> VehicleDetector:
    """The vehicle detector, when one of ``cameras`` wants it (``vehicles.enabled``).

    Raises:
        StartupError: when its model is not fetched or cannot be loaded.
    """
    if not any(camera.vehicles.enabled for camera in cameras):
        return NoVehicles()
    try:
        return OpenVinoVehicles(cameras[0].vehicles)
    except ModelError as error:
        raise StartupError(str(error)) from None


def build_stills(config: Config) -> tuple[StillPipeline, Deployment]:
    """The still-photo pipeline of the config's first camera (``streamer process``), with
    its deployment (to close when done).

    Raises:
        StartupError: for a missing model or OCR engine, or an unreachable database.
    """
    engines = _build_engines(ServiceOptions(), config.cameras[:1])
    deployment = _guarded(open_deployment, config)
    stores = _guarded(open_stores, config, deployment, load_files=True)
    camera = config.cameras[0]
    stills = StillPipeline(
        build_detector(config),
        engines(camera.reader, camera.plates.formats),
        stores.checks,
        camera,
        build_vehicles(config, [camera]),
    )
    return stills, deployment


def _guarded(build: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``build(*args)``, its store, outbox or file errors raised as one-line start-up errors."""
    try:
        return build(*args, **kwargs)
    except (StoreError, OutboxError, OSError) as error:
        raise StartupError(str(error)) from None


def _build_engines(options: ServiceOptions, cameras: Sequence[CameraConfig]) -> EnginePool:
    """The OCR engines, each one every camera needs started now (a missing one fails the
    start before anything else)."""
    engines = EnginePool(options.engine)
    for camera in cameras:
        try:
            engines(camera.reader, camera.plates.formats)
        except OcrError as error:
            raise StartupError(str(error)) from None
    return engines


def build_engine(reader: ReaderConfig) -> OcrEngine:
    """The OCR engine of a ``reader`` setting.

    Raises:
        StartupError: when the engine cannot start.
    """
    try:
        return EnginePool()(reader)
    except OcrError as error:
        raise StartupError(str(error)) from None


def _build_log(config: Config, options: ServiceOptions) -> JsonLinesSink:
    path = options.events_log or config.events_log
    return JsonLinesSink(path, config.events_log_max_bytes, config.events_log_backups)


def _build_mqtt(config: Config, outbox: Outbox, running: Cameras) -> list[MqttSender]:
    """The MQTT sender, when a broker is configured."""
    if config.mqtt is None:
        return []
    cameras = [camera for camera in config.cameras if camera.enabled]
    try:
        return [MqttSender(config.mqtt, outbox, cameras, running.snapshots)]
    except ValueError as error:  # a certificate or key file
        raise StartupError(str(error)) from None


def _publish(mqtt: Sequence[MqttSender]) -> Publish:
    """How rules publish an MQTT message: through the broker's sender, when there is one."""
    return mqtt[0].publish_now if mqtt else no_broker


def _build_history(
    config: Config, options: ServiceOptions, loop: asyncio.AbstractEventLoop
) -> EventHistory:
    history = EventHistory(config.http.recent_events, config.recordings.directory, loop=loop)
    history.load(options.events_log or config.events_log)
    return history


def _build_events_log(outbox: Outbox, log: JsonLinesSink, deliveries: Deliveries) -> OutboxSink:
    """The first of the sinks every event goes to (then the rules, so an action follows its
    event; the recent history; the deployment's own; the caller's): the outbox commits it
    and the events log has it (see :class:`OutboxSink`). What a crash or an outage left
    behind is caught up first."""
    events_log = OutboxSink(outbox, log, deliveries.wake)
    events_log.recover()
    return events_log


def _build_runner(
    deployment: Deployment,
    cameras: Sequence[CameraConfig],
    stages: Stages,
    running: Cameras,
    options: ServiceOptions,
) -> CameraRunner:
    """Who runs the cameras: the deployment (every camera here, or a cluster node's share),
    or nobody (``streamer serve``)."""
    if options.serve_only:
        return NoCameras()

    def build(camera: CameraConfig, seen: Mapping[str, datetime]) -> CameraPipeline:
        return CameraPipeline(camera, stages, on_frame=options.on_frame, seen=seen)

    return deployment.runner(cameras, build, running)


def _finish_orphans(outbox: Outbox, checks: PlateChecks, sinks: Sequence[Sink]) -> None:
    """The final events of the vehicles whose tracks a crash ended (after their early
    event), to ``sinks``: every sink but the rules, since those vehicles are long gone (a
    gate opened now would open for nobody, or for the car behind)."""
    deliver = FanOut(sinks, "restart")
    for final in finals_of(outbox.orphans(), checks):
        deliver.send(final)


async def _first_mqtt_attempt(mqtt: Sequence[MqttSender]) -> None:
    """Wait for the broker's first connection attempt: one that refuses the credentials
    stops the start; one that cannot be reached is logged, and the events wait in the
    outbox until it answers (as for a webhook that is down)."""
    for sender in mqtt:
        try:
            await sender.first_attempt()
        except MqttRefusedError as error:
            raise StartupError(str(error)) from None


async def _start_api(api: Api, exit: contextlib.AsyncExitStack) -> None:
    try:
        await api.start()
    except OSError as error:
        raise StartupError(str(error)) from None
    exit.push_async_callback(api.stop)


#: Seconds between retention runs (evidence, delivered outbox entries).
HOUSEKEEPING_INTERVAL_S = 600


async def _housekeeping(evidence: EvidenceWriter, deliveries: Deliveries) -> None:
    """Retention of evidence and delivered outbox entries, at start and then regularly."""
    while True:
        try:
            await asyncio.to_thread(evidence.prune)
            await asyncio.to_thread(deliveries.purge_delivered)
        except (OSError, StoreError) as error:
            logger.error("housekeeping: %s", error)
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


def _background(
    exit: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None], name: str
) -> None:
    """Run ``work`` until the daemon stops."""
    task = asyncio.create_task(work, name=name)

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    exit.push_async_callback(cancel)


def _thread(
    exit: contextlib.AsyncExitStack, work: Callable[[threading.Event], None], name: str
) -> None:
    """Run ``work`` on a thread of its own until the daemon stops (it returns once the
    event it is given is set)."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), name=name, daemon=True)
    thread.start()
    exit.callback(thread.join, 5)
    exit.callback(stop.set)
