"""The plate lists over HTTP: ``/api/lists`` (part of :class:`~streamer.api.app.Api`).

- ``GET /api/lists``: each declared list with its description, its count of entries that
  have not expired, and its file when the list is a file;
- ``GET /api/lists/{name}?limit=100&offset=0``: a page of the list's entries (expired ones
  too, ordered by plate), and ``total``, how many it holds;
- ``PUT /api/lists/{name}/{plate}`` with JSON ``{"note", "expires"}`` (both optional):
  puts the plate on the list, or changes its entry;
- ``DELETE /api/lists/{name}/{plate}``: takes it off.

An unknown list is 404; a list that is a file cannot be changed here (409).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from streamer.api.requests import ApiError, integer, plate_param, read_json
from streamer.config import ListConfig
from streamer.stores.lists import SqlLists
from streamer.stores.records import StoreError

#: Entries per page of ``GET /api/lists/{name}`` unless ``limit`` says otherwise, and the most
#: it may ask for.
PAGE, MAX_PAGE = 100, 1000


class ListRoutes:
    """The handlers of ``/api/lists``."""

    def __init__(self, lists: SqlLists, config: dict[str, ListConfig], timeout_s: float) -> None:
        self.lists = lists
        self.config = config
        self.timeout_s = timeout_s

    def add_to(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_get("/api/lists", self.index)
        app.router.add_get("/api/lists/{name}", self.show)
        app.router.add_put("/api/lists/{name}/{plate}", self.put)
        app.router.add_delete("/api/lists/{name}/{plate}", self.delete)

    async def index(self, request: web.Request) -> web.Response:
        counts = await asyncio.to_thread(self.lists.counts)
        lists = [
            {
                "name": name,
                "description": entry.description,
                "entries": counts.get(name, 0),
                "file": None if entry.file is None else str(entry.file),
            }
            for name, entry in self.config.items()
        ]
        return web.json_response({"lists": lists})

    def _name(self, request: web.Request, change: bool = False) -> str:
        name = request.match_info["name"]
        if name not in self.config:
            known = ", ".join(sorted(self.config)) or "none"
            raise ApiError(404, f"no list {name!r} (lists: {known})")
        file = self.config[name].file
        if change and file is not None:
            raise ApiError(409, f"list {name} is the file {file}: edit the file instead")
        return name

    async def show(self, request: web.Request) -> web.Response:
        name = self._name(request)
        limit = integer(request.query.get("limit"), "limit", PAGE, 1, MAX_PAGE)
        offset = integer(request.query.get("offset"), "offset", 0, 0, 10**9)
        entries, total = await asyncio.to_thread(self.lists.page, name, limit, offset)
        return web.json_response(
            {
                "name": name,
                "entries": [entry.to_json() for entry in entries],
                "total": total,
                "limit": limit,
                "offset": offset,
            }
        )

    async def put(self, request: web.Request) -> web.Response:
        name, plate = self._name(request, change=True), plate_param(request)
        body = await read_json(request, self.timeout_s)
        unknown = sorted(set(body) - {"note", "expires"})
        if unknown:
            raise ApiError(400, f"{unknown[0]}: unknown key (note, expires)")
        try:
            entry = await asyncio.to_thread(
                self.lists.add, name, plate, body.get("note", ""), body.get("expires")
            )
        except StoreError as error:
            raise ApiError(400, str(error)) from None
        return web.json_response(entry.to_json())

    async def delete(self, request: web.Request) -> web.Response:
        name, plate = self._name(request, change=True), plate_param(request)
        if not await asyncio.to_thread(self.lists.remove, name, plate):
            raise ApiError(404, f"{plate}: not on list {name}")
        return web.Response(status=204)
