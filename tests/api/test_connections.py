"""The HTTP API under hostile input: malformed bodies, image bombs, slow and idle
connections, floods. Every bad request gets a 4xx with a JSON error and no traceback; the
server stays responsive. Against the real server, on raw sockets where a client library
would refuse to send the request."""

from __future__ import annotations

import logging
import socket
import struct
import time
import zlib
from collections.abc import Iterator

import pytest

from streamer.reading.ocr import OcrEngine
from streamer.sources.demo import DemoManifest
from streamer.sources.photos import ImageError, decode_image
from streamer.vision.detect import YoloDetector

from support.client import AUTH, call, png, upload
from support.daemon import ServiceThread, frame_at, make_config

TIMEOUT_S = 2.0
MAX_CONNECTIONS = 64
MAX_IMAGES = 2


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, detector: YoloDetector, engine: OcrEngine
) -> Iterator[ServiceThread]:
    """``streamer serve`` with short timeouts and small caps, so that the tests can reach
    them quickly."""
    tmp_path = tmp_path_factory.mktemp("limits")
    http = {
        "enabled": True,
        "port": 0,
        "timeout_s": TIMEOUT_S,
        "max_connections": MAX_CONNECTIONS,
        "max_concurrent_images": MAX_IMAGES,
        "max_image_pixels": 4_000_000,
    }
    with ServiceThread(make_config(tmp_path, http=http), detector, engine, True) as running:
        yield running


def address(server: ServiceThread) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(server: ServiceThread, request: bytes, timeout: float = 10.0) -> tuple[bytes, bytes]:
    """Send ``request`` as it is; returns the response's head and body."""
    with socket.create_connection(address(server), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def raw(server: ServiceThread, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send ``request`` as it is; returns the response's status and body."""
    head, body = exchange(server, request, timeout)
    return int(head.split(b" ")[1]), body


def post(path: str, content_type: str, body: bytes, *extra: str) -> bytes:
    """A POST with a Content-Length and ``Connection: close``."""
    headers = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *extra,
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


PART = b'Content-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png'
MULTIPART = "multipart/form-data; boundary=b"
MALFORMED_MULTIPART = {
    "no boundary": ("multipart/form-data", b"--b\r\n" + PART + b"\r\n\r\nxx\r\n--b--\r\n"),
    "empty body": (MULTIPART, b""),
    "no closing boundary": (MULTIPART, b"--b\r\n" + PART + b"\r\n\r\nxxxx"),
    "no Content-Disposition": (MULTIPART, b"--b\r\nContent-Type: image/png\r\n\r\nxx\r\n--b--\r\n"),
    "text field named file": (
        MULTIPART,
        b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nhello\r\n--b--\r\n',
    ),
    "unknown transfer encoding": (
        MULTIPART,
        b"--b\r\n" + PART + b"\r\nContent-Transfer-Encoding: rot13\r\n\r\nxx\r\n--b--\r\n",
    ),
    "broken base64": (
        MULTIPART,
        b"--b\r\n" + PART + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@\r\n--b--\r\n",
    ),
    "unknown charset": (
        MULTIPART,
        b'--b\r\nContent-Disposition: form-data; name="file"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nxx\r\n--b--\r\n",
    ),
    "part gzip that is not": (
        MULTIPART,
        b"--b\r\n" + PART + b"\r\nContent-Encoding: gzip\r\n\r\nxx\r\n--b--\r\n",
    ),
    "garbage": (MULTIPART, bytes(range(256)) * 4),
}


@pytest.mark.parametrize("path", ["/detect", "/ocr", "/process"])
@pytest.mark.parametrize("shape", sorted(MALFORMED_MULTIPART))
def test_malformed_multipart_is_a_400(
    server: ServiceThread, path: str, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    content_type, body = MALFORMED_MULTIPART[shape]
    status, answer = raw(server, post(path, content_type, body))
    assert status == 400, answer
    assert b'"error"' in answer
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_plain_body_declared_gzip_is_a_400(server: ServiceThread) -> None:
    body = b"--b\r\n" + PART + b"\r\n\r\nxx\r\n--b--\r\n"
    status, _ = raw(server, post("/process", MULTIPART, body, "Content-Encoding: gzip"))
    assert status == 400


def png_declaring(width: int, height: int, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose header declares ``width`` by ``height``, with one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def image_bomb() -> bytes:
    """A valid 1-bit PNG of 32000 by 32000: about 125 KB that decode to 3 GB of BGR."""
    row = b"\0" + bytes(4000)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(32000)) + compressor.flush()
    header = png_declaring(32000, 32000, bit_depth=1, colour=0)
    ihdr_end = 8 + 25
    idat = struct.pack(">I", len(data)) + b"IDAT" + data
    idat += struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return header[:ihdr_end] + idat + header[-12:]


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(image_bomb(), id="32000x32000 1-bit bomb"),
        pytest.param(png_declaring(60000, 60000), id="60000x60000 header"),
        pytest.param(png_declaring(2001, 2000), id="just over the limit"),
    ],
)
def test_images_over_the_pixel_limit_are_refused_before_decoding(
    server: ServiceThread, image: bytes
) -> None:
    started = time.monotonic()
    status, body = call("POST", f"{server.url}/process", data=upload(image), headers={})
    assert (status, body) == (400, {"error": body["error"]})
    assert "pixels" in body["error"], body
    assert "http.max_image_pixels" in body["error"], body
    assert time.monotonic() - started < 2, "the bomb was decoded"


def test_a_damaged_image_is_a_400(server: ServiceThread, demo_video: DemoManifest) -> None:
    good = png(frame_at(demo_video.path, 1.0))
    status, body = call("POST", f"{server.url}/detect", data=upload(good[: len(good) // 3]))
    assert status == 400, body
    assert body["error"].startswith("file:"), body


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"plate_number": "\xff\xfe"}', "expected a JSON object"),
    ],
)
def test_hostile_json_is_a_400(server: ServiceThread, body: bytes, error: str) -> None:
    status, answer = raw(server, post("/check_dues", "application/json", body))
    assert status == 400, answer
    assert error.encode() in answer, answer


def test_evidence_names_that_break_paths_are_404s(server: ServiceThread) -> None:
    folder = server.service.config.recordings.directory
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    for name in ("a%00b.jpg", "x" * 300 + ".jpg", "loop.jpg", "loop.jpg/x.jpg"):
        status, body = call("GET", f"{server.url}/evidence/{name}")
        assert (status, body) == (404, {"error": "no such evidence file"}), name


def test_protocol_errors_are_logged_in_one_line(
    server: ServiceThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "aiohttp.server")
    for request in (
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
        b"POST /ocr HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
    ):
        status, _ = raw(server, request)
        assert 400 <= status < 500
    assert not [r for r in caplog.records if r.exc_info or r.levelno > logging.DEBUG]


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_silent_and_slow_connections_time_out(server: ServiceThread) -> None:
    silent = socket.create_connection(address(server))
    partial_header = socket.create_connection(address(server))
    partial_header.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    partial_body = socket.create_connection(address(server))
    partial_body.sendall(post("/check_dues", "application/json", b'{"plate_number": "K')[:-3])
    for sock in (silent, partial_header, partial_body):
        with sock:
            assert closed_within(sock, TIMEOUT_S + 3)


def test_health_answers_under_an_idle_connection_flood(server: ServiceThread) -> None:
    flood = [socket.create_connection(address(server)) for _ in range(4 * MAX_CONNECTIONS)]
    try:
        for sock in flood[::2]:
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # half of them with a partial header
        started = time.monotonic()
        assert call("GET", f"{server.url}/health", headers={})[0] == 200
        assert time.monotonic() - started < 2
        assert server.service.node.api.guard is not None
        assert server.service.node.api.guard.open <= MAX_CONNECTIONS
    finally:
        for sock in flood:
            sock.close()


def test_uploads_past_the_bound_get_503_with_retry_after(
    server: ServiceThread, demo_video: DemoManifest, caplog: pytest.LogCaptureFixture
) -> None:
    # Uploads whose body never finishes hold their slots until the body times out.
    image = png(frame_at(demo_video.path, 1.0))
    slow = []
    for _ in range(MAX_IMAGES):
        sock = socket.create_connection(address(server))
        sock.sendall(post("/process", MULTIPART, b"--b\r\n" + PART + b"\r\n\r\n" + image)[:-500])
        slow.append(sock)
    time.sleep(0.3)
    caplog.set_level(logging.DEBUG, "streamer.api")
    for _ in range(20):  # a burst of refusals: one warning in the log, not twenty
        head, body = exchange(
            server, post("/detect", MULTIPART, b"--b\r\n" + PART + b"\r\n\r\n--b--\r\n")
        )
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"\r\nRetry-After: 1" in head, head
        assert b"http.max_concurrent_images" in body, body
    refusals = [r for r in caplog.records if "max_concurrent_images" in r.getMessage()]
    assert len(refusals) == 20
    assert len([r for r in refusals if r.levelno >= logging.WARNING]) <= 1
    for sock in slow:
        with sock:
            sock.settimeout(TIMEOUT_S + 3)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 408"), answer
    assert call("POST", f"{server.url}/detect", data=upload(image), headers=AUTH)[0] == 200


def test_decoding_checks_the_header_first() -> None:
    """``streamer process`` decodes with the same function."""
    for data, reason in (
        (png_declaring(60000, 60000), "pixels"),
        (b"GIF89a" + bytes(20), "not an image"),
        (b"", "empty"),
    ):
        with pytest.raises(ImageError, match=reason):
            decode_image(data, 25_000_000)


def test_evidence_ignores_ranges_it_cannot_serve(server: ServiceThread) -> None:
    folder = server.service.config.recordings.directory
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "crop.jpg").write_bytes(b"\xff\xd8" + bytes(100))
    for value in ("bytes=5-1", "bytes=999999-", "lines=1-2"):
        status, body = call("GET", f"{server.url}/evidence/crop.jpg", headers={"Range": value})
        assert status == 200, (value, body)


def test_a_message_that_is_not_text_is_a_400(server: ServiceThread) -> None:
    body = b'{"amount": 5, "message": "\\ud800"}'
    request = post("/api/dues/KA01AB1234", "application/json", body).replace(b"POST", b"PUT", 1)
    status, answer = raw(server, request)
    assert status == 400, answer
    assert b"message:" in answer
