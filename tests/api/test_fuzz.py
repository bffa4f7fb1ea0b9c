"""Hostile requests to the HTTP API of a running daemon: no 5xx, no hang, no traceback,
no memory growth, and /health answering through an idle connection flood.

    STREAMER_FUZZ_SEED=7 .venv/bin/python -m pytest tests/api/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from support.fuzz import (
    HEALTH_TIMEOUT_S,
    RSS_LIMIT_MB,
    SEED,
    Tally,
    mutate,
    rss_mb,
    shorten,
    tracebacks,
)
from support.probes import (
    EVIDENCE,
    MULTIPART,
    Probe,
    Reply,
    evidence_probes,
    exchange,
    json_probes,
    multipart_probes,
    plate_probes,
    request,
    upload,
)
from support.raw_probes import FORGED, header_probes, random_probes, raw_probes

#: The token of the daemon that is sent hostile headers.
TOKEN = "fuzz-t0k3n"
#: A line break or another control character right before the marker a probe smuggles in.
SMUGGLED = re.compile(rf"[\x00-\x1f\x7f\x85\u2028\u2029]{FORGED}")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``streamer serve`` on a free port, for the whole module."""
    running = Daemon(tmp_path_factory.mktemp("fuzz-daemon"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``streamer serve`` with a token, logging everything (debug level included), so that
    no request value that reaches the log goes unseen."""
    running = Daemon(tmp_path_factory.mktemp("fuzz-guarded"), token=TOKEN, log_level="DEBUG")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def judge(probe: Probe, reply: Reply) -> list[str]:
    """What is wrong with ``reply`` to ``probe``."""
    problems = []
    busy = reply.status == 503 and "retry-after" in reply.headers
    if reply.status >= 500 and not busy:
        problems.append(f"answered {reply.status} {shorten(reply.body)}")
    elif 400 <= reply.status < 500 and probe.ours and probe.method != "HEAD":
        try:
            body = json.loads(reply.body)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
            problems.append(f"answered {reply.status} without a JSON error: {shorten(reply.body)}")
    if probe.refuse and 200 <= reply.status < 300:
        problems.append(f"accepted it ({reply.status} {shorten(reply.body)}); {probe.refuse}")
    return problems


def exchange_watched(daemon: Daemon, probe: Probe, tally: Tally) -> tuple[Reply | None, str]:
    """:func:`exchange`, polling /health meanwhile: heavy work must not hold up the
    daemon's event loop."""
    answer: list[tuple[Reply | None, str]] = []
    worker = threading.Thread(target=lambda: answer.append(exchange(daemon.port, probe)))
    worker.start()
    while worker.is_alive():
        problem = daemon.health()
        if problem is not None:
            tally.fail(probe.description, f"while it was handled, {problem}")
            break
        worker.join(0.25)
    worker.join()
    return answer[0]


def send(daemon: Daemon, probe: Probe, tally: Tally) -> None:
    """Send one probe; check the answer, the log, the memory and the process."""
    daemon.reset_peak()
    if probe.watch or len(probe.data) > 100_000:
        reply, outcome = exchange_watched(daemon, probe, tally)
    else:
        reply, outcome = exchange(daemon.port, probe)
    tally.count(str(reply.status) if reply else outcome)
    if reply is None and outcome == "timeout" and probe.answer_expected:
        tally.fail(probe.description, f"no answer within {probe.timeout:g} s")
    for problem in judge(probe, reply) if reply else []:
        tally.fail(probe.description, problem)
    log = daemon.new_log()
    if "Traceback" in log:
        for traceback in tracebacks(log):
            tally.fail(probe.description, f"the daemon logged a traceback: {traceback}")
    if FORGED in log and SMUGGLED.search(log):
        tally.fail(probe.description, "it wrote a line of its own into the daemon's log")
    peak = daemon.memory_mb("VmHWM")
    if peak is not None and peak > RSS_LIMIT_MB:
        tally.fail(probe.description, f"the daemon's resident memory peaked at {peak:.0f} MB")
    status = daemon.exit_status()
    if status is not None:
        tally.fail(probe.description, f"the daemon exited ({status}): {log[-500:]!r}")
        daemon.start()


def checkpoint(daemon: Daemon, tally: Tally, last: str) -> None:
    """Between batches: /health answers in time, and nothing was logged late."""
    problem = daemon.health()
    if problem is not None:
        tally.fail(f"/health after the batch ending with {last}", problem)
    log = daemon.new_log()
    if "Traceback" in log:
        for traceback in tracebacks(log):
            tally.fail(f"batch ending with {last}", f"the daemon logged a traceback: {traceback}")


@pytest.mark.timeout(600)  # several daemons or a fuzz budget; minutes under load
def test_http_api_survives_hostile_requests(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-http")
    tally = Tally("HTTP", minimum=600)
    image = small_image(rng)
    png = encodings(image)[".png"]
    probes = multipart_probes(rng, png) + image_probes(rng, image) + json_probes(rng)
    probes += plate_probes() + evidence_probes() + random_probes(rng) + raw_probes(rng, png)
    for number, probe in enumerate(probes):
        if tally.over_budget(number, len(probes)):
            break
        send(daemon, probe, tally)
        if number % 20 == 19:
            checkpoint(daemon, tally, probe.description)
    checkpoint(daemon, tally, "the last request")
    rss = daemon.memory_mb()
    if rss is not None and rss > RSS_LIMIT_MB:
        tally.fail("after every request", f"the daemon holds {rss:.0f} MB")
    if daemon.exit_status() is not None:
        tally.fail("after every request", f"the daemon exited ({daemon.exit_status()})")
    tally.report(capsys)
    tally.verdict()


def test_http_api_survives_hostile_headers(
    guarded: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-headers")
    tally = Tally("HTTP", minimum=200)
    probes = header_probes(rng, TOKEN, guarded.port)
    for number, probe in enumerate(probes):
        if tally.over_budget(number, len(probes)):
            break
        send(guarded, probe, tally)
        if number % 20 == 19:
            checkpoint(guarded, tally, probe.description)
    checkpoint(guarded, tally, "the last request")
    tally.report(capsys)
    tally.verdict()


def test_http_api_answers_through_an_idle_connection_flood(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    tally = Tally("HTTP", minimum=400)
    silent, partial = 300, 100
    flood = f"{silent} silent and {partial} partial-header connections"
    connections: list[socket.socket] = []
    try:
        for number in range(silent + partial):
            connection = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
            connections.append(connection)
            if number >= silent:
                connection.sendall(b"POST /detect HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            tally.count("silent" if number < silent else "partial headers")
        time.sleep(0.5)
        problem = daemon.health(HEALTH_TIMEOUT_S)
        if problem is not None:
            tally.fail(f"/health while {flood} are open", problem)
        cameras = Probe("/api/cameras", request("GET", "/api/cameras"), timeout=HEALTH_TIMEOUT_S)
        reply, outcome = exchange(daemon.port, cameras)
        if reply is None or reply.status != 200:
            tally.fail(
                f"GET /api/cameras while {flood} are open", f"{reply.status if reply else outcome}"
            )
    finally:
        for connection in connections:
            connection.close()
    checkpoint(daemon, tally, f"closing {flood}")
    if daemon.exit_status() is not None:
        tally.fail(flood, f"the daemon exited ({daemon.exit_status()})")
    tally.report(capsys)
    tally.verdict()


class Daemon:
    """``streamer serve`` in a subprocess on a free port, its output in a log file, with
    an evidence folder holding a real crop, symlink loops, an escaping link and a FIFO."""

    def __init__(self, folder: Path, token: str | None = None, log_level: str = "INFO") -> None:
        self.folder = folder
        self.token = token
        self.log = folder / "daemon.log"
        self.config = folder / "streamer.yaml"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        evidence = folder / "evidence"
        data = {
            "cameras": [{"name": "cam", "source": str(folder / "missing.mp4")}],
            "events_log": str(folder / "events.jsonl"),
            "dues": {"database": str(folder / "dues.sqlite")},
            "recordings": {"directory": str(evidence)},
            "outbox": {"database": str(folder / "outbox.sqlite")},
            "http": {"enabled": True, "host": "127.0.0.1", "port": self.port},
            "log_level": log_level,
        }
        if token is not None:
            data["http"] = {**data["http"], "token": token}
        self.config.write_text(yaml.safe_dump(data))
        crop = cv2.imencode(".jpg", np.full((24, 96, 3), 200, np.uint8))[1].tobytes()
        (evidence / "cam" / "2026-01-01").mkdir(parents=True)
        (evidence / EVIDENCE).write_bytes(crop)
        (folder / "outside.jpg").write_bytes(crop)
        (evidence / "escape.jpg").symlink_to(folder / "outside.jpg")
        (evidence / "loop.jpg").symlink_to(evidence / "loop2.jpg")
        (evidence / "loop2.jpg").symlink_to(evidence / "loop.jpg")
        (evidence / "self.jpg").symlink_to(evidence / "self.jpg")
        (evidence / "d").symlink_to(evidence)
        os.mkfifo(evidence / "fifo.jpg")
        self.process: subprocess.Popen[bytes] | None = None
        self.offset = 0

    def start(self) -> None:
        """Start it and wait until /health answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamer", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        deadline = time.monotonic() + 120
        while self.health() is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamer serve did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def exit_status(self) -> int | None:
        """``None`` while it runs."""
        return None if self.process is None else self.process.poll()

    def new_log(self) -> str:
        """What it has logged since the last call."""
        with self.log.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
        self.offset += len(data)
        return data.decode("utf-8", "replace")

    def reset_peak(self) -> None:
        """Reset its peak resident memory to the current value (Linux ``clear_refs``)."""
        if self.process is not None:
            with contextlib.suppress(OSError):
                Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def memory_mb(self, key: str = "VmRSS") -> float | None:
        """Its resident memory (``VmHWM``: the peak since :meth:`reset_peak`)."""
        return None if self.process is None else rss_mb(self.process.pid, key)

    def health(self, timeout: float = HEALTH_TIMEOUT_S) -> str | None:
        """``None`` when /health answers 200 ``{"status": "ok", …}`` within ``timeout``;
        otherwise what happened."""
        started = time.monotonic()
        reply, outcome = exchange(
            self.port, Probe("/health", request("GET", "/health"), timeout=timeout)
        )
        took = time.monotonic() - started
        if reply is None:
            return f"/health: {outcome} after {took:.1f} s"
        if reply.status != 200 or b'"ok"' not in reply.body:
            return f"/health answered {reply.status} {shorten(reply.body)}"
        return None if took <= timeout + 1 else f"/health took {took:.1f} s"


def small_image(rng: random.Random) -> np.ndarray:
    """A 64x48 noise image."""
    return np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (48, 64, 3), np.uint8)


def encodings(image: np.ndarray) -> dict[str, bytes]:
    """``image`` as PNG, JPEG, BMP, TIFF and WebP."""
    return {
        ext: cv2.imencode(ext, image)[1].tobytes()
        for ext in [".png", ".jpg", ".bmp", ".tiff", ".webp"]
    }


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """A PNG chunk with its CRC."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(side: int) -> bytes:
    """A valid 1-bit grey PNG of side x side black pixels: about side²/8000 bytes on the
    wire (32000: 130 kB) and side² x 3 bytes decoded to BGR (32000: 3 GB)."""
    row = bytes(1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def declaring(ext: str, data: bytes, width: int, height: int) -> bytes:
    """The small image ``data`` with its header patched to declare ``width`` x ``height``."""
    buffer = bytearray(data)
    if ext == ".png":
        buffer[16:24] = struct.pack(">II", width, height)
        buffer[29:33] = struct.pack(">I", zlib.crc32(bytes(buffer[12:29])))
    elif ext == ".jpg":
        at = 2
        while buffer[at + 1] not in (0xC0, 0xC1, 0xC2):  # to the start-of-frame segment
            at += 2 + struct.unpack(">H", buffer[at + 2 : at + 4])[0]
        buffer[at + 5 : at + 9] = struct.pack(">HH", height, width)
    elif ext == ".bmp":
        buffer[18:26] = struct.pack("<ii", width, height)
    elif ext == ".tiff":
        order = "<" if buffer[:2] == b"II" else ">"
        (ifd,) = struct.unpack(order + "I", buffer[4:8])
        (entries,) = struct.unpack(order + "H", buffer[ifd : ifd + 2])
        for at in range(ifd + 2, ifd + 2 + 12 * entries, 12):
            (tag,) = struct.unpack(order + "H", buffer[at : at + 2])
            if tag in (256, 257):  # ImageWidth, ImageLength
                value = width if tag == 256 else height
                buffer[at + 2 : at + 12] = struct.pack(order + "HII", 4, 1, value)
    elif ext == ".webp":  # an extended header (VP8X) whose canvas is that size
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + bytes(4) + canvas + bytes(buffer[12:])
        return b"RIFF" + struct.pack("<I", len(body)) + body
    return bytes(buffer)


def image_probes(rng: random.Random, image: np.ndarray) -> list[Probe]:
    """Uploads of images declaring huge sizes, an image bomb, truncated and garbage images."""
    encoded = encodings(image)
    uploads: list[tuple[str, bytes]] = []
    for ext, data in encoded.items():
        uploads.append((f"{ext} declaring 60000x60000", declaring(ext, data, 60000, 60000)))
        uploads.append((f"{ext} declaring 30000x30000", declaring(ext, data, 30000, 30000)))
    bomb = png_bomb(32000)
    uploads.append((f"valid {len(bomb)}-byte PNG of 32000x32000 1-bit pixels", bomb))
    probes = [
        Probe(
            f"POST {endpoint} {name}",
            request("POST", endpoint, upload(data), MULTIPART),
            watch=True,
        )
        for endpoint in ("/detect", "/ocr", "/process")
        for name, data in uploads
    ]
    for number in range(75):
        ext = rng.choice(sorted(encoded))
        data = encoded[ext]
        kind = rng.choice(["truncated", "mutated", "magic and random bytes", "tiny"])
        if kind == "truncated":
            cut = rng.randrange(len(data))
            data, kind = data[:cut], f"truncated at {cut} of {len(data)} bytes"
        elif kind == "mutated":
            data, steps = mutate(rng, data, rng.randint(1, 6))
            kind = f"mutated ({steps})"
        elif kind == "magic and random bytes":
            data = data[:16] + rng.randbytes(rng.randint(0, 5000))
        else:
            data = data[: rng.randint(0, 3)]
            kind = f"{len(data)} bytes"
        endpoint = rng.choice(["/detect", "/ocr", "/process"])
        name = f"POST {endpoint} image #{number}: {ext} {kind}"
        probes.append(Probe(name, request("POST", endpoint, upload(data), MULTIPART)))
    return probes
