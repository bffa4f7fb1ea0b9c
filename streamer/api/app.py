"""The HTTP API: the seed's four endpoints, operations, the live dashboard.

One aiohttp application in the daemon's event loop (or alone, ``streamer serve``), its
routes in one module per resource:

- ``POST /detect``, ``/ocr``, ``/process``, ``/check_dues``: :mod:`streamer.api.seed`;
- ``/api/events``, ``/api/events/stream``, ``/api/cameras``, ``/api/cluster``, ``/evidence``:
  :mod:`streamer.api.events`;
- ``/api/dues/{plate}``: :mod:`streamer.api.dues`; ``/api/lists``: :mod:`streamer.api.lists`;
- ``GET /health``, ``/metrics`` (Prometheus) and ``/`` (the dashboard): here.

Blocking work (image decoding, detection, OCR, SQLite) runs in worker threads. A request
must name a known host, and a browser's write must come from the API's own page
(:mod:`streamer.api.hosts`); with a token configured, everything but ``/health`` needs
``Authorization: Bearer <token>`` or ``?token=``. Every bad request gets a 4xx with a JSON
``{"error"}`` and one log line, with what the client sent escaped
(:func:`~streamer.api.requests.printable`); connections are capped and timed out
(:mod:`streamer.api.connections`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources

from aiohttp import web

from streamer.api.connections import ConnectionGuard, ProtocolLogger
from streamer.api.dues import DuesRoutes
from streamer.api.events import EventRoutes
from streamer.api.hosts import HostCheck
from streamer.api.lists import ListRoutes
from streamer.api.metrics import CONTENT_TYPE, Metrics
from streamer.api.requests import ApiError, printable
from streamer.api.seed import SeedRoutes
from streamer.cluster.deployment import Deployment
from streamer.config import Config, HttpConfig
from streamer.events import CameraSnapshot
from streamer.stills import StillPipeline
from streamer.stores.dues import DuesStore
from streamer.stores.history import EventHistory
from streamer.stores.lists import SqlLists

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Api:
    """The HTTP application of one daemon (or of ``streamer serve``)."""

    def __init__(
        self,
        config: Config,
        stills: StillPipeline,
        dues: DuesStore,
        lists: SqlLists,
        history: EventHistory,
        deployment: Deployment,
        metrics: Metrics,
        snapshots: Callable[[], Sequence[CameraSnapshot]],
    ) -> None:
        self.http: HttpConfig = config.http
        self.hosts = HostCheck(config.http.host, config.http.allowed_hosts)
        self.history = history
        self.metrics = metrics
        self.snapshots = snapshots
        self.routes = (
            SeedRoutes(stills, dues, config.http),
            EventRoutes(
                history,
                deployment.events(history),
                deployment,
                snapshots,
                config.recordings.directory,
                config.http.stream_limit,
            ),
            DuesRoutes(dues, config.http.timeout_s),
            ListRoutes(lists, config.lists, config.http.timeout_s),
        )
        self.runner: web.AppRunner | None = None
        self.server: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.port: int | None = None

    def application(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(
            middlewares=[self._errors, self._hosts, self._auth],
            client_max_size=int(self.http.max_upload_mb * 1_000_000),
        )
        app.router.add_get("/", self.dashboard)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_text)
        for routes in self.routes:
            routes.add_to(app)
        return app

    async def start(self) -> int:
        """Listen on the configured address; returns the port (useful with port 0).

        Raises:
            OSError: naming the address when it cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self.runner = web.AppRunner(
            self.application(),
            access_log=None,
            # A connection must send a whole request within this time (aiohttp's timer
            # starts at connect and after each response, and data does not reset it).
            keepalive_timeout=self.http.timeout_s,
            # After an error answered before the body was read, wait this long at most
            # for the rest of the body before closing.
            lingering_time=min(2.0, self.http.timeout_s),
            logger=ProtocolLogger(logging.getLogger("aiohttp.server")),
        )
        await self.runner.setup()
        assert self.runner.server is not None
        self.guard = ConnectionGuard(self.runner.server, self.http.max_connections)
        try:
            self.server = await loop.create_server(
                self.guard, self.http.host, self.http.port, reuse_address=True
            )
        except OSError as error:
            await self.runner.cleanup()
            raise OSError(
                f"http: cannot listen on {self.http.host}:{self.http.port} ({error.strerror})"
            ) from None
        self.port = int(self.server.sockets[0].getsockname()[1])
        logger.info("HTTP API and dashboard on http://%s:%d/", self.http.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and close the live streams."""
        self.history.close()  # wakes the stream handlers, which then end
        if self.server is not None:
            self.server.close()
        if self.runner is not None:
            await self.runner.cleanup()  # closes the open connections

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.guard is not None:
            self.guard.busy(request.transport)
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, f"upload larger than {self.http.max_upload_mb:g} MB") from None
        except ApiError as error:
            # One line each; a client's errors at debug, so a flood of them cannot fill
            # the log.
            logger.log(
                error.level,
                "%s %s: %d %s%s",
                printable(request.method),
                printable(request.path),
                error.status,
                error.text,
                error.note,
            )
            raise
        except web.HTTPException as error:
            if error.status_code >= 400:
                raise ApiError(error.status_code, error.reason) from None
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nobody to answer
        except Exception:
            logger.exception("%s %s failed", printable(request.method), printable(request.path))
            raise ApiError(500, "internal error; the daemon's log has the details") from None
        finally:
            if self.guard is not None:
                self.guard.idle(request.transport)

    @web.middleware
    async def _hosts(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")  # aiohttp refuses a request with two
        refused = self.hosts.host_refused(host) or self.hosts.origin_refused(
            request.method, request.headers.get("Origin"), host
        )
        if refused:
            raise ApiError(403, refused)
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.http.token
        if token and request.path != "/health":
            # The scheme is case-insensitive (RFC 9110); a header that is not UTF-8 is
            # compared as the bytes it was (aiohttp keeps them as surrogates).
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            given = (
                credentials.strip()
                if scheme.lower() == "bearer"
                else request.query.get("token", "")
            )
            if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
                raise ApiError(401, "missing or wrong token (Authorization: Bearer <token>)")
        return await handler(request)

    async def dashboard(self, request: web.Request) -> web.Response:
        page = resources.files("streamer.api").joinpath("web/dashboard.html").read_text("utf-8")
        return web.Response(text=page, content_type="text/html")

    async def health(self, request: web.Request) -> web.Response:
        cameras = {camera.name: camera.state for camera in self.snapshots()}
        return web.json_response({"status": "ok", "cameras": cameras})

    async def metrics_text(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
