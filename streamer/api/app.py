"""The HTTP API: the seed's four endpoints, operations, the live dashboard.

One aiohttp application in the daemon's event loop (or alone, ``streamer serve``):

- ``POST /detect``, ``/ocr``, ``/process`` (multipart field ``file``) and ``/check_dues``
  (JSON ``{"plate_number"}``) answer in the seed services' JSON shapes;
- ``GET /health``, ``/metrics`` (Prometheus), ``/api/events`` (recent, filtered, paged),
  ``/api/events/stream`` (server-sent events), ``/api/cameras``,
  ``GET/PUT/DELETE /api/dues/{plate}``;
- ``GET /`` the dashboard, ``/evidence/...`` the crops and snapshots it shows.

Blocking work (detection, OCR, SQLite) runs in worker threads. With a token configured,
everything but ``/health`` needs ``Authorization: Bearer <token>`` or ``?token=``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

from aiohttp import web

from streamer.api.images import ImageError, ImageProcessor, decode_image
from streamer.api.metrics import CONTENT_TYPE, Metrics
from streamer.config import Config, HttpConfig
from streamer.events import iso
from streamer.pipeline import CameraSnapshot
from streamer.reading.plates import normalise
from streamer.stores.dues import DuesStore
from streamer.stores.history import EventHistory

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Seconds between keep-alive comments on an idle live stream.
KEEPALIVE_S = 15


class ApiError(web.HTTPException):
    """An error answered as JSON ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


def _flag(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in {"true", "1", "yes"}:
        return True
    if value.lower() in {"false", "0", "no"}:
        return False
    raise ApiError(400, f"{name}: expected true or false (got {value!r})")


def _integer(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{name}: expected an integer (got {value!r})") from None
    if not low <= number <= high:
        raise ApiError(400, f"{name}: must be between {low} and {high} (got {number})")
    return number


class Api:
    """The HTTP application of one daemon (or of ``streamer serve``)."""

    def __init__(
        self,
        config: Config,
        processor: ImageProcessor,
        dues: DuesStore,
        history: EventHistory,
        metrics: Metrics,
        snapshots: Callable[[], Sequence[CameraSnapshot]] = tuple,
    ) -> None:
        self.config = config
        self.http: HttpConfig = config.http
        self.processor = processor
        self.dues = dues
        self.history = history
        self.metrics = metrics
        self.snapshots = snapshots
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

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
        app.router.add_get("/api/dues/{plate}", self.get_dues)
        app.router.add_put("/api/dues/{plate}", self.put_dues)
        app.router.add_delete("/api/dues/{plate}", self.delete_dues)
        app.router.add_get("/evidence/{path:.+}", self.evidence)
        return app

    async def start(self) -> int:
        """Listen on the configured address; returns the port (useful with port 0).

        Raises:
            OSError: naming the address when it cannot be bound.
        """
        self.history.loop = asyncio.get_running_loop()
        self.runner = web.AppRunner(self.application(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.http.host, self.http.port)
        try:
            await site.start()
        except OSError as error:
            await self.runner.cleanup()
            raise OSError(
                f"http: cannot listen on {self.http.host}:{self.http.port} ({error.strerror})"
            ) from None
        addresses = self.runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.http.port
        logger.info("HTTP API and dashboard on http://%s:%d/", self.http.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and close the live streams."""
        self.history.close()  # wakes the stream handlers, which then end
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, f"upload larger than {self.http.max_upload_mb:g} MB") from None
        except ApiError:
            raise
        except web.HTTPException as error:
            if error.status_code >= 400:
                raise ApiError(error.status_code, error.reason) from None
            raise

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

    async def _upload(self, request: web.Request) -> bytes:
        if not request.content_type.startswith("multipart/"):
            raise ApiError(400, "send the image as multipart/form-data in the field 'file'")
        form = await request.post()
        upload = form.get("file")
        if isinstance(upload, web.FileField):
            data: bytes = upload.file.read()
            return data
        if isinstance(upload, bytes | bytearray):
            return bytes(upload)
        raise ApiError(400, "file: required multipart file field")

    async def _image(self, request: web.Request) -> Any:
        data = await self._upload(request)
        try:
            return decode_image(data)
        except ImageError as error:
            raise ApiError(400, f"file: {error}") from None

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "body: expected a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body: expected a JSON object")
        return body

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
        image = await self._image(request)
        return web.json_response(await asyncio.to_thread(self.processor.detect, image))

    async def ocr(self, request: web.Request) -> web.Response:
        image = await self._image(request)
        return web.json_response(await asyncio.to_thread(self.processor.ocr, image))

    async def process(self, request: web.Request) -> web.Response:
        image = await self._image(request)
        result = await asyncio.to_thread(self.processor.process, image)
        return web.json_response(result)

    async def check_dues(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        plate = body.get("plate_number")
        if not isinstance(plate, str) or not normalise(plate):
            raise ApiError(400, "plate_number: required string with letters or digits")
        result = await asyncio.to_thread(self.dues.lookup, plate)
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def events(self, request: web.Request) -> web.Response:
        query = request.query
        plate = normalise(query["plate"]) if query.get("plate") else None
        page, total = self.history.query(
            plate,
            query.get("camera") or None,
            _flag(query.get("dues_pending"), "dues_pending"),
            _integer(query.get("limit"), "limit", 50, 1, 1000),
            _integer(query.get("offset"), "offset", 0, 0, 10**9),
        )
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

    async def cameras(self, request: web.Request) -> web.Response:
        cameras = [
            {
                "name": camera.name,
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
        return web.json_response({"cameras": cameras})

    def _plate(self, request: web.Request) -> str:
        plate = normalise(request.match_info["plate"])
        if not plate:
            raise ApiError(400, "plate: needs letters or digits")
        return plate

    async def get_dues(self, request: web.Request) -> web.Response:
        plate = self._plate(request)
        result = await asyncio.to_thread(self.dues.lookup, plate)
        if not result.found:
            raise ApiError(404, f"{plate}: not in the dues database")
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def put_dues(self, request: web.Request) -> web.Response:
        plate = self._plate(request)
        body = await self._json(request)
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise ApiError(400, f"amount: required non-negative number (got {amount!r})")
        message = body.get("message", "")
        if not isinstance(message, str):
            raise ApiError(400, f"message: expected a string (got {message!r})")
        await asyncio.to_thread(self.dues.set, plate, float(amount), message)
        result = await asyncio.to_thread(self.dues.lookup, plate)
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def delete_dues(self, request: web.Request) -> web.Response:
        plate = self._plate(request)
        if not await asyncio.to_thread(self.dues.clear, plate):
            raise ApiError(404, f"{plate}: not in the dues database")
        return web.Response(status=204)

    async def evidence(self, request: web.Request) -> web.FileResponse:
        root = self.config.recordings.directory.resolve()
        path = (root / request.match_info["path"]).resolve()
        if not path.is_relative_to(root) or path.suffix != ".jpg" or not path.is_file():
            raise ApiError(404, "no such evidence file")
        return web.FileResponse(path)
