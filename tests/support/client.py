"""A client of the HTTP API in tests: one request with the token, an image upload."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import cv2
import numpy as np

TOKEN = "t0k3n"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def call(
    method: str,
    url: str,
    *,
    data: Any = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request; returns the status and the JSON (or text) answer."""

    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, url, data=data, json=json_body, headers=AUTH if headers is None else headers
            ) as response,
        ):
            body = await response.read()
            try:
                return response.status, json.loads(body)
            except ValueError:
                try:
                    return response.status, body.decode()
                except UnicodeDecodeError:
                    return response.status, body

    return asyncio.run(go())


def upload(image_bytes: bytes, name: str = "frame.png") -> aiohttp.FormData:
    form = aiohttp.FormData()  # a stream: aiohttp warns of large bytes sent whole
    form.add_field("file", io.BytesIO(image_bytes), filename=name, content_type="image/png")
    return form


def upload_as(field: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, b"\x89PNG", filename="x.png", content_type="image/png")
    return form
