"""Prometheus metrics of a running daemon.

Counters that the pipeline keeps anyway (frames, events, deliveries, outbox depth) are read
at scrape time from the service, so the pipeline carries no metric calls for them; only
latencies are observed as they happen. Each :class:`Metrics` has its own registry, so
several services (tests) never share state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from streamer.outbox import Outbox
    from streamer.pipeline import CameraPipeline
    from streamer.webhooks import WebhookSender

#: Seconds; detection takes 10 to 40 ms on CPU, OCR 2 to 10 ms per crop.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ServiceCollector(Collector):
    def __init__(
        self,
        pipelines: Callable[[], Sequence[CameraPipeline]],
        senders: Callable[[], Sequence[WebhookSender]],
        outbox: Callable[[], Outbox | None],
    ) -> None:
        self.pipelines = pipelines
        self.senders = senders
        self.outbox = outbox

    def collect(self) -> Iterable[Metric]:
        frames_read = CounterMetricFamily(
            "streamer_frames_read", "Frames decoded per camera", labels=["camera"]
        )
        processed = CounterMetricFamily(
            "streamer_frames_processed", "Frames that went through detection", labels=["camera"]
        )
        still = CounterMetricFamily(
            "streamer_frames_still",
            "Frames not detected because nothing moved in the region of interest",
            labels=["camera"],
        )
        skipped = CounterMetricFamily(
            "streamer_frames_skipped",
            "Live frames dropped because the pipeline was busy",
            labels=["camera"],
        )
        fps = GaugeMetricFamily(
            "streamer_camera_fps", "Frames decoded per second, recent", labels=["camera"]
        )
        up = GaugeMetricFamily(
            "streamer_camera_up", "1 when the camera delivers frames", labels=["camera"]
        )
        events = CounterMetricFamily(
            "streamer_events", "Plate events emitted", labels=["camera", "dues_pending"]
        )
        for pipeline in self.pipelines():
            name, stats = pipeline.camera.name, pipeline.stats
            frames_read.add_metric([name], stats.frames)
            processed.add_metric([name], stats.detected)
            still.add_metric([name], stats.still)
            skipped.add_metric([name], stats.skipped)
            fps.add_metric([name], stats.fps)
            up.add_metric([name], 1.0 if pipeline.is_up else 0.0)
            events.add_metric([name, "true"], stats.dues_events)
            events.add_metric([name, "false"], stats.events - stats.dues_events)
        yield from (frames_read, processed, still, skipped, fps, up, events)

        delivered = CounterMetricFamily(
            "streamer_webhook_deliveries", "Events delivered (2xx) per webhook", labels=["webhook"]
        )
        failures = CounterMetricFamily(
            "streamer_webhook_failures", "Failed delivery attempts (retried)", labels=["webhook"]
        )
        dead = CounterMetricFamily(
            "streamer_webhook_dead",
            "Deliveries refused for good (dead letters)",
            labels=["webhook"],
        )
        for sender in self.senders():
            delivered.add_metric([sender.label], sender.stats.delivered)
            failures.add_metric([sender.label], sender.stats.failed_attempts)
            dead.add_metric([sender.label], sender.stats.dead)
        yield from (delivered, failures, dead)

        outbox = self.outbox()
        if outbox is not None:
            depth = GaugeMetricFamily(
                "streamer_outbox_depth", "Outbox entries per state", labels=["webhook", "state"]
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
    """The registry of one service: its counters and latency histograms."""

    def __init__(
        self,
        pipelines: Callable[[], Sequence[CameraPipeline]] = tuple,
        senders: Callable[[], Sequence[WebhookSender]] = tuple,
        outbox: Callable[[], Outbox | None] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_ServiceCollector(pipelines, senders, outbox))
        self.detect_seconds = Histogram(
            "streamer_detect_seconds",
            "Plate detection time per frame",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ocr_seconds = Histogram(
            "streamer_ocr_seconds",
            "Reading time per finished track",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)
