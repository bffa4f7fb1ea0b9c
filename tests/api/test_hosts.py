"""The API against DNS rebinding and cross-site writes: real HTTP requests carrying the
Host and Origin headers a hostile page in a browser on this machine would make them carry,
to a daemon with the default setup (no token, 127.0.0.1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from streamer.reading.ocr import OcrEngine
from streamer.vision.detect import YoloDetector

from support.daemon import ServiceThread, make_config

PLATE = "KA01AB1234"


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, detector: YoloDetector, engine: OcrEngine
) -> Iterator[ServiceThread]:
    """``streamer serve`` as installed: no token, on 127.0.0.1, with a residents list;
    reachable by one extra name."""
    tmp_path = tmp_path_factory.mktemp("hosts")
    config = make_config(
        tmp_path,
        http={"enabled": True, "port": 0, "allowed_hosts": ["gate.example.com", "*.corp.lan"]},
        lists={"residents": None},
    )
    with ServiceThread(config, detector, engine, serve_only=True) as running:
        yield running


def send(daemon: ServiceThread, method: str, path: str, **headers: str) -> requests.Response:
    body = {"amount": 5} if "dues" in path else {} if method == "PUT" else None
    return requests.request(method, f"{daemon.url}{path}", json=body, headers=headers, timeout=10)


def residents(daemon: ServiceThread) -> list[str]:
    entries = send(daemon, "GET", "/api/lists/residents").json()["entries"]
    return [entry["plate_number"] for entry in entries]


def test_a_rebound_name_can_neither_read_nor_change_anything(daemon: ServiceThread) -> None:
    port = daemon.url.rsplit(":", 1)[1]
    attacker = f"attacker.example:{port}"  # its name, now resolving to 127.0.0.1
    for method, path in [
        ("GET", "/api/events"),
        ("GET", "/api/lists/residents"),
        ("GET", "/"),
        ("GET", "/health"),
        ("PUT", f"/api/lists/residents/{PLATE}"),
        ("PUT", f"/api/dues/{PLATE}"),
        ("DELETE", f"/api/dues/{PLATE}"),
    ]:
        # Same origin as far as the browser knows: its Origin is the attacker's name too.
        answer = send(daemon, method, path, Host=attacker, Origin=f"http://{attacker}")
        assert answer.status_code == 403, (method, path, answer.text)
        assert "http.allowed_hosts" in answer.json()["error"]
    assert residents(daemon) == []
    assert send(daemon, "GET", f"/api/dues/{PLATE}").status_code == 404  # still none


def test_a_cross_site_page_cannot_write(daemon: ServiceThread) -> None:
    for origin in ("http://attacker.example", "null", f"{daemon.url.rsplit(':', 1)[0]}:1"):
        for method, path in [
            ("PUT", f"/api/lists/residents/{PLATE}"),
            ("PUT", f"/api/dues/{PLATE}"),
            ("DELETE", f"/api/lists/residents/{PLATE}"),
            ("POST", "/check_dues"),
        ]:
            answer = send(daemon, method, path, Origin=origin)
            assert answer.status_code == 403, (origin, method, path, answer.text)
            assert "another site" in answer.json()["error"]
        # A read is answered: the browser does not let the page see the answer.
        assert send(daemon, "GET", "/api/events", Origin=origin).status_code == 200
    assert residents(daemon) == []


def test_the_api_answers_its_own_names_and_pages(daemon: ServiceThread) -> None:
    port = daemon.url.rsplit(":", 1)[1]
    names = ["127.0.0.1", "localhost", "[::1]", "LocalHost.", "gate.example.com", "a.corp.lan"]
    names += [socket.gethostname(), f"{socket.gethostname()}.local"]
    for name in names:
        host = f"{name}:{port}"
        answer = send(daemon, "PUT", f"/api/lists/residents/{PLATE}", Host=host)
        assert answer.status_code == 200, (name, answer.text)
        answer = send(
            daemon, "DELETE", f"/api/lists/residents/{PLATE}", Host=host, Origin=f"http://{host}"
        )
        assert answer.status_code == 204, (name, answer.text)
    # A proxy's public name, from its page, to the API as the proxy addresses it.
    answer = send(daemon, "PUT", f"/api/dues/{PLATE}", Origin="https://gate.example.com")
    assert answer.status_code == 200, answer.text
    # No Origin (curl, a script, the CLI): not a browser page.
    assert send(daemon, "DELETE", f"/api/dues/{PLATE}").status_code == 204


def test_a_host_header_that_is_no_name_is_refused(daemon: ServiceThread) -> None:
    host, port = daemon.url.removeprefix("http://").split(":")
    for value in (b"", b"a b", b"h:99999", b"[::1", b"\xff\xfe", b"x@127.0.0.1"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"GET /health HTTP/1.1\r\nHost: " + value + b"\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 403")), (value, answer[:200])
