"""Prometheus metrics of a running daemon.

Counters that the pipeline keeps anyway (frames, events, deliveries, outbox depth) are read
at scrape time from the cameras' snapshots and the senders, so the pipeline carries no
metric calls for them; only latencies are observed as they happen. Each :class:`Metrics`
has its own registry, so several services (tests) never share state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamer.delivery.deliveries import Deliveries
from streamer.events import CameraSnapshot

#: Seconds: from a crop's read to a busy machine's detection.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ServiceCollector(Collector):
    def __init__(
        self, cameras: Callable[[], Sequence[CameraSnapshot]], deliveries: Deliveries | None
    ) -> None:
        self.cameras = cameras
        self.deliveries = deliveries

    def collect(self) -> Iterable[Metric]:
        per_camera = {
            "frames_read": (CounterMetricFamily, "Frames decoded per camera"),
            "frames_processed": (CounterMetricFamily, "Frames that went through detection"),
            "frames_still": (
                CounterMetricFamily,
                "Frames not detected because nothing moved in the region of interest",
            ),
            "frames_skipped": (
                CounterMetricFamily,
                "Live frames dropped because the pipeline was busy",
            ),
            "camera_fps": (GaugeMetricFamily, "Frames decoded per second, recent"),
            "camera_up": (GaugeMetricFamily, "1 when the camera delivers frames"),
        }
        families = {
            key: kind(f"streamer_{key}", text, labels=["camera"])
            for key, (kind, text) in per_camera.items()
        }
        events = CounterMetricFamily(
            "streamer_events", "Plate events emitted", labels=["camera", "dues_pending"]
        )
        for camera in self.cameras():
            values = {
                "frames_read": camera.frames,
                "frames_processed": camera.detected,
                "frames_still": camera.still,
                "frames_skipped": camera.skipped,
                "camera_fps": camera.fps,
                "camera_up": 1.0 if camera.up else 0.0,
            }
            for key, value in values.items():
                families[key].add_metric([camera.name], value)
            events.add_metric([camera.name, "true"], camera.dues_events)
            events.add_metric([camera.name, "false"], camera.events - camera.dues_events)
        yield from families.values()
        yield events

        per_webhook = {
            "webhook_deliveries": "Events delivered (a 2xx; the broker's acknowledgement)",
            "webhook_failures": "Failed delivery attempts (retried)",
            "webhook_dead": "Deliveries refused for good (dead letters)",
        }
        webhooks = {
            key: CounterMetricFamily(f"streamer_{key}", text, labels=["webhook"])
            for key, text in per_webhook.items()
        }
        senders = self.deliveries.senders if self.deliveries is not None else []
        for sender in senders:
            webhooks["webhook_deliveries"].add_metric([sender.label], sender.stats.delivered)
            webhooks["webhook_failures"].add_metric([sender.label], sender.stats.failed_attempts)
            webhooks["webhook_dead"].add_metric([sender.label], sender.stats.dead)
        yield from webhooks.values()

        outbox = self.deliveries
        if outbox is not None:
            depth = GaugeMetricFamily(
                "streamer_outbox_depth",
                "Outbox entries per target (webhook or MQTT broker) and state",
                labels=["webhook", "state"],
            )
            for (target, state), count in sorted(outbox.counts().items()):
                depth.add_metric([target, state], count)
            full = CounterMetricFamily(
                "streamer_outbox_full",
                "Pending deliveries dead-lettered because the outbox was full",
            )
            full.add_metric([], outbox.dropped_full)
            yield from (depth, full)


class Metrics:
    """The registry of one service: its counters and latency histograms.

    It is also the pipeline's :class:`~streamer.reporter.StageTimer` and the rules'
    :class:`~streamer.delivery.rules.ActionCounter`.
    """

    def __init__(
        self,
        cameras: Callable[[], Sequence[CameraSnapshot]] = tuple,
        deliveries: Deliveries | None = None,
    ) -> None:
        """``cameras``: the running cameras now; ``deliveries``: the outbox and its senders
        (none: no delivery figures, for a test of the rules)."""
        self.registry = CollectorRegistry()
        self.registry.register(_ServiceCollector(cameras, deliveries))
        self.stage_seconds = {
            stage: Histogram(
                f"streamer_{stage}_seconds",
                text,
                ["camera"],
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
            for stage, text in (
                ("detect", "Plate detection time per frame"),
                ("ocr", "Reading time per finished track"),
                (
                    "vehicle",
                    "Vehicle model time per track, and per look for vehicles without a plate",
                ),
            )
        }

        self.rules = Counter(
            "streamer_rules",
            "Rules fired for a vehicle, or held back by their cooldown",
            ["rule", "outcome"],
            registry=self.registry,
        )
        self.actions = Counter(
            "streamer_rule_actions",
            "Rule actions done (ok) or failed",
            ["rule", "action", "outcome"],
            registry=self.registry,
        )
        self.action_seconds = Histogram(
            "streamer_rule_action_seconds",
            "Time from a plate event to its rule action's end (answer or acknowledgement)",
            ["rule", "action"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def rule_fired(self, rule: str, outcome: str) -> None:
        """Count a rule fired (``fired``) or held back (``cooldown``) for one vehicle."""
        self.rules.labels(rule, outcome).inc()

    def rule_action(self, rule: str, kind: str, ok: bool, seconds: float) -> None:
        """Count one rule action's outcome and time."""
        self.actions.labels(rule, kind, "ok" if ok else "failed").inc()
        self.action_seconds.labels(rule, kind).observe(seconds)

    def observe(self, stage: str, camera: str, seconds: float) -> None:
        """Record the time one item of ``camera`` took in ``stage`` (``detect``, ``ocr``)."""
        self.stage_seconds[stage].labels(camera).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)
