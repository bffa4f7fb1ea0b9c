"""The HTTP API: the seed's four endpoints, operations, the live dashboard.

One aiohttp application in the daemon's event loop (or alone, ``streamer serve``):

- ``POST /detect``, ``/ocr``, ``/process`` (multipart field ``file``) and ``/check_dues``
  (JSON ``{"plate_number"}``) answer in the seed services' JSON shapes;
- ``GET /health``, ``/metrics`` (Prometheus), ``/api/events`` (recent, filtered, paged;
  a cluster's from its database),
  ``/api/events/stream`` (server-sent events), ``/api/cameras`` (a cluster's: every
  node's cameras), ``/api/cluster`` (its nodes),
  ``GET/PUT/DELETE /api/dues/{plate}``, the plate lists (:mod:`streamer.api.lists`);
- ``GET /`` the dashboard, ``/evidence/...`` the crops and snapshots it shows.

Blocking work (image decoding, detection, OCR, SQLite) runs in worker threads. With a
token configured, everything but ``/health`` needs ``Authorization: Bearer <token>`` or
``?token=``. Every bad request gets a 4xx with a JSON ``{"error"}`` and one log line;
connections are capped and timed out (:mod:`streamer.api.connections`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
from aiohttp import web

from streamer.api.connections import ConnectionGuard, ProtocolLogger
from streamer.api.images import ImageError, ImageProcessor, decode_image
from streamer.api.lists import ListRoutes
from streamer.api.metrics import CONTENT_TYPE, Metrics
from streamer.api.requests import ApiError, flag, integer, plate_param, read_json, read_upload
from streamer.cluster import Leases
from streamer.config import Config, HttpConfig, mask_url
from streamer.events import iso
from streamer.pipeline import CameraSnapshot
from streamer.reading.plates import normalise
from streamer.stores.dues import DuesError, DuesStore, dues_amount
from streamer.stores.history import EventHistory
from streamer.stores.lists import SqlLists
from streamer.stores.records import StoreError, note_text
from streamer.stores.shared_history import SharedHistory

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds between keep-alive comments on an idle live stream.
KEEPALIVE_S = 15


class Api:
    """The HTTP application of one daemon (or of ``streamer serve``)."""

    def __init__(
        self,
        config: Config,
        processor: ImageProcessor,
        dues: DuesStore,
        lists: SqlLists,
        history: EventHistory,
        metrics: Metrics,
        snapshots: Callable[[], Sequence[CameraSnapshot]] = tuple,
        leases: Leases | None = None,
        shared: SharedHistory | None = None,
    ) -> None:
        self.config = config
        self.http: HttpConfig = config.http
        self.processor = processor
        self.dues = dues
        self.lists = ListRoutes(lists, config.lists, config.http.timeout_s)
        self.history = history
        self.metrics = metrics
        self.snapshots = snapshots
        self.leases = leases
        #: A cluster's events, which /api/events shows instead of this node's.
        self.shared = shared
        self.runner: web.AppRunner | None = None
        self.server: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.port: int | None = None
        self._images = 0  # uploads being handled

    def application(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(
            middlewares=[self._errors, self._auth],
            client_max_size=int(self.http.max_upload_mb * 1_000_000),
        )
        app.router.add_get("/", self.dashboard)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_text)
        app.router.add_post("/detect", self.detect)
        app.router.add_post("/ocr", self.ocr)
        app.router.add_post("/check_dues", self.check_dues)
        app.router.add_post("/process", self.process)
        app.router.add_get("/api/events", self.events)
        app.router.add_get("/api/events/stream", self.stream)
        app.router.add_get("/api/cameras", self.cameras)
        app.router.add_get("/api/cluster", self.cluster)
        app.router.add_get("/api/dues/{plate}", self.get_dues)
        app.router.add_put("/api/dues/{plate}", self.put_dues)
        app.router.add_delete("/api/dues/{plate}", self.delete_dues)
        self.lists.add_to(app)
        app.router.add_get("/evidence/{path:.+}", self.evidence)
        return app

    async def start(self) -> int:
        """Listen on the configured address; returns the port (useful with port 0).

        Raises:
            OSError: naming the address when it cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self.history.loop = loop
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
            level = logging.WARNING if error.status_code >= 500 else logging.DEBUG
            logger.log(
                level, "%s %s: %d %s", request.method, request.path, error.status, error.text
            )
            raise
        except web.HTTPException as error:
            if error.status_code >= 400:
                raise ApiError(error.status_code, error.reason) from None
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise  # the client went away: nobody to answer
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            raise ApiError(500, "internal error; the daemon's log has the details") from None
        finally:
            if self.guard is not None:
                self.guard.idle(request.transport)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.http.token
        if token and request.path != "/health":
            header = request.headers.get("Authorization", "")
            given = (
                header.removeprefix("Bearer ").strip()
                if header.startswith("Bearer ")
                else request.query.get("token", "")
            )
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise ApiError(401, "missing or wrong token (Authorization: Bearer <token>)")
        return await handler(request)

    async def _on_image(
        self, request: web.Request, work: Callable[[np.ndarray], dict[str, Any]]
    ) -> web.Response:
        """Answer ``work(image)`` for the uploaded image: at most
        ``http.max_concurrent_images`` at once, decoded and worked on in a thread."""
        if self._images >= self.http.max_concurrent_images:
            raise ApiError(
                503,
                f"busy: {self._images} images being processed (http.max_concurrent_images)",
                headers={"Retry-After": "1"},
            )
        self._images += 1
        try:
            data = await read_upload(request, self.http.timeout_s)
            limit = self.http.max_image_pixels
            try:
                result = await asyncio.to_thread(lambda: work(decode_image(data, limit)))
            except ImageError as error:
                raise ApiError(400, f"file: {error}") from None
        finally:
            self._images -= 1
        return web.json_response(result)

    async def dashboard(self, request: web.Request) -> web.Response:
        page = resources.files("streamer.api").joinpath("web/dashboard.html").read_text("utf-8")
        return web.Response(text=page, content_type="text/html")

    async def health(self, request: web.Request) -> web.Response:
        cameras = {camera.name: camera.state for camera in self.snapshots()}
        return web.json_response({"status": "ok", "cameras": cameras})

    async def metrics_text(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def detect(self, request: web.Request) -> web.Response:
        return await self._on_image(request, self.processor.detect)

    async def ocr(self, request: web.Request) -> web.Response:
        return await self._on_image(request, self.processor.ocr)

    async def process(self, request: web.Request) -> web.Response:
        return await self._on_image(request, self.processor.process)

    async def check_dues(self, request: web.Request) -> web.Response:
        body = await read_json(request, self.http.timeout_s)
        plate = body.get("plate_number")
        if not isinstance(plate, str) or not normalise(plate):
            raise ApiError(400, "plate_number: required string with letters or digits")
        result = await asyncio.to_thread(self.dues.lookup, plate)
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def events(self, request: web.Request) -> web.Response:
        query = request.query
        plate = normalise(query["plate"]) if query.get("plate") else None
        source = self.shared or self.history
        try:
            page, total = await asyncio.to_thread(
                source.query,
                plate,
                query.get("camera") or None,
                flag(query.get("dues_pending"), "dues_pending"),
                integer(query.get("limit"), "limit", 50, 1, 1000),
                integer(query.get("offset"), "offset", 0, 0, 10**9),
            )
        except StoreError as error:
            raise ApiError(503, str(error), headers={"Retry-After": "5"}) from None
        return web.json_response({"events": page, "total": total})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue = self.history.subscribe()
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    record = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if not record:
                    break
                data = json.dumps(record, separators=(",", ":"))
                await response.write(f"event: {record['type']}\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.history.unsubscribe(queue)
        return response

    async def cluster(self, request: web.Request) -> web.Response:
        if self.leases is None:
            raise ApiError(404, "not a cluster (cluster.database is not set)")
        return web.json_response(await self._overview())

    async def _overview(self) -> dict[str, Any]:
        assert self.leases is not None
        try:
            return await asyncio.to_thread(self.leases.overview)
        except StoreError as error:
            raise ApiError(503, str(error), headers={"Retry-After": "5"}) from None

    async def cameras(self, request: web.Request) -> web.Response:
        cameras = [
            {
                "name": camera.name,
                "node": self.leases.node if self.leases else None,
                "source": camera.source,
                "status": camera.state,
                "fps": round(camera.fps, 1),
                "frames": camera.frames,
                "detected": camera.detected,
                "still": camera.still,
                "skipped": camera.skipped,
                "events": camera.events,
                "last_frame_at": iso(camera.last_frame_at) if camera.last_frame_at else None,
                "error": camera.error,
            }
            for camera in self.snapshots()
        ]
        if self.leases is not None:  # the other nodes' cameras, as their holders report
            held = (await self._overview())["cameras"]
            local = {camera["name"] for camera in cameras}
            for camera in self.config.cameras:
                if camera.enabled and camera.name not in local:
                    other = held.get(camera.name, {"node": None, "status": "unassigned"})
                    cameras.append({"name": camera.name, "source": mask_url(camera.source)})
                    cameras[-1].update(other)
        return web.json_response({"cameras": cameras})

    async def get_dues(self, request: web.Request) -> web.Response:
        plate = plate_param(request)
        result = await asyncio.to_thread(self.dues.lookup, plate)
        if not result.found:
            raise ApiError(404, f"{plate}: not in the dues database")
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def put_dues(self, request: web.Request) -> web.Response:
        plate = plate_param(request)
        body = await read_json(request, self.http.timeout_s)
        amount = body.get("amount")
        try:
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise DuesError(f"required non-negative number (got {amount!r})")
            amount = dues_amount(amount)  # finite: NaN, Infinity and 1e400 are refused
        except DuesError as error:
            raise ApiError(400, f"amount: {error}") from None
        try:
            message = note_text(body.get("message", ""))
        except StoreError as error:
            raise ApiError(400, str(error)) from None
        await asyncio.to_thread(self.dues.set, plate, float(amount), message)
        result = await asyncio.to_thread(self.dues.lookup, plate)
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def delete_dues(self, request: web.Request) -> web.Response:
        plate = plate_param(request)
        if not await asyncio.to_thread(self.dues.clear, plate):
            raise ApiError(404, f"{plate}: not in the dues database")
        return web.Response(status=204)

    async def evidence(self, request: web.Request) -> web.Response:
        root = self.config.recordings.directory.resolve()
        try:
            path = (root / request.match_info["path"]).resolve()
            found = path.is_relative_to(root) and path.suffix == ".jpg" and path.is_file()
        except (OSError, ValueError, RuntimeError):
            found = False  # a NUL, a name too long, a symlink loop
        if not found:
            raise ApiError(404, "no such evidence file")
        try:  # a crop or snapshot: small enough to send whole (no ranges)
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:
            raise ApiError(404, "no such evidence file") from None
        return web.Response(body=data, content_type="image/jpeg")
