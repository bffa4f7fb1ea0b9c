"""HTTP probes for the fuzzing harness: hostile multipart uploads, JSON, plates, evidence
paths, random and raw requests, each with what a correct answer is."""

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
    health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    post = b"POST /check_dues HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    chunked = post + b"Transfer-Encoding: chunked\r\n\r\n"
    valid = upload(image)
    upload_head = (
        f"POST /detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {MULTIPART}\r\n".encode()
    )
    big_headers = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 1000) for n in range(1000))
    cases: list[tuple[str, bytes]] = [
        ("empty request line", b"\r\n\r\n"),
        ("method only", b"GET\r\n\r\n"),
        ("no HTTP version", b"GET /health\r\n\r\n"),
        ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n"),
        ("lower-case method", b"get /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        ("method of 10,000 letters", b"A" * 10_000 + b" / HTTP/1.1\r\n\r\n"),
        (
            "request target of 100 kB",
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ),
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
        ("bare LF line endings", b"GET /health HTTP/1.1\nHost: 127.0.0.1\n\n"),
        ("bare CR line endings", b"GET /health HTTP/1.1\rHost: 127.0.0.1\r\r"),
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
        (
            "absolute-form target",
            b"GET http://example.com/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
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
            "GET /api/dues/\u041a\u0410 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
        ),
        (
            "invalid UTF-8 in the target",
            b"GET /api/dues/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ),
        ("control characters in the target", b"GET /\x01\x7f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
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


# --- Host, Origin and Authorization headers; line breaks in what is logged -------------

#: Written right after a line break smuggled into a path, a query or a header: a log line
#: that starts with it was written by a request.
FORGED = "FUZZ-FORGED-LINE"
#: Line breaks (and a NUL) as a URL escapes them.
LINE_BREAKS = ["%0A", "%0D", "%0D%0A", "%0B", "%0C", "%1C", "%C2%85", "%E2%80%A8", "%E2%80%A9"]
LINE_BREAKS += ["%00", "%1B[2J"]
REBINDING = "a Host that is no name of the API must be refused (DNS rebinding)"
CROSS_SITE = "a write from a page of another site must be refused"
NO_TOKEN = "a request without the right token must be refused"


def header_probes(rng: random.Random, token: str, port: int) -> list[Probe]:
    """Requests with the Host, Origin and Authorization headers a hostile page or client
    sends (forged names, other origins, bytes that are not UTF-8), and line breaks where a
    request's values reach the log. For a daemon with the token ``token`` on ``port``."""
    auth = ("Authorization", f"Bearer {token}")
    dues, body = f"/api/dues/{PLATE}", b'{"amount": 5}'
    writes = [("PUT", dues, body, JSON), ("DELETE", dues, b"", None)]
    writes.append(("POST", "/check_dues", b'{"plate_number": "KA01"}', JSON))
    probes = []
    known = ["127.0.0.1", "localhost", "[::1]", "LOCALHOST.", "cam.localhost", "10.1.2.3"]
    for name in known + [f"{name}:{port}" for name in known[:3]]:
        data = request("GET", "/api/events", b"", None, auth, host=name)
        probes.append(Probe(f"Host: {name}", data))
    forged = ["attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io", "localhost.evil"]
    forged += ["xn--n3h.example", "a" * 300, "", "a b", "h:99999", "[::1", "\udcff\udcfe", "x@h"]
    forged += [f"127.0.0.1:{port}, evil", "evil\t", "%31%32%37.0.0.1", "0x7f.1.evil"]
    for name in forged:
        for method, target, payload, kind in [("GET", "/api/events", b"", None), *writes]:
            data = request(method, target, payload, kind, auth, host=name)
            probes.append(
                Probe(f"{method} {target} Host: {shorten(name, 40)}", data, refuse=REBINDING)
            )
    probes.append(
        # aiohttp's parser refuses both itself, before any route.
        Probe(
            "two Host headers",
            request("GET", "/api/events", b"", None, auth, ("Host", "evil")),
            ours=False,
            refuse=REBINDING,
        )
    )
    probes.append(
        Probe(
            "no Host header",
            request("GET", "/api/events", b"", None, auth, host=None),
            ours=False,
        )
    )
    same = [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://127.0.0.1:{port}/x"]
    other = [
        "http://attacker.example",
        "null",
        "http://127.0.0.1:1",
        f"http://127.0.0.1:{port + 1}",
    ]
    other += ["file://", "http://[::1", f"http://127.0.0.1:{port}0", "\udcff", "", "*", "http://"]
    other += [f"ftp://127.0.0.1:{port}", f"http://attacker.example:{port}"]
    for method, target, payload, kind in writes:
        for origin in same:
            data = request(method, target, payload, kind, auth, ("Origin", origin))
            probes.append(Probe(f"{method} {target} Origin: {origin}", data))
        for origin in other:
            data = request(method, target, payload, kind, auth, ("Origin", origin))
            name = f"{method} {target} Origin: {shorten(origin, 40)}"
            probes.append(Probe(name, data, refuse=CROSS_SITE))
    for origin in other[:3]:
        data = request("GET", "/api/events", b"", None, auth, ("Origin", origin))
        probes.append(Probe(f"GET /api/events Origin: {origin}", data))
    good = [f"Bearer {token}", f"bearer {token}", f"BEARER  {token} "]
    bad = ["Bearer \udcff\udcfe", "\udcc3(", f"Bearer {token}\udced\udca0\udc80", "Bearer"]
    bad += ["Bearer ", f"Basic {token}", f"Bearer {token}x", f"Bearer {token[:-1]}", token]
    bad += ["Bearer " + "a" * 5000, f"Bearer\t{token}", "Bearer \u2028"]
    for value in good + bad:
        for target in ("/api/events", "/metrics"):
            data = request("GET", target, b"", None, ("Authorization", value))
            refuse = NO_TOKEN if value in bad else ""
            probes.append(
                Probe(f"GET {target} Authorization: {shorten(value, 40)}", data, refuse=refuse)
            )
    for separator in LINE_BREAKS:
        smuggled = separator + FORGED
        for target in (
            f"/api/dues/KA01{smuggled}",
            f"/nowhere{smuggled}",
            f"/api/events?limit=1{smuggled}",
        ):
            for headers in ((), (auth,)):
                data = request("GET", target, b"", None, *headers)
                probes.append(Probe(f"GET {target}{' with the token' if headers else ''}", data))
    for _ in range(20):  # random bytes in the headers that are checked
        name = rng.choice(["Host", "Origin", "Authorization"])
        value = rng.randbytes(rng.randint(0, 40)).decode("utf-8", "surrogateescape")
        value = value.replace("\r", "").replace("\n", "")
        extra = (name, value) if name != "Host" else auth
        data = request(
            "PUT",
            dues,
            body,
            JSON,
            extra,
            *([auth] if name != "Authorization" else []),
            host=value if name == "Host" else "127.0.0.1",
        )
        # aiohttp's parser refuses control characters in a header itself.
        ours = not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value)
        probes.append(Probe(f"PUT {dues} {name}: {shorten(value, 60)}", data, ours))
    return probes
