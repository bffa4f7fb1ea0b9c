"""The dues database over HTTP: ``/api/dues/{plate}`` (part of :class:`~streamer.api.app.Api`).

- ``GET``: the plate's dues (404 when it has no row);
- ``PUT`` with JSON ``{"amount", "message"}``: sets them;
- ``DELETE``: removes the row (404 when there was none).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from streamer.api.requests import ApiError, plate_param, read_json
from streamer.stores.dues import DuesError, DuesStore, dues_amount
from streamer.stores.records import StoreError, note_text


class DuesRoutes:
    """The handlers of ``/api/dues/{plate}``."""

    def __init__(self, dues: DuesStore, timeout_s: float) -> None:
        self.dues = dues
        self.timeout_s = timeout_s

    def add_to(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/api/dues/{plate}", self.get)
        app.router.add_put("/api/dues/{plate}", self.put)
        app.router.add_delete("/api/dues/{plate}", self.delete)

    async def get(self, request: web.Request) -> web.Response:
        plate = plate_param(request)
        result = await asyncio.to_thread(self.dues.lookup, plate)
        if not result.found:
            raise ApiError(404, f"{plate}: not in the dues database")
        return web.json_response({"plate_number": plate, **result.to_json()})

    async def put(self, request: web.Request) -> web.Response:
        plate = plate_param(request)
        body = await read_json(request, self.timeout_s)
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

    async def delete(self, request: web.Request) -> web.Response:
        plate = plate_param(request)
        if not await asyncio.to_thread(self.dues.clear, plate):
            raise ApiError(404, f"{plate}: not in the dues database")
        return web.Response(status=204)
