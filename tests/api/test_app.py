"""The HTTP API against the real server, with real frames of the demo recording."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from streamer.config import load_config
from streamer.reading.ocr import OcrEngine
from streamer.vision.detect import YoloDetector

from support.client import AUTH, TOKEN, call, upload, upload_as
from support.daemon import ServiceThread, write_config


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
        # The scheme is case-insensitive (RFC 9110).
        ({"Authorization": f"bearer {TOKEN}"}, "", 200),
        ({"Authorization": f"BEARER  {TOKEN} "}, "", 200),
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


def raw(server: ServiceThread, request: bytes) -> bytes:
    """Send ``request`` as it is on its own connection; the whole answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_token_that_is_not_utf8_is_a_401_in_one_line(
    server: ServiceThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for value in (b"Bearer \xff\xfe", b"\xc3\x28", b"Bearer t0k3n\xed\xa0\x80"):
        answer = raw(
            server,
            b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
            b"Connection: close\r\n\r\n" % value,
        )
        assert answer.startswith(b"HTTP/1.1 401"), answer
        assert b'"error": "missing or wrong token' in answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno > logging.DEBUG]


def test_what_a_request_sends_cannot_forge_log_lines(
    server: ServiceThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    forged = "2026-01-01 00:00:00,000 ERROR streamer: forged"
    for separator in ("%0A", "%0D", "%0D%0A", "%E2%80%A8", "%C2%85", "%0B", "%00"):
        target = f"/api/dues/KA01{separator}{forged.replace(' ', '%20')}"
        for headers in ({}, AUTH):  # refused for want of a token, and a bad plate
            status, _ = call("GET", f"{server.url}{target}", headers=headers)
            assert status in (400, 401)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("streamer")]
    assert any("forged" in line for line in lines)  # logged, at debug level
    for line in lines:
        assert line.isprintable(), line


def test_a_token_read_from_a_file_keeps_working_without_its_newline(
    tmp_path: Path,
    detector: YoloDetector,
    engine: OcrEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = tmp_path / "token"
    secret.write_text(f"{TOKEN}\n")  # as `echo t0k3n > token` writes it
    monkeypatch.setenv("STREAMER_TOKEN", secret.read_text())
    path = write_config(
        tmp_path,
        [{"name": "cam", "source": str(tmp_path / "none.mp4")}],
        http={"enabled": True, "port": 0, "token": "${STREAMER_TOKEN}"},
    )
    caplog.set_level(logging.WARNING)
    config = load_config(path)
    with ServiceThread(config, detector, engine, serve_only=True) as daemon:
        assert call("GET", f"{daemon.url}/api/events")[0] == 200
        assert call("GET", f"{daemon.url}/api/events", headers={})[0] == 401
    (warning,) = [r.getMessage() for r in caplog.records if "http.token" in r.getMessage()]
    assert "line breaks" in warning
