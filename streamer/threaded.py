"""A :class:`~streamer.service.Service` in its own thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from streamer.config import Config
from streamer.node import ServiceOptions, StartupError
from streamer.service import Service

#: How long a :class:`ServiceThread` waits for its service to start, and to stop.
THREAD_START_TIMEOUT_S, THREAD_STOP_TIMEOUT_S = 60.0, 30.0


class ServiceThread:
    """A :class:`Service` in its own thread and event loop, for synchronous callers (tests,
    benchmarks, a program embedding the daemon) that talk to its HTTP API.

    Example:
        >>> with ServiceThread(config, ServiceOptions(install_signal_handlers=False)) as s:
        ...     requests.get(f"{s.url}/health")
    """

    def __init__(self, config: Config, options: ServiceOptions) -> None:
        self.service = Service(config, replace(options, install_signal_handlers=False))
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="service", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # raised again in the caller's thread
            self.error = error
            self.service.started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.service.run()

    def __enter__(self) -> ServiceThread:
        """Start the service; returns once it has started.

        Raises:
            StartupError: (or whatever else start-up raised) when it could not start.
        """
        self._thread.start()
        if not self.service.started.wait(THREAD_START_TIMEOUT_S):
            raise StartupError(f"the service did not start in {THREAD_START_TIMEOUT_S:g} s")
        if self.error is not None:
            raise self.error
        return self

    @property
    def url(self) -> str:
        """The HTTP API's address."""
        api = self.service.node.api
        if api.port is None:
            raise RuntimeError("the service serves no HTTP API (http.enabled is off)")
        return f"http://127.0.0.1:{api.port}"

    def __exit__(self, *exc: object) -> None:
        """Stop the service as SIGTERM would, and wait for it."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.service.request_stop)
            self._thread.join(THREAD_STOP_TIMEOUT_S)
