"""The seed services' four endpoints, in their JSON shapes (part of
:class:`~streamer.api.app.Api`):

- ``POST /detect``, ``/ocr``, ``/process`` with the image in the multipart field ``file``:
  the still-photo pipeline (:class:`~streamer.stills.StillPipeline`); at most
  ``http.max_concurrent_images`` at once (then 503 with ``Retry-After``: a burst of such
  refusals is one warning in the log), each decoded and worked on in a thread;
- ``POST /check_dues`` with JSON ``{"plate_number"}``: the dues of one plate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import web

from streamer.api.requests import ApiError, Refusals, read_json, read_upload
from streamer.config import HttpConfig
from streamer.reading.plates import normalise
from streamer.sources.photos import ImageError, decode_image
from streamer.stills import StillPipeline
from streamer.stores.dues import Dues


class SeedRoutes:
    """The handlers of ``/detect``, ``/ocr``, ``/process`` and ``/check_dues``."""

    def __init__(self, stills: StillPipeline, dues: Dues, http: HttpConfig) -> None:
        self.stills = stills
        self.dues = dues
        self.http = http
        self._images = 0  # uploads being handled
        self._refusals = Refusals()

    def add_to(self, app: web.Application) -> None:
        """Register the routes on ``app``."""
        app.router.add_post("/detect", self.detect)
        app.router.add_post("/ocr", self.ocr)
        app.router.add_post("/check_dues", self.check_dues)
        app.router.add_post("/process", self.process)

    async def _on_image(
        self, request: web.Request, work: Callable[[np.ndarray], dict[str, Any]]
    ) -> web.Response:
        """Answer ``work(image)`` for the uploaded image: at most
        ``http.max_concurrent_images`` at once, decoded and worked on in a thread."""
        if self._images >= self.http.max_concurrent_images:
            raise self._refusals.error(
                f"busy: {self._images} images being processed (http.max_concurrent_images)", 1
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

    async def detect(self, request: web.Request) -> web.Response:
        return await self._on_image(request, self.stills.detect)

    async def ocr(self, request: web.Request) -> web.Response:
        return await self._on_image(request, self.stills.ocr)

    async def process(self, request: web.Request) -> web.Response:
        return await self._on_image(request, self.stills.process)

    async def check_dues(self, request: web.Request) -> web.Response:
        body = await read_json(request, self.http.timeout_s)
        plate = body.get("plate_number")
        if not isinstance(plate, str) or not normalise(plate):
            raise ApiError(400, "plate_number: required string with letters or digits")
        result = await asyncio.to_thread(self.dues.lookup, plate)
        return web.json_response({"plate_number": plate, **result.to_json()})
