"""The plate lists over HTTP, on a running daemon: managing them, paging through them, and
hostile plates, notes, expiries, names and bodies (each a 4xx naming what is wrong)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import pytest
import requests

from streamer.reading.ocr import OcrEngine
from streamer.reading.plates import normalise
from streamer.vision.detect import YoloDetector

from support.daemon import ServiceThread, make_config
from support.fuzz import SEED, Tally, shorten
from support.probes import FOREIGN_PLATES, JSON, ODD_PLATES, Probe, exchange, request


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, detector: YoloDetector, engine: OcrEngine
) -> Iterator[ServiceThread]:
    """``streamer serve`` with three lists managed here and one that is a file."""
    tmp_path = tmp_path_factory.mktemp("lists")
    banned = tmp_path / "banned.csv"
    banned.write_text("plate\nMH12XY7395\n")
    config = make_config(
        tmp_path,
        lists={
            "residents": {"description": "Who lives here"},
            "banned": {"file": str(banned)},
            "visitors": None,
            "fleet": None,
        },
        http={"enabled": True, "port": 0},
        cameras=[{"name": "cam", "source": str(tmp_path / "none.mp4"), "enabled": False}],
    )
    with ServiceThread(config, detector, engine, serve_only=True) as running:
        yield running


def test_the_api_manages_lists(daemon: ServiceThread) -> None:
    url = f"{daemon.url}/api/lists"
    put = requests.put(f"{url}/residents/ka01ab1234", json={"note": "flat 4"}, timeout=10)
    assert put.status_code == 200, put.text
    assert put.json()["plate_number"] == "KA01AB1234"
    banned = str(daemon.service.config.lists["banned"].file)
    assert requests.get(url, timeout=10).json()["lists"][:2] == [
        {"name": "residents", "description": "Who lives here", "entries": 1, "file": None},
        {"name": "banned", "description": "", "entries": 1, "file": banned},
    ]
    (entry,) = requests.get(f"{url}/residents", timeout=10).json()["entries"]
    assert (entry["plate_number"], entry["note"], entry["expires"]) == (
        "KA01AB1234",
        "flat 4",
        None,
    )
    until = requests.put(f"{url}/residents/KA01AB1234", json={"expires": "2020-01-01"}, timeout=10)
    assert until.json()["expired"] is True
    for method, path, body, status in [
        ("put", "/visitors-x/KA01AB1234", {}, 404),
        ("put", "/banned/KA01AB1234", {}, 409),
        ("delete", "/banned/MH12XY7395", None, 409),
        ("put", "/residents/KA01AB1234", {"expires": "soon"}, 400),
        ("put", "/residents/KA01AB1234", {"colour": "red"}, 400),
        ("put", "/residents/KA01AB1234", {"note": 5}, 400),
        ("put", "/residents/%E2%80%94", {}, 400),
    ]:
        answer = requests.request(method, url + path, json=body, timeout=10)
        assert answer.status_code == status, (path, body, answer.text)
        assert answer.json()["error"]
    assert requests.delete(f"{url}/residents/KA01AB1234", timeout=10).status_code == 204
    assert requests.delete(f"{url}/residents/KA01AB1234", timeout=10).status_code == 404


@pytest.mark.parametrize(
    "expires", ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30+01:00"]
)
def test_an_expiry_outside_the_calendar_is_a_400_and_stores_nothing(
    daemon: ServiceThread, expires: str
) -> None:
    url = f"{daemon.url}/api/lists/visitors"
    answer = requests.put(f"{url}/DL07CR6158", json={"expires": expires}, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"expires: '{expires}' is outside the years 1 to")
    listing = requests.get(url, timeout=10)
    assert listing.status_code == 200, listing.text
    assert "DL07CR6158" not in {entry["plate_number"] for entry in listing.json()["entries"]}


def test_9999_12_31_is_never(daemon: ServiceThread) -> None:
    answer = requests.put(
        f"{daemon.url}/api/lists/visitors/TN09CK2046", json={"expires": "9999-12-31"}, timeout=10
    )
    assert (answer.json()["expires"], answer.json()["expired"]) == (None, False)


def test_a_list_is_read_a_page_at_a_time(daemon: ServiceThread) -> None:
    url = f"{daemon.url}/api/lists/fleet"
    for number in range(120):
        assert requests.put(f"{url}/MH12FL{number:04d}", json={}, timeout=10).ok
    first = requests.get(url, timeout=10).json()
    assert (len(first["entries"]), first["total"], first["limit"], first["offset"]) == (
        100,
        120,
        100,
        0,
    )
    last = requests.get(url, params={"limit": 15, "offset": 110}, timeout=10).json()
    assert [entry["plate_number"] for entry in last["entries"]] == [
        f"MH12FL{number:04d}" for number in range(110, 120)
    ]
    for name, value, error in [
        ("limit", "0", "limit: must be between 1 and 1000 (got 0)"),
        ("limit", "1001", "limit: must be between 1 and 1000 (got 1001)"),
        ("offset", "-1", "offset: must be between 0 and 1000000000 (got -1)"),
        ("limit", "ten", "limit: expected an integer (got 'ten')"),
    ]:
        answer = requests.get(url, params={name: value}, timeout=10)
        assert (answer.status_code, answer.json()) == (400, {"error": error})


# --- hostile requests ----------------------------------------------------------------------


@dataclass(frozen=True)
class ListProbe:
    """A request to the lists API and what its answer must be.

    Attributes:
        probe: the request.
        fields: when the request is bad, the fields (or ``list``) an error may name: the
            answer must be a 4xx whose error starts with one of them.
        may_refuse: fields whose values the rules leave open (an odd but harmless plate).
        plate: the plate it is about, to follow what the list holds.
    """

    probe: Probe
    fields: tuple[str, ...] = ()
    may_refuse: tuple[str, ...] = ()
    plate: str = ""


GOOD_NOTES: list[object] = ["", "flat 4", "Caf\u00e9 \U0001f697", "n" * 1000, "a\u2028b"]
BAD_NOTES: list[object] = ["n" * 1001, "two\nlines", "a\u0000b", "tab\there", "\ud800", 5, None]
BAD_NOTES += [[], {"a": 1}, True]
GOOD_EXPIRIES: list[object] = ["", None, "2030-06-15", "9999-12-31", "2030-06-15T08:00:00Z"]
GOOD_EXPIRIES += ["2030-06-15T08:00+05:30", "2020-01-01", "0001-01-02"]
BAD_EXPIRIES: list[object] = ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00", "soon"]
BAD_EXPIRIES += ["2030-02-30", "10000-01-01", "0000-01-01", "2030-01-01T25:00", "Z", 5, 1.5]
BAD_EXPIRIES += ["2030-01-01T00:00+25:00", "x" * 10_000, True, [], "2030-01-01\u0000", "\ud800"]
#: Plates the rules refuse: outside A-Z and 0-9, none at all, control characters, too long.
BAD_PLATES = [*FOREIGN_PLATES, "---", " ", ".", "KA01\tAB", "KA\x7f01", "\x00", "K" * 17]
ODD_NAMES = ["nope", "\x00", "r" * 300, "r\u00e9sidents", "RESIDENTS", "residents ", "%"]


def put(name: str, plate: str, body: bytes) -> bytes:
    target = f"/api/lists/{quote(name, safe='')}/{quote(plate, safe='')}"
    return request("PUT", target, body, JSON)


def list_probes(rng: random.Random) -> list[ListProbe]:
    """PUT, DELETE and GET of the lists API with hostile plates, notes, expiries, names,
    bodies and paging, each alone and at random together."""
    probes = []
    for plate in BAD_PLATES + ODD_PLATES:
        shown = shorten(plate, 30)
        bad = ("plate",) if plate in BAD_PLATES else ()
        for method in ("PUT", "DELETE"):
            body = b"{}" if method == "PUT" else b""
            target = f"/api/lists/visitors/{quote(plate, safe='')}"
            data = request(method, target, body, JSON if body else None)
            probes.append(ListProbe(Probe(f"{method} plate {shown}", data), bad, ("plate",), plate))
    for name in [*ODD_NAMES, "banned"]:
        for method, body in (("PUT", b"{}"), ("DELETE", b""), ("GET", b"")):
            target = f"/api/lists/{quote(name, safe='')}" + ("" if method == "GET" else "/AB12")
            data = request(method, target, body, JSON if body else None)
            fields = () if method == "GET" and name == "banned" else ("list", "no list")
            probes.append(ListProbe(Probe(f"{method} list {shorten(name, 30)}", data), fields))
    for number in range(500):
        plate = f"DL{number % 50:02d}CR{rng.randint(0, 9999):04d}"
        fields: list[str] = []
        body: dict[str, object] = {}
        if rng.random() < 0.6:
            bad = rng.random() < 0.5
            body["note"] = rng.choice(BAD_NOTES if bad else GOOD_NOTES)
            fields += ["note"] if bad else []
        if rng.random() < 0.6:
            bad = rng.random() < 0.5
            body["expires"] = rng.choice(BAD_EXPIRIES if bad else GOOD_EXPIRIES)
            fields += ["expires"] if bad else []
        if rng.random() < 0.1:
            body["colour"] = "red"
            fields.append("colour")
        if rng.random() < 0.1:
            plate = rng.choice(BAD_PLATES)
            fields.append("plate")
        data = json.dumps(body).encode()
        if rng.random() < 0.05:
            data, fields = rng.choice([b"", b"[]", b"{", b"\xff", b'"x"', b"null"]), ["body"]
            fields += ["plate"] if plate in BAD_PLATES else []
        description = f"PUT #{number} {shorten(plate, 20)} {shorten(data, 120)}"
        probes.append(ListProbe(Probe(description, put("visitors", plate, data)), tuple(fields)))
    for value in ["0", "-1", "1001", "abc", "1e3", "9" * 30, "", "%00", "1.5", "0x10"]:
        for name in ("limit", "offset"):
            target = f"/api/lists/visitors?{name}={value}"
            legal = name == "offset" and value in ("0", "1001")
            probes.append(
                ListProbe(Probe(f"GET {target}", request("GET", target)), () if legal else (name,))
            )
    return probes


def judge(case: ListProbe, status: int, body: bytes) -> str | None:
    """What is wrong with the answer to ``case``, if anything."""
    if status >= 500:
        return f"answered {status} {shorten(body)}"
    error = None
    if status >= 400:
        try:
            error = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            return f"answered {status} without a JSON error: {shorten(body)}"
    if case.probe.method == "DELETE" and status == 404 and "not on list" in (error or ""):
        return None  # a good plate that was not on the list
    if case.fields and error is None:
        return f"accepted it ({status} {shorten(body)}); bad: {', '.join(case.fields)}"
    if error is not None and not case.fields and not case.may_refuse:
        return f"refused a good request: {status} {shorten(error)}"
    named = case.fields or case.may_refuse
    if error is not None and not any(error.startswith(f) for f in named):
        return f"its error names none of {', '.join(named)}: {shorten(error)}"
    return None


def test_the_lists_api_survives_hostile_requests(
    daemon: ServiceThread, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-lists-api")
    tally = Tally("lists API", minimum=600)
    port = int(daemon.url.rsplit(":", 1)[1])
    caplog.set_level(logging.ERROR)
    held: set[str] = set()  # what "visitors" must hold, from the answers
    probes = list_probes(rng)
    for number, case in enumerate(probes):
        if tally.over_budget(number, len(probes)):
            break
        reply, outcome = exchange(port, case.probe)
        if reply is None:
            tally.count(outcome)
            tally.fail(case.probe.description, f"no answer: {outcome}")
            continue
        tally.count(str(reply.status))
        problem = judge(case, reply.status, reply.body)
        if problem:
            tally.fail(case.probe.description, problem)
        target = case.probe.data.split(b" ", 2)[1]
        if target.startswith(b"/api/lists/visitors/") and reply.status in (200, 204):
            if case.probe.method == "PUT":
                held.add(json.loads(reply.body)["plate_number"])
            else:
                held.discard(normalise(case.plate))
    for record in caplog.records:
        if record.exc_info:
            tally.fail("the daemon's log", f"a traceback: {record.getMessage()}")
    listing = requests.get(f"{daemon.url}/api/lists/visitors?limit=1000", timeout=10)
    if listing.status_code != 200:
        tally.fail("GET /api/lists/visitors after the requests", f"{listing.status_code}")
    else:
        entries = listing.json()["entries"]
        stored = {entry["plate_number"] for entry in entries}
        if stored - {"TN09CK2046"} != held:
            extra, missing = sorted(stored - held - {"TN09CK2046"}), sorted(held - stored)
            tally.fail("the list after the requests", f"extra {extra[:5]}, missing {missing[:5]}")
        for entry in entries:
            if entry["expires"] is not None:
                datetime.fromisoformat(entry["expires"])
    tally.report(capsys)
    tally.verdict()
