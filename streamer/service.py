"""The daemon's lifecycle: start-up, the cameras' run, graceful shutdown.

:meth:`Service.run` is ``startup() → main_loop() → shutdown()``, as uvicorn's server has
it. ``startup`` builds the node (:func:`~streamer.node.start_node`: it fails fast with one
line when something is missing, and registers the teardown of each part as it starts it,
so whatever started is stopped again, in reverse order, however the run ends);
``main_loop`` runs the cameras, each of which may fail alone; ``shutdown`` gives pending
deliveries their time. The first SIGINT/SIGTERM stops intake and lets open tracks finish
as events; a second one exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time

from streamer.cameras import CameraStats
from streamer.config import Config
from streamer.node import Node, ServiceOptions, start_node

logger = logging.getLogger(__name__)


class Service:
    """Runs the configured cameras until their sources end or a signal stops them.

    ``processing_seconds`` is the time from the end of start-up (model loaded) to the end.

    Example:
        >>> stats = asyncio.run(Service(config).run())
    """

    def __init__(self, config: Config, options: ServiceOptions | None = None) -> None:
        self.config = config
        self.options = options or ServiceOptions()
        self.processing_seconds = 0.0
        self.stopping = False
        #: Set once start-up is done (the API listens), for callers in other threads.
        self.started = threading.Event()
        self._node: Node | None = None
        self._exit = contextlib.AsyncExitStack()
        self._stop_requested = asyncio.Event()
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def node(self) -> Node:
        """The running daemon's parts.

        Raises:
            RuntimeError: before start-up.
        """
        if self._node is None:
            raise RuntimeError("the service has not started")
        return self._node

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
        """Build and start every part (see :func:`~streamer.node.start_node`), then take
        the signals."""
        self._node = await start_node(self.config, self.options, self._exit)
        if self.options.install_signal_handlers:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self.request_stop, signum)
                self._exit.callback(loop.remove_signal_handler, signum)

    async def main_loop(self) -> dict[str, CameraStats]:
        """Run the cameras to their end (``streamer serve``, and a cluster's node: until a
        stop is requested)."""
        started = time.monotonic()
        try:
            results = await self.node.runner.run(self._stop_requested)
        finally:
            self.processing_seconds = time.monotonic() - started
        if self._deadline is not None:  # open tracks are done; the drain has its own limit
            self._deadline.cancel()
        return results

    async def shutdown(self) -> None:
        """Give pending deliveries (webhooks, MQTT) up to ``outbox.drain_timeout_s`` to go
        out; the rest go out on the next start. Events that wait for the outbox (it could
        not commit them) are tried once more first."""
        await asyncio.to_thread(self.node.events_log.settle)
        await self.node.deliveries.drain(self.config.outbox.drain_timeout_s)

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
        if self._node is not None:
            self._node.cameras.stop()
        self._deadline = asyncio.get_running_loop().call_later(
            self.config.shutdown_timeout_s, self._too_slow
        )

    def _too_slow(self) -> None:
        open_tracks = self._node.cameras.open_tracks if self._node is not None else 0
        logger.error(
            "shutdown took longer than %.0f s (%d tracks open): exiting now",
            self.config.shutdown_timeout_s,
            open_tracks,
        )
        raise SystemExit(1)
