"""HTTP probes for the fuzzing harness: random methods, paths and queries, raw requests,
and Host, Origin and token headers with line breaks smuggled into what is logged."""

from __future__ import annotations

import random
import re

from support.fuzz import mutate, shorten
from support.probes import (
    EVIDENCE,
    JSON,
    LINE_LIMIT,
    MULTIPART,
    PLATE,
    ROUTES,
    Probe,
    request,
    upload,
)

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
