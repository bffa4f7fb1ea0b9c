"""HTTP probes for the fuzzing harness: hostile multipart uploads, JSON, plates, evidence
paths, each with what a correct answer is."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import random
import re
import socket
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from support.fuzz import ANSWER_TIMEOUT_S, FOREIGN_RULE, mutate, shorten

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
    host: str | None = "127.0.0.1",
) -> bytes:
    """A complete HTTP/1.1 request (``Connection: close``, with its Content-Length); its
    ``Host`` header ``host`` (none when ``None``). Lone surrogates in ``target`` or a
    header are sent as the bytes they stand for (as ``surrogateescape`` decodes them)."""
    lines = [f"{method} {target} HTTP/1.1", *([f"Host: {host}"] if host is not None else [])]
    lines.append("Connection: close")
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


# --- Host, Origin and Authorization headers; line breaks in what is logged -------------
