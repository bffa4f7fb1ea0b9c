"""What a client sends the API, read with bounds: the body within a time limit, a multipart
upload, a JSON object, query flags and integers. Whatever is wrong with it is an
:class:`ApiError`: a 4xx answered as JSON ``{"error": ...}`` that names what was expected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streamer.stores.records import StoreError, plate_key


class ApiError(web.HTTPException):
    """An error answered as JSON ``{"error": message}`` with ``status``, and logged in one
    line at ``level`` (default: debug for a client's error, warning for the server's),
    followed by ``note``."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        level: int | None = None,
        note: str = "",
    ) -> None:
        self.status_code = status
        #: Said after the error in its log line, not to the client.
        self.note = note
        self.level = (
            level if level is not None else logging.WARNING if status >= 500 else logging.DEBUG
        )
        super().__init__(
            text=json.dumps({"error": message}), content_type="application/json", headers=headers
        )


def printable(value: str, limit: int = 300) -> str:
    """``value`` as it may go into a log line: control characters, line breaks and other
    invisible ones escaped (``\\n``, ``\\x00``, ``\\u2028``), so that a request cannot
    write lines of its own into the log; cut to ``limit`` characters.

    Example:
        >>> printable("/x\\n2026-01-01 00:00:00 INFO forged")
        '/x\\\\n2026-01-01 00:00:00 INFO forged'
    """
    if len(value) > limit:
        value = value[:limit] + "..."
    if value.isprintable():
        return value
    return "".join(char if char.isprintable() else _escape(char) for char in value)


def _escape(char: str) -> str:
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


class Refusals:
    """Requests refused for want of room (busy uploads, too many live streams), logged
    without flooding the log: the first of a burst as a warning, the others at debug
    level; a burst ends when none has come for :attr:`quiet_s` seconds."""

    def __init__(self, quiet_s: float = 60.0) -> None:
        self.quiet_s = quiet_s
        self._last = -math.inf

    def error(self, message: str, retry_after_s: int) -> ApiError:
        """The 503 refusing one more request, logged at the level the burst calls for."""
        now = time.monotonic()
        starts, self._last = now - self._last > self.quiet_s, now
        note = f"; more are logged at debug level until none for {self.quiet_s:g} s"
        return ApiError(
            503,
            message,
            headers={"Retry-After": str(retry_after_s)},
            level=logging.WARNING if starts else logging.DEBUG,
            note=note if starts else "",
        )


def flag(value: str | None, name: str) -> bool | None:
    """The query parameter ``name`` as true/false (also 1/0, yes/no); ``None`` when absent."""
    if value is None:
        return None
    if value.lower() in {"true", "1", "yes"}:
        return True
    if value.lower() in {"false", "0", "no"}:
        return False
    raise ApiError(400, f"{name}: expected true or false (got {value!r})")


def integer(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as an integer from ``low`` to ``high``."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{name}: expected an integer (got {value!r})") from None
    if not low <= number <= high:
        raise ApiError(400, f"{name}: must be between {low} and {high} (got {number})")
    return number


async def read_body(read: Callable[[], Awaitable[Any]], what: str, timeout_s: float) -> Any:
    """The request body as ``read`` parses it, within ``timeout_s``; a body the client got
    wrong is a 400 naming ``what`` was expected.

    Raises:
        ApiError: 408 when the body is not received in time, 400 when it cannot be parsed.
        web.HTTPException: 413 when it is too large.
        OSError: when the connection broke.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await read()
    except TimeoutError:
        raise ApiError(408, f"body: not received within {timeout_s:g} s") from None
    except (web.HTTPException, OSError):
        raise
    except RecursionError:
        raise ApiError(400, f"body: nested too deeply; expected {what}") from None
    except Exception as error:
        # aiohttp's parsers raise ValueError, LookupError, AssertionError, zlib.error,
        # HttpProcessingError… on malformed bodies; all of them are the client's.
        detail = str(error)[:200] or type(error).__name__
        raise ApiError(400, f"body: expected {what} ({detail})") from None


async def read_upload(request: web.Request, timeout_s: float) -> bytes:
    """The bytes of the multipart field ``file``.

    Raises:
        ApiError: when the request is not multipart or has no such field.
    """
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "send the image as multipart/form-data in the field 'file'")
    form = await read_body(request.post, "multipart/form-data with a field 'file'", timeout_s)
    try:
        upload = form.get("file")
        if isinstance(upload, web.FileField):
            data: bytes = await asyncio.to_thread(upload.file.read)
            return data
        if isinstance(upload, bytes | bytearray):  # a part without a file name
            return bytes(upload)
        raise ApiError(400, "file: required multipart file field")
    finally:  # aiohttp spools each file part to a temporary file: close them all now
        for value in form.values():
            if isinstance(value, web.FileField):
                value.file.close()


async def read_json(request: web.Request, timeout_s: float) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        ApiError: when it is not one.
    """
    body = await read_body(request.json, "a JSON object", timeout_s)
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    return body


def plate_param(request: web.Request) -> str:
    """The ``{plate}`` of the path, as the stores key it."""
    try:
        return plate_key(request.match_info["plate"])
    except StoreError as error:
        raise ApiError(400, f"plate: {error}") from None
