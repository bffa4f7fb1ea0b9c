"""The HTTP API against the real server, with real frames of the demo recording."""

from __future__ import annotations

from typing import Any

import pytest

from support.client import AUTH, TOKEN, call, upload, upload_as
from support.daemon import ServiceThread


def test_health_needs_no_token(server: ServiceThread) -> None:
    assert call("GET", f"{server.url}/health", headers={}) == (200, {"status": "ok", "cameras": {}})


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer wrong"}, "", 401),
        (AUTH, "", 200),
        ({}, f"?token={TOKEN}", 200),
        ({"Authorization": TOKEN}, "", 401),
    ],
)
def test_token_guards_everything_else(
    server: ServiceThread, headers: dict[str, str], query: str, status: int
) -> None:
    for path in ("/api/events", "/api/cameras", "/metrics", "/"):
        code, body = call("GET", f"{server.url}{path}{query}", headers=headers)
        assert code == status, (path, body)
        if status == 401:
            assert "token" in body["error"]


JSON = {**AUTH, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        (
            "POST",
            "/process",
            {"data": upload(b"%PDF-1.4 not an image", "a.pdf")},
            400,
            "file: not an image",
        ),
        ("POST", "/detect", {"data": upload(b"")}, 400, "file: empty file"),
        ("POST", "/ocr", {"json_body": {"file": "x"}}, 400, "multipart/form-data"),
        ("POST", "/process", {"data": upload_as("image")}, 400, "file: required"),
        ("POST", "/process", {"data": upload(bytes(2_000_000))}, 413, "larger than 1 MB"),
        (
            "POST",
            "/check_dues",
            {"data": b"{not json", "headers": {**AUTH, "Content-Type": "application/json"}},
            400,
            "body: expected a JSON object",
        ),
        ("POST", "/check_dues", {"json_body": {"plate": "KA01"}}, 400, "plate_number:"),
        ("POST", "/check_dues", {"json_body": {"plate_number": 7}}, 400, "plate_number:"),
        ("PUT", "/api/dues/KA01AB1234", {"json_body": {"amount": -5}}, 400, "amount:"),
        ("PUT", "/api/dues/KA01AB1234", {"json_body": {"amount": "lots"}}, 400, "amount:"),
        *[
            ("PUT", "/api/dues/KA01AB1234", {"data": body, "headers": JSON}, 400, "finite")
            for body in (b'{"amount": NaN}', b'{"amount": Infinity}', b'{"amount": 1e400}')
        ],
        (
            "PUT",
            "/api/dues/KA01AB1234",
            {"data": b'{"amount": 1' + b"0" * 400 + b"}", "headers": JSON},
            400,
            "finite",
        ),
        ("GET", "/api/dues/%D0%9A%D0%9001", {}, 400, "only A-Z and 0-9"),
        ("GET", "/api/events?limit=0", {}, 400, "limit: must be between 1 and 1000"),
        ("GET", "/api/events?dues_pending=maybe", {}, 400, "dues_pending: expected true"),
        ("GET", "/evidence/gate/none.jpg", {}, 404, "no such evidence file"),
        ("GET", "/nowhere", {}, 404, "Not Found"),
    ],
)
def test_bad_requests_get_clear_errors(
    server: ServiceThread, method: str, path: str, kwargs: dict[str, Any], status: int, message: str
) -> None:
    code, body = call(method, f"{server.url}{path}", **kwargs)
    assert code == status, body
    assert message in body["error"]
