"""What the daemon saw, over HTTP (part of :class:`~streamer.api.app.Api`):

- ``GET /api/events``: recent plate events, newest first, filtered and paged (a cluster's:
  every node's, from its database);
- ``GET /api/events/stream``: every new event as a server-sent event, to at most
  ``http.max_streams`` clients at once (then 503 with ``Retry-After``);
- ``GET /api/cameras``: each camera's state and counters (a cluster's: every node's);
- ``GET /api/cluster``: the cluster's nodes and leases (404 on a daemon on its own);
- ``GET /evidence/...``: the crops and snapshots the events name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from streamer.api.requests import ApiError, Refusals, flag, integer
from streamer.cluster.deployment import Deployment, NotAClusterError
from streamer.events import CameraSnapshot, compact_json, iso
from streamer.reading.plates import normalise
from streamer.stores.history import EventHistory, EventQuery
from streamer.stores.records import StoreError

#: Seconds between keep-alive comments on an idle live stream.
KEEPALIVE_S = 15
#: Seconds a client refused a live stream is asked to wait (EventSource waits about 3).
STREAM_RETRY_S = 10


class EventRoutes:
    """The handlers of ``/api/events``, ``/api/cameras``, ``/api/cluster`` and ``/evidence``."""

    def __init__(
        self,
        history: EventHistory,
        events: EventQuery,
        deployment: Deployment,
        snapshots: Callable[[], Sequence[CameraSnapshot]],
        evidence: Path,
        max_streams: int,
    ) -> None:
        self.history = history
        self.events = events
        self.deployment = deployment
        self.snapshots = snapshots
        self.evidence_root = evidence
        self.max_streams = max_streams
        self.streams = 0  # live streams open now
        self._refusals = Refusals()

    def add_to(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/api/events", self.list)
        app.router.add_get("/api/events/stream", self.stream)
        app.router.add_get("/api/cameras", self.cameras)
        app.router.add_get("/api/cluster", self.cluster)
        app.router.add_get("/evidence/{path:.+}", self.evidence)

    async def list(self, request: web.Request) -> web.Response:
        query = request.query
        plate = normalise(query["plate"]) if query.get("plate") else None
        try:
            page, total = await asyncio.to_thread(
                self.events.query,
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
        if self.streams >= self.max_streams:
            raise self._refusals.error(
                f"busy: {self.streams} live streams open (http.max_streams)", STREAM_RETRY_S
            )
        self.streams += 1
        try:
            return await self._stream(request)
        finally:
            self.streams -= 1

    async def _stream(self, request: web.Request) -> web.StreamResponse:
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
                data = compact_json(record)
                await response.write(f"event: {record['type']}\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.history.unsubscribe(queue)
        return response

    async def cluster(self, request: web.Request) -> web.Response:
        try:
            overview = await asyncio.to_thread(self.deployment.overview)
        except NotAClusterError as error:
            raise ApiError(404, str(error)) from None
        except StoreError as error:
            raise ApiError(503, str(error), headers={"Retry-After": "5"}) from None
        return web.json_response(overview)

    async def cameras(self, request: web.Request) -> web.Response:
        cameras: list[dict[str, Any]] = [
            {
                "name": camera.name,
                "node": self.deployment.node,
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
        local = {camera["name"] for camera in cameras}
        try:  # a cluster's other cameras, as their holders report
            cameras += await asyncio.to_thread(self.deployment.others, local)
        except StoreError as error:
            raise ApiError(503, str(error), headers={"Retry-After": "5"}) from None
        return web.json_response({"cameras": cameras})

    async def evidence(self, request: web.Request) -> web.Response:
        root = self.evidence_root.resolve()
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
