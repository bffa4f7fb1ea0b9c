"""Hostile inputs from a seeded generator: the HTTP API of a running daemon, configs,
damaged recordings and dues CSVs.

Every input comes from ``random.Random`` seeded from :data:`SEED` (``STREAMER_FUZZ_SEED``
sets another), so a failure reproduces with the seed its message names. Each test runs all
of its inputs, collects every failure with a description of the input and what was
observed, prints its counts to the terminal (even under ``pytest -q``) and fails once at
the end, listing them all. Each class has a time budget; the file takes about a minute.

    STREAMER_FUZZ_SEED=7 .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np
import pytest
import yaml

from streamer.config import CameraConfig, Config, ConfigError, load_config
from streamer.reading.plates import fix_confusions, matches_format
from streamer.sources import open_source
from streamer.sources.demo import DemoVehicle, render_video
from streamer.sources.frame import SourceError
from streamer.stores.dues import DuesError, SqlDues

#: The seed of every generator in this file.
SEED = int(os.environ.get("STREAMER_FUZZ_SEED", "20261129"))
#: The daemon's resident memory must stay below this, whatever it is sent.
RSS_LIMIT_MB = 1500.0
#: How long /health may take to answer between batches and under a connection flood.
HEALTH_TIMEOUT_S = 2.0
#: How long a complete request may wait for its answer before it counts as a hang.
ANSWER_TIMEOUT_S = 30.0
#: Wall-clock budget of each class of inputs; running out of it is itself a failure.
BUDGET_S = {"HTTP": 90.0, "config": 45.0, "video": 30.0, "dues CSV": 30.0}
#: The README's stream schemes: any other ``scheme://`` source must be refused.
STREAM_SCHEMES = {"rtsp", "rtsps", "http", "https", "rtmp"}
#: The README's rule for plates given to the dues database.
FOREIGN_RULE = "the README: a plate with letters or digits outside A-Z and 0-9 is refused"
#: Inputs run so far in this session, per class (for the summary lines).
TOTALS: Counter[str] = Counter()


def shorten(value: object, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


@dataclass
class Tally:
    """The inputs of one class, their outcomes and the failures among them."""

    kind: str
    minimum: int
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def count(self, outcome: str) -> None:
        """One input more, which ended as ``outcome``."""
        self.inputs += 1
        self.outcomes[outcome] += 1

    def fail(self, description: str, observed: str) -> None:
        """Record a failure of the input ``description``."""
        self.failures.append(f"{description}: {observed}")

    def over_budget(self, done: int, planned: int) -> bool:
        """Whether this class has used up its time budget (a failure, recorded once)."""
        budget = BUDGET_S[self.kind]
        if time.monotonic() - self.started <= budget:
            return False
        self.fail(f"{self.kind} inputs", f"only {done} of {planned} ran in the {budget:g} s budget")
        return True

    def report(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Print the counts of this class to the terminal, whatever pytest captures."""
        TOTALS[self.kind] += self.inputs
        outcomes = ", ".join(f"{name}: {n}" for name, n in sorted(self.outcomes.items()))
        with capsys.disabled():
            print(
                f"\nfuzz seed {SEED}: {self.inputs} hostile {self.kind} inputs in "
                f"{time.monotonic() - self.started:.1f} s ({outcomes}); "
                f"{len(self.failures)} failures; {sum(TOTALS.values())} inputs this session"
            )

    def verdict(self) -> None:
        """Fail, listing every failure, unless enough inputs ran and none failed."""
        assert self.inputs >= self.minimum, f"only {self.inputs} {self.kind} inputs ran"
        if self.failures:
            pytest.fail(
                f"{len(self.failures)} of {self.inputs} hostile {self.kind} inputs failed "
                f"(STREAMER_FUZZ_SEED={SEED} reproduces them):\n" + "\n".join(self.failures),
                pytrace=False,
            )


class OverrunError(Exception):
    """A bounded block ran too long or took too much memory."""


def rss_mb(pid: int | str = "self", key: str = "VmRSS") -> float | None:
    """A memory figure of a process from ``/proc/<pid>/status``, in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


@contextlib.contextmanager
def bounded(seconds: float, megabytes: float) -> Iterator[None]:
    """Raise :class:`OverrunError` when the block runs longer than ``seconds`` or this
    process's resident memory grows by more than ``megabytes`` (main thread only).

    A watcher interrupts the block (with SIGUSR1: pytest-timeout's SIGALRM is left alone)
    once either bound is passed; a peak the watcher missed, while one C call held the
    GIL, is caught afterwards from the process's high-water mark."""
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    reason: list[str] = []

    def interrupt(signum: int, frame: object) -> None:
        raise OverrunError(reason[0] if reason else "interrupted")

    previous = signal.signal(signal.SIGUSR1, interrupt)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts here
    baseline = rss_mb() or 0.0
    deadline = time.monotonic() + seconds
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            grown = (rss_mb() or 0.0) - baseline
            if grown > megabytes:
                reason.append(f"memory grew by {grown:.0f} MB (bound {megabytes:g} MB)")
            elif time.monotonic() > deadline:
                reason.append(f"still running after {seconds:g} s")
            else:
                continue
            signal.pthread_kill(main, signal.SIGUSR1)
            return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(signal.SIGUSR1, previous)
    peak = (rss_mb(key="VmHWM") or 0.0) - baseline
    if peak > megabytes:
        raise OverrunError(f"memory peaked {peak:.0f} MB higher (bound {megabytes:g} MB)")


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.MULTILINE)


def tracebacks(log: str) -> list[str]:
    """Each log record of ``log`` that holds a traceback, as one line: its message, the
    last exception of the chain and the innermost frame in streamer (else the innermost)."""
    starts = [0, *(match.start() for match in _RECORD.finditer(log)), len(log)]
    found = []
    for start, end in itertools.pairwise(starts):
        lines = log[start:end].splitlines()
        if not any(line.startswith("Traceback (most recent") for line in lines):
            continue
        frames = [line.strip() for line in lines if line.startswith("  File ")]
        ours = [f for f in frames if "/streamer/" in f and "site-packages" not in f]
        skip = ("Traceback", "During handling", "The above exception")
        raised = [
            line for line in lines[1:] if line[:1] not in ("", " ") and not line.startswith(skip)
        ]
        message = lines[0].split(" ", 2)[-1] if _RECORD.match(lines[0]) else lines[0]
        where = (ours or frames or ["?"])[-1]
        found.append(f"{message!r} -> {(raised or ['?'])[-1]} [{where}]")
    return found or ["'Traceback' in the log"]


# --- HTTP ----------------------------------------------------------------------------------

#: The API's routes: a well-formed request to one of them must have JSON errors.
ROUTES = re.compile(
    r"^/(|health|metrics|detect|ocr|process|check_dues|api/events|api/cameras"
    r"|api/dues/[^/?]+|evidence/[^?]+)(\?.*)?$"
)
#: Longer request and header lines are refused by aiohttp's parser, before any route.
LINE_LIMIT = 8190
PLATE = "KA01AB1234"
EVIDENCE = "cam/2026-01-01/ev-crop.jpg"
BOUNDARY = "fuzzboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FILE_PART = 'Content-Disposition: form-data; name="file"; filename="car.png"'
TEXT_PART = 'Content-Disposition: form-data; name="file"'
PNG_TYPE = "Content-Type: image/png"
JSON = "application/json"


@dataclass(frozen=True)
class Probe:
    """One hostile request and what may be asked of its answer.

    Attributes:
        description: what it is, enough to rebuild it (with the seed).
        data: the bytes sent.
        ours: a request that reaches one of the API's routes: its 4xx answers are JSON.
        answer_expected: a complete request, so no answer in time is a hang.
        refuse: when set, a 2xx answer is a failure, for this reason.
        half_close: shut the socket's write side after the bytes (the client is done).
        stream: read only the status and headers (server-sent events never end).
        watch: poll /health while it is handled (so are bodies over 100 kB).
        timeout: seconds to wait for the answer.
    """

    description: str
    data: bytes
    ours: bool = True
    answer_expected: bool = True
    refuse: str = ""
    half_close: bool = False
    stream: bool = False
    watch: bool = False
    timeout: float = ANSWER_TIMEOUT_S

    @property
    def method(self) -> str:
        """The request's method."""
        return self.data.split(b" ", 1)[0].decode("latin-1")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


def request(
    method: str,
    target: str,
    body: bytes = b"",
    content_type: str | None = None,
    *headers: tuple[str, str],
) -> bytes:
    """A complete HTTP/1.1 request (``Connection: close``, with its Content-Length)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def form(
    parts: Sequence[tuple[Sequence[str], bytes]], boundary: str = BOUNDARY, closing: bool = True
) -> bytes:
    """A multipart body of ``parts`` (their header lines and content)."""
    body = b""
    for headers, content in parts:
        head = "".join(f"{line}\r\n" for line in headers)
        body += f"--{boundary}\r\n{head}\r\n".encode("utf-8", "surrogateescape")
        body += content + b"\r\n"
    if closing:
        body += f"--{boundary}--\r\n".encode()
    return body


def upload(image: bytes) -> bytes:
    """A well-formed multipart body with ``image`` in the field ``file``."""
    return form([([FILE_PART, PNG_TYPE], image)])


def exchange(port: int, probe: Probe) -> tuple[Reply | None, str]:
    """Send ``probe`` on a new connection; its answer (or ``None``) and how it ended.

    Returns once the server has closed the connection (``Connection: close``), so what it
    logs about the request is in its log by then."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=probe.timeout)
    except OSError as error:
        return None, f"cannot connect ({error})"
    with sock:
        with contextlib.suppress(OSError):  # an early answer (413) may stop the reading
            sock.sendall(probe.data)
        if probe.half_close:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method=probe.method)
        try:
            response.begin()
            body = b"" if probe.stream else response.read()
        except TimeoutError:
            return None, "timeout"
        except (http.client.HTTPException, OSError):
            return None, "closed"
        if not probe.stream:
            with contextlib.suppress(OSError):
                sock.settimeout(1.0)
                while sock.recv(65536):
                    pass
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, headers, body), "answered"


class Daemon:
    """``streamer serve`` in a subprocess on a free port, its output in a log file, with
    an evidence folder holding a real crop, symlink loops, an escaping link and a FIFO."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
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
        }
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


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """``streamer serve`` on a free port, for the whole module."""
    running = Daemon(tmp_path_factory.mktemp("fuzz-daemon"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


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


def mutate(rng: random.Random, data: bytes, rounds: int) -> tuple[bytes, str]:
    """``data`` with ``rounds`` random changes; the changes, described."""
    steps = []
    for _ in range(rounds):
        at = rng.randrange(len(data) + 1)
        op = rng.choice(["flip", "delete", "duplicate", "insert", "truncate", "separator", "zero"])
        size = rng.randint(1, 64)
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
        elif op == "delete":
            data, op = data[:at] + data[at + size :], f"delete {size}"
        elif op == "duplicate":
            data, op = (
                data[: at + size] + data[at : at + size] + data[at + size :],
                f"repeat {size}",
            )
        elif op == "insert":
            data, op = data[:at] + rng.randbytes(size) + data[at:], f"insert {size} random"
        elif op == "truncate":
            data = data[:at]
        elif op == "separator":
            inserted = rng.choice([b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"--", b";", b'"'])
            data, op = data[:at] + inserted + data[at:], f"insert {inserted!r}"
        elif op == "zero":
            data, op = (
                data[:at] + bytes(len(data[at : at + size])) + data[at + size :],
                f"zero {size}",
            )
        steps.append(f"{op} at {at}")
    return data, ", ".join(steps)


def multipart_probes(rng: random.Random, image: bytes) -> list[Probe]:
    """Malformed multipart uploads on /detect, /ocr and /process."""
    cases: list[tuple[str, bytes, str | None, tuple[tuple[str, str], ...], bool]] = []

    def case(
        name: str,
        body: bytes,
        content_type: str | None = MULTIPART,
        *headers: tuple[str, str],
        ours: bool = True,
    ) -> None:
        cases.append((name, body, content_type, headers, ours))

    def part(*headers: str, content: bytes = image) -> bytes:
        return form([(headers, content)])

    valid = upload(image)
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    expanding = bomb.compress(valid[:-30]) + b"".join(
        bomb.compress(bytes(1 << 20)) for _ in range(200)
    )
    expanding += bomb.flush()
    case("no boundary", valid, "multipart/form-data")
    case("empty body", b"")
    case("only the closing boundary", f"--{BOUNDARY}--\r\n".encode())
    case("no closing boundary", form([([FILE_PART, PNG_TYPE], image)], closing=False))
    case("part without Content-Disposition", part(PNG_TYPE))
    case(
        "Content-Disposition without a name",
        part('Content-Disposition: form-data; filename="a.png"'),
    )
    case("non-file 'file' field", part(TEXT_PART, content=b"not a file"))
    case("non-file 'file' field holding the image", part(TEXT_PART))
    case(
        "text field, unknown charset",
        part(TEXT_PART, "Content-Type: text/plain; charset=x-nope", content=b"a"),
    )
    case("unknown charset on the request", valid, MULTIPART + "; charset=x-nope")
    charset_field = 'Content-Disposition: form-data; name="_charset_"'
    case(
        "_charset_ field naming no charset",
        form([([charset_field], b"x-nope"), ([TEXT_PART], b"abc")]),
    )
    for encoding, content in (
        ("base64", b"!!%%not base64"),
        ("quoted-printable", b"=ZZ=\n="),
        ("x-fuzz", image),
    ):
        case(
            f"Content-Transfer-Encoding: {encoding}",
            part(FILE_PART, PNG_TYPE, f"Content-Transfer-Encoding: {encoding}", content=content),
        )
    case(
        "text field, unknown Content-Transfer-Encoding",
        part(TEXT_PART, "Content-Transfer-Encoding: x-fuzz", content=b"a"),
    )
    for encoding in ("gzip", "deflate", "x-fuzz"):
        case(
            f"part Content-Encoding: {encoding} on plain bytes",
            part(FILE_PART, PNG_TYPE, f"Content-Encoding: {encoding}"),
        )
    case(
        "text field, Content-Encoding: gzip on plain bytes",
        part(TEXT_PART, "Content-Encoding: gzip", content=b"abc"),
    )
    case("truncated in the part headers", valid[:40])
    case("truncated in the part body", valid[: len(valid) // 2])
    case("random bytes", rng.randbytes(2000))
    long_boundary = "b" * 200
    case(
        "boundary of 200 characters",
        form([([FILE_PART, PNG_TYPE], image)], long_boundary),
        f"multipart/form-data; boundary={long_boundary}",
    )
    case(
        "empty boundary",
        form([([FILE_PART, PNG_TYPE], image)], ""),
        "multipart/form-data; boundary=",
    )
    case(
        "quoted boundary with spaces",
        form([([FILE_PART], image)], "a b c"),
        'multipart/form-data; boundary="a b c"',
    )
    case("two boundary parameters", valid, MULTIPART + "; boundary=other")
    case("multipart/mixed", valid, f"multipart/mixed; boundary={BOUNDARY}")
    case("multipart/ without a subtype", valid, f"multipart/; boundary={BOUNDARY}")
    fields = [([f'Content-Disposition: form-data; name="f{n}"'], b"x") for n in range(5000)]
    case("5,000 text fields and no file", form(fields))
    case("two file fields", form([([FILE_PART, PNG_TYPE], image)] * 2))
    case(
        "filename with NUL and ..",
        part('Content-Disposition: form-data; name="file"; filename="../a\x00.png"'),
    )
    case(
        "filename* with invalid UTF-8",
        part("Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%ff%fe"),
    )
    case(
        "5,000-character filename",
        part(f'Content-Disposition: form-data; name="file"; filename="{"a" * 5000}"'),
    )
    case("part header line of 100 kB", part(FILE_PART, "X-Fuzz: " + "a" * 100_000, PNG_TYPE))
    inner = form([([FILE_PART, PNG_TYPE], image)], boundary="inner")
    case(
        "nested multipart/mixed as the file",
        part(FILE_PART, "Content-Type: multipart/mixed; boundary=inner", content=inner),
    )
    case("LF-only line endings", valid.replace(b"\r\n", b"\n"))
    case("preamble and epilogue garbage", rng.randbytes(200) + b"\r\n" + valid + rng.randbytes(200))
    case(
        "malformed Content-Disposition",
        part('Content-Disposition: form-data; name="file; filename=', PNG_TYPE),
    )
    for encoding in ("gzip", "deflate", "x-fuzz"):
        case(
            f"Content-Encoding: {encoding} on a plain body",
            valid,
            MULTIPART,
            ("Content-Encoding", encoding),
        )
    # aiohttp's parser refuses this one from its headers, before any route sees it.
    case(
        "Content-Encoding: br on a plain body",
        valid,
        MULTIPART,
        ("Content-Encoding", "br"),
        ours=False,
    )
    case("truncated gzip body", gzip.compress(valid)[:-20], MULTIPART, ("Content-Encoding", "gzip"))
    case("gzip body that expands to 200 MB", expanding, MULTIPART, ("Content-Encoding", "gzip"))
    case("image/png body instead of multipart", image, "image/png")
    case("no Content-Type", valid, None)
    case("urlencoded form", b"file=%89PNG%00%ff", "application/x-www-form-urlencoded")
    case("body over the upload limit (11 MB)", upload(bytes(11_000_000)))
    probes = []
    for endpoint in ("/detect", "/ocr", "/process"):
        for name, body, content_type, headers, ours in cases:
            data = request("POST", endpoint, body, content_type, *headers)
            probes.append(Probe(f"POST {endpoint} multipart: {name}", data, ours))
        for number in range(45):
            body, steps = mutate(rng, valid, rng.randint(1, 4))
            data = request("POST", endpoint, body, MULTIPART)
            probes.append(Probe(f"POST {endpoint} multipart #{number} mutated ({steps})", data))
    return probes


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


def nested(depth: int, kind: str) -> str:
    """JSON arrays or objects nested ``depth`` deep, or arrays left open."""
    if kind == "arrays":
        return "[" * depth + "]" * depth
    if kind == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth


def json_probes(rng: random.Random) -> list[Probe]:
    """Hostile JSON bodies on PUT /api/dues/{plate} and POST /check_dues."""
    refuse = "the README: an amount must be a finite, non-negative number"
    target = f"/api/dues/{PLATE}"
    amounts = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-1", "-0.0001", '"100"']
    amounts += ["true", "null", "[]", "{}", '"NaN"', "9" * 400, "-" + "9" * 400, "9" * 5000]
    probes = [
        Probe(
            f"PUT {target} amount {shorten(amount, 50)}",
            request("PUT", target, f'{{"amount": {amount}}}'.encode(), JSON),
            refuse=refuse,
        )
        for amount in amounts
    ]
    many_keys = "{" + ",".join(f'"k{n}":{n}' for n in range(100_000)) + "}"
    bodies: list[tuple[str, bytes, str]] = [
        ("message with a lone surrogate escape", b'{"amount": 5, "message": "\\ud800"}', ""),
        ("message with NUL", b'{"amount": 5, "message": "a\\u0000b"}', ""),
        ("message of 1 MB", b'{"amount": 5, "message": "' + b"m" * 1_000_000 + b'"}', ""),
        ("message a number", b'{"amount": 5, "message": 123}', ""),
        ("empty body", b"", ""),
        ("random bytes", rng.randbytes(300), ""),
        ("invalid UTF-8", b'{"amount": 5, "message": "\xff\xfe"}', ""),
        ("UTF-16 with a BOM", '{"amount": 5}'.encode("utf-16"), ""),
        ("UTF-8 with a BOM", b'\xef\xbb\xbf{"amount": 5}', ""),
        ("duplicate keys", b'{"amount": 5, "amount": -5}', refuse),
        ("trailing garbage", b'{"amount": 5} xyz', ""),
        ("100,000 keys", many_keys.encode(), ""),
    ]
    for depth in (900, 1000, 5000, 100_000):
        for kind in ("arrays", "objects", "unclosed"):
            text = nested(depth, kind)
            bodies.append((f"{kind} nested {depth} deep", text.encode(), ""))
            bodies.append(
                (f"amount: {kind} nested {depth} deep", f'{{"amount": {text}}}'.encode(), "")
            )
    for name, body, reason in bodies:
        probes.append(
            Probe(f"PUT {target} {name}", request("PUT", target, body, JSON), refuse=reason)
        )
        probes.append(Probe(f"POST /check_dues {name}", request("POST", "/check_dues", body, JSON)))
    bogus = f"{JSON}; charset=x-nope"
    probes.append(
        Probe(f"PUT {target} with charset=x-nope", request("PUT", target, b'{"amount": 5}', bogus))
    )
    return probes


#: Plates that are not A-Z and 0-9 (spelled with escapes: they look like Latin letters).
FOREIGN_PLATES = [
    "\u041a\u041001\u0410\u04121234",  # Cyrillic look-alikes
    "\u039a\u039101\u0391\u03921234",  # Greek look-alikes
    "\uff2b\uff21\uff10\uff11\uff21\uff22\uff11\uff12\uff13\uff14",  # fullwidth
    "KA\u0966\u0967AB1234",  # Devanagari digits
    "KA\u0660\u0661AB1234",  # Arabic-Indic digits
    "\ufb01\u00df1234",  # ligature fi, sharp s: upper-cased to FI and SS
    "\u0131\u017f1234",  # dotless i, long s: upper-cased to I and S
    "KA01A\u0301B1234",  # A and a combining acute accent: an accented letter
    "\u212a\u212b1234",  # Kelvin and Angstrom signs
]
#: Other plates the API must survive (the unlabelled ones may be accepted).
ODD_PLATES = ["ka-01 ab 1234", "KA\u200d01AB1234", "\u202eKA01AB1234", "\U0001f697", "---", " "]
ODD_PLATES += ["\x00", "KA\x0001", "..", ".", "/", "\\", "A" * 300, "A" * 4000, "\u041a" * 1000]
ODD_PLATES += ["%", "%zz"]


def plate_probes() -> list[Probe]:
    """GET, PUT and DELETE /api/dues/{plate} and POST /check_dues with hostile plates."""
    probes = []
    for plate in FOREIGN_PLATES + ODD_PLATES:
        foreign = any(c.isalnum() and not c.isascii() for c in unicodedata.normalize("NFC", plate))
        empty = not re.search(r"[A-Za-z0-9]", plate)
        reason = FOREIGN_RULE if foreign else "a plate with no letters or digits" if empty else ""
        target = "/api/dues/" + quote(plate, safe="")
        shown = shorten(plate, 40)
        body = b'{"amount": 5, "message": "fuzz"}'
        probes.append(
            Probe(f"PUT /api/dues/{shown}", request("PUT", target, body, JSON), refuse=reason)
        )
        probes.append(Probe(f"GET /api/dues/{shown}", request("GET", target), refuse=reason))
        probes.append(Probe(f"DELETE /api/dues/{shown}", request("DELETE", target), refuse=reason))
        check = json.dumps({"plate_number": plate}).encode()
        probes.append(
            Probe(
                f"POST /check_dues plate_number {shown}",
                request("POST", "/check_dues", check, JSON),
            )
        )
    for raw in ["%ff%fe", "%ED%A0%80", "%c0%ae%c0%ae", "%2F", "%2e%2e", "%00", "%"]:
        probes.append(Probe(f"GET /api/dues/{raw}", request("GET", f"/api/dues/{raw}")))
    return probes


def evidence_probes() -> list[Probe]:
    """/evidence/ names with NUL, 300 characters, .., symlink loops, a FIFO; odd ranges."""
    escape = "the evidence route must not serve files outside the evidence folder"
    escaping = ["../outside.jpg", "..%2foutside.jpg", "%2e%2e/outside.jpg", "%2e%2e%2foutside.jpg"]
    escaping += ["cam/../../outside.jpg", "..%5coutside.jpg", "/" + "../" * 20 + "etc/hostname"]
    escaping += ["%2f..%2f..%2f..%2fetc%2fhostname", "escape.jpg"]
    odd = [EVIDENCE, "a%00b.jpg", "cam/2026-01-01/ev-crop%00.jpg", "x" * 300 + ".jpg"]
    odd += ["x" * 300 + "/y.jpg", "/".join(["abc"] * 1500) + ".jpg", "loop.jpg", "self.jpg"]
    odd += ["d/d/d/d/d/d/d/d/loop.jpg", "d/" * 40 + EVIDENCE, "fifo.jpg", "cam", ".jpg"]
    odd += [EVIDENCE + "/", "%ff%fe.jpg", quote("\u041a.jpg")]
    probes = [
        Probe(
            f"GET /evidence/{shorten(name, 60)}",
            request("GET", f"/evidence/{name}"),
            refuse=escape if name in escaping else "",
        )
        for name in escaping + odd
    ]
    many = ",".join(f"{n}-{n}" for n in range(600))
    for value in (
        "bytes=99999999999999999999-",
        "bytes=-0",
        "bytes=5-1",
        f"bytes={many}",
        "lines=1-2",
    ):
        data = request("GET", f"/evidence/{EVIDENCE}", b"", None, ("Range", value))
        probes.append(Probe(f"GET /evidence/{EVIDENCE} Range: {shorten(value, 40)}", data))
    for header in ("If-Modified-Since", "If-Unmodified-Since", "If-Range"):
        data = request(
            "GET", f"/evidence/{EVIDENCE}", b"", None, (header, "Sun, 99 Foo 2026 25:61:61 GMT")
        )
        probes.append(Probe(f"GET /evidence/{EVIDENCE} {header}: a date that is none", data))
    return probes


QUERY_VALUES = ["", "-1", "0", "1001", "abc", "1e3", "9" * 30, "9" * 5000, "%00", "%ff", "NaN"]
QUERY_VALUES += ["%D9%A1", "true", "maybe", "1;DROP%20TABLE%20dues", "'", "%22", "%D0%9A%D0%90"]
QUERY_VALUES += ["a" * 2000, "1_000", "+5", "%205%20"]
QUERY_KEYS = ["limit", "offset", "plate", "camera", "dues_pending", "token", "x"]
PATHS = ["/", "/health", "/metrics", "/detect", "/ocr", "/process", "/check_dues", "/api/events"]
PATHS += ["/api/cameras", f"/api/dues/{PLATE}", f"/evidence/{EVIDENCE}"]
SUFFIXES = ["/x", "//", "/..", "%00", "%ff", "%", ";a=b", "/.", "%20", "/%2e%2e/%2e%2e/etc/passwd"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "FUZZ"]
CONTENT_TYPES = [JSON, MULTIPART, "text/plain", "application/octet-stream", "x/y"]


def random_probes(rng: random.Random) -> list[Probe]:
    """Garbage limit/offset (and other parameters) on /api/events; random methods, paths,
    query parameters and bodies."""
    probes = []
    for key in QUERY_KEYS[:5]:
        for value in QUERY_VALUES:
            target = f"/api/events?{key}={value}"
            probes.append(
                Probe(
                    f"GET {shorten(target, 80)}", request("GET", target), len(target) < LINE_LIMIT
                )
            )
    probes.append(
        Probe("GET /api/events?limit=1&limit=abc", request("GET", "/api/events?limit=1&limit=abc"))
    )
    for value in ("abc", "-1", "%00", "9" * 5000):
        target = f"/api/events/stream?limit={value}"
        probes.append(Probe(f"GET {shorten(target, 80)}", request("GET", target), stream=True))
    for number in range(170):
        method, path = rng.choice(METHODS), rng.choice(PATHS)
        if rng.random() < 0.4:
            path += rng.choice(SUFFIXES)
        if rng.random() < 0.1:
            path = path.upper()
        if rng.random() < 0.6:
            pairs = [
                f"{rng.choice(QUERY_KEYS)}={rng.choice(QUERY_VALUES)}"
                for _ in range(rng.randint(1, 4))
            ]
            path += "?" + "&".join(pairs)
        body, content_type = b"", None
        if rng.random() < 0.5:
            body, content_type = rng.randbytes(rng.randint(0, 3000)), rng.choice(CONTENT_TYPES)
        ours = bool(ROUTES.match(path)) and method != "FUZZ" and len(path) < LINE_LIMIT
        name = f"random #{number}: {method} {shorten(path, 100)} ({len(body)}-byte body)"
        probes.append(Probe(name, request(method, path, body, content_type), ours))
    return probes


def raw_probes(rng: random.Random, image: bytes) -> list[Probe]:
    """Protocol garbage on raw sockets: bad request lines, huge headers, bad chunking."""
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n"
    post = b"POST /check_dues HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    chunked = post + b"Transfer-Encoding: chunked\r\n\r\n"
    valid = upload(image)
    upload_head = f"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART}\r\n".encode()
    big_headers = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 1000) for n in range(1000))
    cases: list[tuple[str, bytes]] = [
        ("empty request line", b"\r\n\r\n"),
        ("method only", b"GET\r\n\r\n"),
        ("no HTTP version", b"GET /health\r\n\r\n"),
        ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("lower-case method", b"get /health HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("method of 10,000 letters", b"A" * 10_000 + b" / HTTP/1.1\r\n\r\n"),
        ("request target of 100 kB", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("header line of 100 kB", health + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n"),
        ("1,000 headers of 1 kB", health + big_headers + b"\r\n"),
        (
            "10,000 small headers",
            health + b"".join(b"X-%d: a\r\n" % n for n in range(10_000)) + b"\r\n",
        ),
        ("header without a colon", health + b"NoColon\r\n\r\n"),
        ("header name with a space", health + b"Bad Name: v\r\n\r\n"),
        ("obsolete line folding", health + b"X-A: a\r\n folded\r\n\r\n"),
        ("NUL in a header value", health + b"X-A: a\x00b\r\n\r\n"),
        ("control characters in a header value", health + b"If-Modified-Since: \x01\x02\r\n\r\n"),
        ("bare LF line endings", b"GET /health HTTP/1.1\nHost: x\n\n"),
        ("bare CR line endings", b"GET /health HTTP/1.1\rHost: x\r\r"),
        ("Content-Length: -1", post + b"Content-Length: -1\r\n\r\n{}"),
        ("Content-Length: abc", post + b"Content-Length: abc\r\n\r\n{}"),
        (
            "two different Content-Lengths",
            post + b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
        ),
        ("Content-Length of 10**30", post + b"Content-Length: 1" + b"0" * 30 + b"\r\n\r\n{}"),
        (
            "Content-Length and chunked",
            post + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        ),
        ("chunk size not hex", chunked + b"zz\r\n{}\r\n0\r\n\r\n"),
        ("chunk size of 2**72", chunked + b"ffffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
        ("chunk shorter than its size", chunked + b"10\r\n{}\r\n0\r\n\r\n"),
        ("chunk extension garbage", chunked + b'2;\x00\x01="\r\n{}\r\n0\r\n\r\n'),
        ("no last chunk", chunked + b"2\r\n{}\r\n"),
        ("trailer garbage", chunked + b"2\r\n{}\r\n0\r\nBad Trailer\r\n\r\n"),
        (
            "Transfer-Encoding: gzip, chunked",
            post + b"Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        ),
        ("Transfer-Encoding: x-fuzz", post + b"Transfer-Encoding: x-fuzz\r\n\r\n{}"),
        (
            "chunked upload cut short",
            upload_head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(valid) + valid[:100],
        ),
        (
            "Content-Length larger than the body",
            upload_head + b"Content-Length: 100000\r\n\r\n" + valid[:100],
        ),
        (
            "Expect: 100-continue and no body",
            upload_head + b"Expect: 100-continue\r\nContent-Length: 500\r\n\r\n",
        ),
        ("absolute-form target", b"GET http://example.com/health HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("no Host header", b"GET /health HTTP/1.1\r\n\r\n"),
        ("two Host headers", health + b"Host: y\r\n\r\n"),
        (
            "WebSocket upgrade on /health",
            health
            + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        (
            "h2c upgrade",
            health
            + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: %%\r\n\r\n",
        ),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("TLS ClientHello", bytes.fromhex("16030100a5010000a10303") + rng.randbytes(160)),
        (
            "raw UTF-8 in the target",
            "GET /api/dues/\u041a\u0410 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        ),
        ("invalid UTF-8 in the target", b"GET /api/dues/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("control characters in the target", b"GET /\x01\x7f HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("valid request then garbage", health + b"\r\n" + rng.randbytes(300)),
        ("100 pipelined requests", (health + b"\r\n") * 100),
    ]
    cases += [(f"{n} random bytes", rng.randbytes(n)) for n in (1, 7, 64, 1000, 65_536)]
    for number in range(25):
        data, steps = mutate(
            rng, request("PUT", f"/api/dues/{PLATE}", b'{"amount": 5}', JSON), rng.randint(1, 5)
        )
        cases.append((f"request #{number} mutated ({steps})", data))
    return [
        Probe(f"raw: {name}", data, ours=False, answer_expected=False, half_close=True, timeout=5.0)
        for name, data in cases
    ]


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
                connection.sendall(b"POST /detect HTTP/1.1\r\nHost: x\r\nX-Slow: ")
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


# --- configs -------------------------------------------------------------------------------

BASE_CONFIG: dict[str, Any] = {
    "cameras": [
        {"name": "gate-1", "source": "/srv/video/gate-1.mp4", "tracker": {"lost_timeout_s": 2.0}},
        {
            "name": "exit-lane",
            "source": "rtsp://viewer:s3cret@192.0.2.10/stream1",
            "live": {"transport": "udp"},
            "plates": {"formats": ["in_rto", "eu"]},
        },
    ],
    "events_log": "recordings/events.jsonl",
    "log_level": "INFO",
    "detection": {"confidence": 0.25, "rate_fps": 5, "roi": [0.0, 0.35, 1.0, 1.0]},
    "plates": {"formats": ["in_rto"], "min_length": 4, "max_length": 10},
    "dues": {"database": "recordings/dues.sqlite"},
    "http": {"host": "127.0.0.1", "port": 8003, "token": "t0k3n", "max_upload_mb": 10},
    "webhooks": [{"url": "http://127.0.0.1:9000/hook", "secret": "hook", "phases": ["early"]}],
    "outbox": {"database": "recordings/outbox.sqlite"},
}
SOURCES = ["\x00", "gate\x00.mp4", "gopher://192.0.2.1/x", "file:///etc/passwd", "ftp://h/x.mp4"]
SOURCES += ["FILE://x", "javascript:alert(1)", "rtsp://u:p@h:99999/x", "rtsp://", "", " "]
HOSTILE_STRINGS = [*SOURCES, "${FUZZ_UNSET}", "${FUZZ_UNSET:-}", "${FUZZ_UNSET:-${OTHER}}", "${"]
HOSTILE_STRINGS += ["$${X}", "../../../../etc/passwd", "/dev/zero", "0", "x" * 100_000]
HOSTILE_STRINGS += ["\u041a\u0410", "\ud800"]
HOSTILE_NUMBERS: list[Any] = [math.nan, math.inf, -math.inf, -1, 0, 10**100, -(10**100), 1e-320]
HOSTILE_NUMBERS += [2**63, True]
HOSTILE_VALUES: list[Any] = [None, [], [1, [2]], {}, {"a": 1}, "x", 1.5, *HOSTILE_NUMBERS[:4]]
FORMATS = ["A{99999999999}", "A{4294967295}", "[A-Z]{1000000000}", "[A-Z]{0,4294967294}"]
FORMATS += ["[A-Z]{2,1}", "(", "\\", "(?P<", "[", "(?=", "", "|", "(a+)+$"]
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{key}: &{key} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, key in zip("abcdefgh", "bcdefghi", strict=True)
)


def fixed_configs() -> list[tuple[str, bytes]]:
    """Hostile configs written by hand: alias bombs, recursion, deep nesting, bad bytes,
    YAML tags, complex keys, and what the README says fails."""
    camera = "cameras: [{name: a, source: %s}]\n"
    configs: list[tuple[str, str | bytes]] = [
        ("billion laughs at the root", ALIAS_BOMB),
        (
            "billion laughs as the formats",
            "x:\n  " + ALIAS_BOMB.replace("\n", "\n  ") + "\nplates: {formats: *i}\n",
        ),
        (
            "quadratic alias blow-up",
            "a: &a [" + ",".join(["x"] * 1000) + "]\nb: [" + ",".join(["*a"] * 1000) + "]\n",
        ),
        ("recursive alias in the formats", "plates: {formats: &f [*f]}\n"),
        ("recursive alias as a camera", "cameras: &c [*c]\n"),
        ("recursive mapping", "detection: &d {roi: *d}\n"),
        ("undefined alias", "cameras: *nothing\n"),
        ("arrays nested 100,000 deep", "cameras: " + "[" * 100_000 + "]" * 100_000),
        ("unclosed arrays nested 100,000 deep", "cameras: " + "[" * 100_000),
        ("mappings nested 100,000 deep", "cameras: " + "{a: " * 100_000 + "}" * 100_000),
        ("arrays nested 900 deep", "events_log: " + "[" * 900 + "]" * 900),
        ("block mappings nested 300 deep", "".join(f"{' ' * n}k{n}:\n" for n in range(300))),
        ("NUL escape in a source", camera % '"gate\\0.mp4"'),
        ("raw NUL byte", (camera % "gate\x00.mp4").encode()),
        ("Latin-1 byte", (camera % "caf@.mp4").encode().replace(b"@", b"\xe9")),
        ("invalid UTF-8 sequence", (camera % "@.mp4").encode().replace(b"@", b"\xc3\x28")),
        ("UTF-16 with a BOM", (camera % "a.mp4").encode("utf-16")),
        ("UTF-8 BOM", "\ufeff" + camera % "a.mp4"),
        ("lone surrogate escape in a source", camera % '"\\ud800.mp4"'),
        ("min_length above max_length", "plates: {min_length: 12, max_length: 4}\n"),
        (
            "a camera's min_length above the global max_length",
            "plates: {max_length: 8}\n" + camera % "a.mp4, plates: {min_length: 15}",
        ),
        ("empty token", 'http: {token: ""}\n'),
        ("blank token", 'http: {token: "   "}\n'),
        (
            "token from an unset variable with an empty default",
            'http: {token: "${FUZZ_UNSET_TOKEN:-}"}\n',
        ),
        ("python object tag", 'cameras: !!python/object/apply:os.system ["true"]\n'),
        ("python name tag", "cameras: !!python/name:os.system\n"),
        ("binary source", camera % "!!binary aGVsbG8="),
        ("set as formats", "plates: {formats: !!set {in_rto, eu}}\n"),
        ("timestamp as a source", camera % "2001-12-14"),
        ("sequence as a key", "? [a, b]\n: 1\n"),
        ("mapping as a key", "http: {? {a: 1} : 1}\n"),
        ("flow sequence as a key", "{[1, 2]: x}\n"),
        ("two documents", "log_level: INFO\n---\nlog_level: DEBUG\n"),
        ("document marker only", "---\n"),
        ("empty file", ""),
        ("comments only", "# nothing\n"),
        ("null document", "~\n"),
        ("a list", "[]\n"),
        ("a number", "42\n"),
        ("a string", "'just a string'\n"),
        ("merge key", "base: &b {confidence: 0.3}\ndetection: {<<: *b}\n"),
        ("merge of a list of numbers", "cameras: [{<<: [1, 2], name: a, source: a.mp4}]\n"),
        ("duplicate root key", "log_level: INFO\nlog_level: DEBUG\n"),
        ("duplicate camera key", "cameras: [{name: a, name: b, source: a.mp4}]\n"),
        (
            "2,000 cameras",
            "cameras:\n" + "".join(f"  - {{name: c{n}, source: c{n}.mp4}}\n" for n in range(2000)),
        ),
        (
            "duplicate camera names",
            "cameras: [{name: a, source: a.mp4}, {name: a, source: b.mp4}]\n",
        ),
        ("camera name with a path", "cameras: [{name: ../../etc, source: a.mp4}]\n"),
        ("port infinity", "http: {port: .inf}\n"),
        ("port 1e400", "http: {port: 1e400}\n"),
        ("port 99999", "http: {port: 99999}\n"),
        ("integer of 5,000 digits", "events_log_max_bytes: " + "9" * 5000 + "\n"),
        ("NaN confidence", "detection: {confidence: .nan}\n"),
        ("tab indentation", "cameras:\n\t- name: a\n\t  source: a.mp4\n"),
        ("source of 1 MB", camera % ("x" * 1_000_000)),
        ("camera that is a string of 100,000 characters", f"cameras: [{'x' * 100_000}]\n"),
        ("unset variable in a source", camera % "'${FUZZ_UNSET}'"),
        ("integer, null and float keys", "1: a\nnull: b\n.nan: c\n"),
        ("CR line endings", "log_level: INFO\rhttp: {port: 1}\r"),
        ("NEL line endings", "log_level: INFO\x85http: {port: 1}\x85"),
        ("%YAML directive of another version", "%YAML 9.9\n---\nlog_level: INFO\n"),
    ]
    for source in (
        "gopher://192.0.2.1/x",
        "file:///etc/passwd",
        "ftp://h/x",
        "dict://h/",
        "Gopher://h/",
    ):
        configs.append((f"source {source}", camera % f"'{source}'"))
    for entry in FORMATS:
        configs.append(
            (f"plate format {entry!r}", yaml.safe_dump({"plates": {"formats": [entry]}}))
        )
    return [
        (name, text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        for name, text in configs
    ]


#: Of the hand-written configs, those also run through ``streamer check-config``.
CLI_CONFIGS = [
    "billion laughs at the root",
    "recursive alias in the formats",
    "arrays nested 100,000 deep",
    "Latin-1 byte",
    "raw NUL byte",
    "lone surrogate escape in a source",
    "sequence as a key",
    "empty token",
    "source gopher://192.0.2.1/x",
    "plate format 'A{99999999999}'",
]


def node_paths(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node below ``tree`` (mapping keys and list indices)."""
    if isinstance(tree, dict):
        items = list(tree.items())
    elif isinstance(tree, list):
        items = list(enumerate(tree))
    else:
        return []
    paths = []
    for key, value in items:
        paths += [(*path, key), *node_paths(value, (*path, key))]
    return paths


def mutated_config(rng: random.Random, base: bytes) -> tuple[str, bytes]:
    """One random mutation of the base config: of its tree or of its text."""
    tree = json.loads(json.dumps(BASE_CONFIG))
    path = rng.choice(node_paths(tree))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    where = ".".join(map(str, path))
    op = rng.randrange(12)
    if op == 0:
        del parent[path[-1]]
        name = f"{where} deleted"
    elif op in (1, 2, 3):
        value = rng.choice([HOSTILE_VALUES, HOSTILE_STRINGS, HOSTILE_NUMBERS][op - 1])
        parent[path[-1]] = value
        name = f"{where} = {shorten(value, 40)}"
    elif op == 4:
        camera, source = rng.randrange(2), rng.choice(SOURCES)
        tree["cameras"][camera]["source"] = source
        name = f"cameras.{camera}.source = {source!r}"
    elif op == 5:
        low, high = rng.randint(1, 20), rng.randint(1, 20)
        rng.choice([tree["plates"], tree["cameras"][1]["plates"]]).update(
            min_length=low, max_length=high
        )
        name = f"plates min_length {low}, max_length {high}"
    elif op == 6:
        entry = rng.choice(FORMATS)
        tree["plates"]["formats"] = [entry]
        name = f"plates.formats = [{entry!r}]"
    else:
        lines = base.split(b"\n")
        line, at = rng.randrange(len(lines)), rng.randrange(len(base) + 1)
        if op == 7:
            lines.insert(line, lines[line])
            return f"line {line + 1} repeated", b"\n".join(lines)
        if op == 8:
            del lines[line]
            return f"line {line + 1} deleted", b"\n".join(lines)
        if op in (9, 10):
            inserted = rng.choice(
                [b"\x00", b"\xff", b"\xe9", b"\xc3\x28", b"\t", b"\xc2\x85", b"\xed\xa0\x80"]
                if op == 9
                else [b"*undefined ", b"&a ", b"!!binary ", b"? ", b": ", b"- ", b"{", b"[", b'"']
            )
            return f"{inserted!r} inserted at byte {at}", base[:at] + inserted + base[at:]
        data, steps = mutate(rng, base, rng.randint(1, 3))
        return f"text mutated ({steps})", data
    return name, yaml.safe_dump(tree, sort_keys=False).encode()


def readme_rules(config: Config) -> list[str]:
    """What a loaded config holds that the README says fails."""
    broken = []
    for camera in config.cameras:
        scheme, separator, _ = camera.source.partition("://")
        if "\x00" in camera.source:
            broken.append(f"camera {camera.name}: NUL in its source")
        if separator and scheme.lower() not in STREAM_SCHEMES:
            broken.append(f"camera {camera.name}: scheme {scheme!r}")
        if camera.plates.min_length > camera.plates.max_length:
            broken.append(f"camera {camera.name}: plates.min_length above plates.max_length")
    if config.http.token is not None and not config.http.token.strip():
        broken.append("an empty http.token")
    return broken


def load_one(path: Path, description: str, tally: Tally) -> None:
    """Load one config: it loads (following the README's rules, with plate formats that
    can be used) or raises ConfigError, within 5 s and 512 MB; anything else fails."""
    try:
        with bounded(5.0, 512.0):
            config = load_config(path)
    except ConfigError:
        tally.count("ConfigError")
        return
    except Exception as error:
        tally.count(type(error).__name__)
        tally.fail(description, f"load_config raised {type(error).__name__}: {shorten(str(error))}")
        return
    tally.count("loaded")
    for rule in readme_rules(config):
        tally.fail(description, f"loaded, yet the README says it fails: {rule}")
    for camera in config.cameras:
        try:
            with bounded(5.0, 512.0):
                fix_confusions("KA0IAB1Z34", camera.plates.formats)
                matches_format("KA01AB1234", camera.plates.formats)
        except Exception as error:
            tally.fail(
                description,
                f"loaded, then reading a plate with camera {camera.name}'s formats "
                f"{shorten(camera.plates.formats, 80)} failed: {type(error).__name__}: {error}",
            )
            break


def test_hostile_configs_load_or_raise_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("FUZZ_UNSET", "FUZZ_UNSET_TOKEN", "OTHER"):
        monkeypatch.delenv(name, raising=False)
    rng = random.Random(f"{SEED}-config")
    tally = Tally("config", minimum=300)
    base = yaml.safe_dump(BASE_CONFIG, sort_keys=False).encode()
    (tmp_path / "base.yaml").write_bytes(base)
    load_config(tmp_path / "base.yaml")  # the mutations start from a valid config
    inputs = fixed_configs()
    while len(inputs) < 330:
        inputs.append(mutated_config(rng, base))
    paths = {}
    for number, (description, data) in enumerate(inputs):
        if tally.over_budget(number, len(inputs)):
            break
        path = paths[description] = tmp_path / f"config-{number}.yaml"
        path.write_bytes(data)
        load_one(path, f"config #{number} ({description})", tally)
    for description in CLI_CONFIGS:
        command = [sys.executable, "-m", "streamer", "check-config", "--config"]
        command.append(str(paths[description]))
        name = f"streamer check-config on {description} ({paths[description].name})"
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, errors="replace", timeout=60, check=False
            )
        except subprocess.TimeoutExpired:
            tally.fail(name, "still running after 60 s")
            continue
        tally.outcomes[f"check-config exit {result.returncode}"] += 1
        if result.returncode not in (0, 2) or "Traceback" in result.stderr:
            lines = [line for line in result.stderr.splitlines() if line and line[0] != " "]
            tally.fail(name, f"exit {result.returncode}, stderr ending {shorten(lines[-2:])}")
    tally.report(capsys)
    tally.verdict()


# --- videos --------------------------------------------------------------------------------


def video_variants(rng: random.Random, video: bytes) -> list[tuple[str, bytes | None, bool]]:
    """Damaged copies of ``video`` (an MP4 whose index, ``moov``, is at its end), and files
    that are no video at all: (description, bytes or ``None`` for a directory, whether it
    is a copy of ``video``)."""
    moov, mdat, size = video.rfind(b"moov") - 4, video.find(b"mdat") - 4, len(video)
    middle = size // 2
    variants: list[tuple[str, bytes | None, bool]] = [
        ("empty file", b"", False),
        ("one byte", video[:1], False),
        ("64 kB of random bytes", rng.randbytes(65_536), False),
        ("a text file", b"this is not a video\n" * 100, False),
        ("a PNG", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(), False),
        ("a directory", None, False),
        ("first 32 bytes zeroed", bytes(32) + video[32:], True),
        ("first 4 kB zeroed", bytes(4096) + video[4096:], True),
        ("ftyp box only", video[:28], True),
        ("index (moov) removed", video[:moov], True),
        ("index size 0xFFFFFFFF", video[:moov] + b"\xff" * 4 + video[moov + 4 :], True),
        (
            "index size 1 (a 64-bit size of garbage)",
            video[:moov] + b"\0\0\0\1" + video[moov + 4 :],
            True,
        ),
        ("media size 0xFFFFFFFF", video[:mdat] + b"\xff" * 4 + video[mdat + 4 :], True),
        ("index twice", video + video[moov:], True),
        ("middle 4 kB zeroed", video[:middle] + bytes(4096) + video[middle + 4096 :], True),
    ]
    for cut in [*sorted(rng.sample(range(1, moov), 4)), moov + 8, size - 16]:
        variants.append((f"truncated at byte {cut} of {size}", video[:cut], True))
    for flips in (1, 10, 100, 1000):
        data = bytearray(video)
        for at in rng.sample(range(mdat + 8, moov), flips):
            data[at] ^= 1 << rng.randrange(8)
        variants.append((f"{flips} bits flipped in the frames", bytes(data), True))
    for count in (1, 10, 50):
        data = bytearray(video)
        for at in rng.sample(range(moov + 8, size), count):
            data[at] = rng.randrange(256)
        variants.append((f"{count} bytes of the index randomised", bytes(data), True))
    for table in (b"stsz", b"stco", b"stts", b"stsc"):
        at = video.rfind(table)
        garbage = b"\xff" * 4 + rng.randbytes(60)
        variants.append(
            (f"{table.decode()} table garbage", video[: at + 8] + garbage + video[at + 72 :], True)
        )
    return variants


def read_source(path: Path, timeout: float) -> tuple[int, BaseException | None, bool]:
    """Read ``path`` through the project's file source: the frames decoded, the error it
    raised, and whether it was still reading after ``timeout``."""
    raised: list[BaseException] = []
    try:
        source = open_source(CameraConfig(name="fuzz", source=str(path)))
    except Exception as error:
        return 0, error, False

    def drain() -> None:
        try:
            for _ in source.frames():
                pass
        except BaseException as error:
            raised.append(error)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    reader.join(timeout)
    hung = reader.is_alive()
    if hung:
        source.close()
        reader.join(5)
    return source.decoded, raised[0] if raised else None, hung


def replay_config(folder: Path) -> Path:
    """A config whose files all live in ``folder``."""
    config = folder / "replay.yaml"
    data = {
        "cameras": [{"name": "cam", "source": "unused.mp4"}],
        "events_log": str(folder / "replay-events.jsonl"),
        "dues": {"database": str(folder / "dues.sqlite")},
        "recordings": {"directory": str(folder / "evidence")},
        "outbox": {"database": str(folder / "outbox.sqlite")},
        "http": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(data))
    return config


def test_damaged_recordings_fail_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-video")
    tally = Tally("video", minimum=30)
    vehicle = (DemoVehicle("KA05MN4821", 0.0, ""),)
    clip = render_video(
        tmp_path / "clip.mp4",
        vehicle,
        fps=10.0,
        size=(320, 240),
        seconds_per_vehicle=1.0,
        gap_seconds=0.2,
        seed=SEED % 1000,
    )
    intact, error, _ = read_source(clip.path, 30)
    assert error is None
    assert intact == clip.frame_count
    caplog.set_level(logging.WARNING, logger="streamer")
    variants = video_variants(rng, clip.path.read_bytes())
    files = {}
    for number, (description, data, copy) in enumerate(variants):
        if tally.over_budget(number, len(variants)):
            break
        path = files[description] = tmp_path / f"damaged-{number}.mp4"
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
        name = f"video #{number} ({description}, {path.name})"
        caplog.clear()
        decoded, error, hung = read_source(path, 30)
        warned = any(
            r.levelno >= logging.WARNING and path.name in r.getMessage() for r in caplog.records
        )
        if hung:
            tally.count("hung")
            tally.fail(name, f"still reading after 30 s ({decoded} frames)")
        elif error is not None and not isinstance(error, SourceError):
            tally.count(type(error).__name__)
            tally.fail(name, f"raised {type(error).__name__}: {shorten(str(error))}")
        elif error is not None:
            tally.count("SourceError")
            if path.name not in str(error):
                tally.fail(name, f"its error does not name the file: {shorten(str(error))}")
        elif not copy or decoded >= intact - 1:
            tally.count("decoded")  # the README: one missing frame is the container's rounding
        elif warned:
            tally.count("partly decoded, with a warning")
        else:
            tally.count("partly decoded, silently")
            tally.fail(name, f"{decoded} of {intact} frames decoded without an error or a warning")
    damaged = [
        files[name]
        for name in ("empty file", "64 kB of random bytes", "index (moov) removed", "a directory")
    ]
    command = [sys.executable, "-m", "streamer", "replay", str(clip.path), *map(str, damaged)]
    command += ["--config", str(replay_config(tmp_path))]
    name = "streamer replay " + " ".join(path.name for path in [clip.path, *damaged])
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=180, check=False
        )
    except subprocess.TimeoutExpired:
        tally.fail(name, "still running after 180 s")
    else:
        tally.count(f"replay exit {result.returncode}")
        if "Traceback" in result.stderr or result.returncode != 1:
            tally.fail(
                name, f"exit {result.returncode}, stderr {shorten(result.stderr[-800:], 900)}"
            )
        for path in damaged:
            if path.name not in result.stderr:
                tally.fail(
                    name, f"its errors do not name {path.name}: {shorten(result.stderr[-400:])}"
                )
    tally.report(capsys)
    tally.verdict()


# --- dues CSVs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvCase:
    """A dues CSV and what its import must do.

    Attributes:
        description: what is wrong with it.
        data: its bytes.
        refuse: when set, the import must fail, for this reason.
        bad_line: the line its error must name, when one line is bad.
        rows: the records a successful import must count, when known.
    """

    description: str
    data: bytes
    refuse: str = ""
    bad_line: int | None = None
    rows: int | None = None


AMOUNT_RULE = "the README: an amount that is not a finite, non-negative number is refused"
BAD_AMOUNTS = ["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1", "-0.01"]
BAD_AMOUNTS += ["abc", "0x10", "1e", "--1", "", '"1,5"', "9" * 400, "-" + "9" * 400]
GOOD_AMOUNTS = ["0", "0.0", "1e308", " 12 ", "+5", "1500.50", "1e-400"]
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def plate_text(rng: random.Random) -> str:
    """A valid Indian plate."""
    state, series = (
        "".join(rng.choices(LETTERS, k=2)),
        "".join(rng.choices(LETTERS, k=rng.randint(1, 2))),
    )
    return f"{state}{rng.randint(1, 99):02d}{series}{rng.randint(0, 9999):04d}"


def csv_case(rng: random.Random, number: int) -> CsvCase:
    """One generated dues CSV with one defect, or (one in seven) random damage."""
    count = rng.randint(1, 25)
    rows = [
        [
            plate_text(rng),
            f"{rng.randint(0, 5000)}.{rng.randint(0, 99):02d}",
            rng.choice(["", "Toll", "Fine"]),
        ]
        for _ in range(count)
    ]
    header = rng.choice(
        [
            ["plate", "amount", "message"],
            ["Plate ", " AMOUNT", "message"],
            ["amount", "plate", "message"],
        ]
    )
    order = [["plate", "amount", "message"].index(name.strip().lower()) for name in header]

    def encode(table: list[list[str]], ending: str = "\n") -> bytes:
        lines = [",".join(header)]
        lines += [",".join([row[i] for i in order if i < len(row)] + row[3:]) for row in table]
        return (ending.join(lines) + ending).encode("utf-8", "surrogateescape")

    bad = rng.randrange(count)
    line = bad + 2
    kind = rng.randrange(14)
    if kind == 0:
        rows[bad].append("extra")
        return CsvCase(
            f"extra column on line {line}",
            encode(rows),
            "the README: an extra column is refused",
            line,
        )
    if kind == 1:
        rows[bad][1] = rng.choice(BAD_AMOUNTS)
        return CsvCase(
            f"amount {shorten(rows[bad][1], 30)} on line {line}", encode(rows), AMOUNT_RULE, line
        )
    if kind == 2:
        rows[bad][1] = rng.choice(GOOD_AMOUNTS)
        return CsvCase(f"amount {rows[bad][1]!r} on line {line}", encode(rows), rows=count)
    if kind == 3:
        rows[bad][0] = rng.choice([*FOREIGN_PLATES, "\U0001f697", "---", "", "  "])
        rule = (
            FOREIGN_RULE if rows[bad][0] in FOREIGN_PLATES else "a plate with no letters or digits"
        )
        return CsvCase(f"plate {rows[bad][0]!r} on line {line}", encode(rows), rule, line)
    if kind == 4:
        rows[bad][2] = "Caf\udce9 fine"  # encoded as the Latin-1 byte 0xE9
        return CsvCase(
            f"Latin-1 byte in the message on line {line}",
            encode(rows),
            "the README: a byte that is not UTF-8 is refused",
            line,
        )
    if kind == 5:
        column = rng.randrange(3)
        rows[bad][column] = rows[bad][column][:2] + "\x00" + rows[bad][column][2:]
        return CsvCase(
            f"NUL in {['plate', 'amount', 'message'][column]} on line {line}",
            encode(rows),
            "",
            line,
            count,
        )
    if kind == 6:
        rows[bad][2] = "m" * rng.choice([131_073, 500_000])
        return CsvCase(
            f"message of {len(rows[bad][2])} characters on line {line}",
            encode(rows),
            "",
            line,
            count,
        )
    if kind == 7:
        column = rng.choice([0, 2])
        rows[bad][column] = '"' + rows[bad][column]
        name = ["plate", "amount", "message"][column]
        return CsvCase(
            f"unbalanced quote opening the {name} on line {line}", encode(rows), rows=count
        )
    if kind == 8:
        del rows[bad][1:]
        return CsvCase(
            f"a row of one column on line {line}", encode(rows), "a row without an amount", line
        )
    if kind == 9:
        return CsvCase("byte-order mark", b"\xef\xbb\xbf" + encode(rows), rows=count)
    if kind == 10:
        ending = rng.choice(["\r\n", "\r"])
        return CsvCase(f"{ending!r} line endings", encode(rows, ending), rows=count)
    if kind == 11:
        plate = rows[bad][0]
        rows[bad][0] = f"{plate[:2].lower()}-{plate[2:4]} {plate[4:]}"
        rows.append(list(rows[bad]))
        return CsvCase(
            f"lower-case, punctuated, repeated plate on line {line}", encode(rows), rows=count + 1
        )
    if kind == 12:
        no_header = "no header row"
        name, data, rule, at, expected = rng.choice(
            [
                ("empty file", b"", no_header, 1, None),
                ("header only", encode([]), "", None, 0),
                ("no header", encode(rows).split(b"\n", 1)[1], no_header, 1, None),
                ("header without amount", b"plate,message\nKA01AB1234,x\n", no_header, 1, None),
                ("semicolons", encode(rows).replace(b",", b";"), no_header, 1, None),
                ("UTF-16", encode(rows).decode().encode("utf-16"), "not UTF-8", 1, None),
                (
                    "10,000 rows",
                    encode([[plate_text(rng), "5", ""] for _ in range(10_000)]),
                    "",
                    None,
                    10_000,
                ),
            ]
        )
        return CsvCase(name, data, rule, at, expected)
    data, steps = mutate(rng, encode(rows), rng.randint(1, 4))
    return CsvCase(f"mutated ({steps})", data)


def check_import(case: CsvCase, folder: Path, seed_db: Path, tally: Tally, name: str) -> None:
    """Import one CSV into a copy of ``seed_db`` and check what happened against ``case``."""
    database, csv_path = folder / "dues.sqlite", folder / "dues.csv"
    shutil.copyfile(seed_db, database)
    csv_path.write_bytes(case.data)
    dues = SqlDues(database)
    before = dues.records()
    if case.bad_line is not None:
        lines = case.data.splitlines()
        shown = lines[case.bad_line - 1] if case.bad_line <= len(lines) else b""
        name += f" [line {case.bad_line}: {shorten(shown, 70)}]"
    try:
        with bounded(10.0, 512.0):
            imported = dues.import_csv(csv_path)
    except DuesError as error:
        tally.count("DuesError")
        message = str(error)
        if dues.records() != before:
            tally.fail(name, "the failed import changed the database")
        match = re.match(rf"{re.escape(str(csv_path))}:(\d+): ", message)
        if match is None:
            tally.fail(name, f"its error names no line: {shorten(message)}")
        elif case.bad_line is not None and int(match.group(1)) != case.bad_line:
            tally.fail(
                name,
                f"its error names line {match.group(1)}, not {case.bad_line}: {shorten(message)}",
            )
        return
    except Exception as error:
        tally.count(type(error).__name__)
        tally.fail(name, f"import_csv raised {type(error).__name__}: {shorten(str(error))}")
        return
    tally.count("imported")
    if case.refuse:
        tally.fail(name, f"imported {imported} rows; {case.refuse}")
    elif case.rows is not None and imported != case.rows:
        tally.fail(name, f"imported {imported} rows, not the {case.rows} it holds")
    for record in dues.records():
        if not re.fullmatch("[A-Z0-9]+", record.plate) or not (
            math.isfinite(record.amount) and record.amount >= 0
        ):
            tally.fail(
                name, f"stored plate {shorten(record.plate, 40)} with amount {record.amount}"
            )
            break


def test_hostile_dues_csvs_import_whole_or_not_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-csv")
    tally = Tally("dues CSV", minimum=300)
    seed_db = tmp_path / "seed.sqlite"
    seeded = SqlDues(seed_db)
    for number in range(5):
        seeded.set(plate_text(rng), 100.0 * number, "seeded")
    cases = [csv_case(rng, number) for number in range(320)]
    for number, case in enumerate(cases):
        if tally.over_budget(number, len(cases)):
            break
        check_import(case, tmp_path, seed_db, tally, f"CSV #{number} ({case.description})")
    tally.report(capsys)
    tally.verdict()
