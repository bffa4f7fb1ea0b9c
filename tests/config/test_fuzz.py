"""Hostile configs: each loads, or raises one ConfigError naming the key (and no password);
special files as the config or a CSV are refused at once."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
import yarl

from streamer.config import Config, ConfigError, load_config
from streamer.config.formats import compile_format
from streamer.reading.plates import fix_confusions, matches_format
from streamer.stores.records import StoreError, read_csv

from support.fuzz import (
    HOSTILE_NUMBERS,
    HOSTILE_STRINGS,
    HOSTILE_VALUES,
    SEED,
    SOURCES,
    STREAM_SCHEMES,
    Tally,
    bounded,
    mutate,
    node_paths,
    shorten,
)

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
FORMATS = ["A{99999999999}", "A{4294967295}", "[A-Z]{1000000000}", "[A-Z]{0,4294967294}"]
FORMATS += ["[A-Z]{2,1}", "(", "\\", "(?P<", "[", "(?=", "", "|", "(a+)+$"]
#: Formats that backtrack for minutes unless refused: nested and overlapping repetitions.
FORMATS += ["((A+)+)+B", "(A|AB)*C", "(.*A){12}", "(\\w+\\d?)+$", "A*A*A*A*A*B", "(?=(A+)+B)"]
#: The password every URL below carries: it must never be printed.
SECRET = "s3cret"
URLS = [f"http://hook:{SECRET}@[::1/x", "http://h:99999/x", "http://h:0/x", "http://h:-1/x"]
URLS += ["http://h:1e3/x", "http://:80/x", "http:///x", "http://h/\r\nX-Forged: 1", "http://h\x00/"]
URLS += ["http://[::1]:65536/", "https://a..b/", "http://-a-.lan/", "http://" + "a" * 300 + "/"]
URLS += ["http://h/%zz", "http://{camera}.lan/", "http://h:{plate_number}/", "javascript:x"]
URLS += ["http://h/\u2028", "http://\u2603.example/", "http://xn--/", "http://1.2.3.4.5/"]
URLS += ["http://[fe80::1%25eth0]/", f"http://u:{SECRET}@h/p?key={SECRET}", "http://h:8o/"]
URLS += ["HTTP://H/", "http://h/" + "x" * 100_000, "http://[::ffff:1.2.3.4]/", "http://h:/x"]
HEADER_NAMES = ["X-Key\r\n", "X Key", "", "X:Key", "\u041a", "X-Key\x00", "X-Forged\nA"]
HEADER_VALUES = ["a\r\nX-Forged: 1", "a\nb", "a\x00b", "a\x7fb", "\tok", "\u2028", "x" * 9000]
#: Paths that a NUL makes impossible to open.
PATH_KEYS = [("events_log",), ("dues", "database"), ("outbox", "database")]
PATH_KEYS += [("recordings", "directory"), ("lists", "banned", "file")]
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


def random_format(rng: random.Random, depth: int = 0) -> str:
    """A random regex of the shapes plate formats take, and of the shapes that run away."""
    atoms = ["A", "B", "[AB]", ".", "[A-Z]", "\\d", "[0-9A]", "(?:A|AB)", "(?:A|B)", "A?"]
    quantifiers = ["", "", "*", "+", "?", "{1,3}", "{0,5}", "{2}", "{1,20}"]
    parts = []
    for _ in range(rng.randint(1, 4)):
        if depth < 3 and rng.random() < 0.3:
            inner = random_format(rng, depth + 1)
            if rng.random() < 0.3:
                inner += "|" + random_format(rng, depth + 1)
            atom = f"(?:{inner})"
        else:
            atom = rng.choice(atoms)
        parts.append(atom + rng.choice(quantifiers))
    return "".join(parts)


def surface_config(rng: random.Random) -> tuple[str, bytes]:
    """The base config with one of the newer surfaces made hostile: a webhook's or a rule's
    URL, a rule's header, a plate format that may run away, a NUL in a path."""
    tree: dict[str, Any] = json.loads(json.dumps(BASE_CONFIG))
    tree["lists"] = {"banned": {"file": "banned.csv"}}
    kind = rng.randrange(5)
    if kind == 0:
        url = rng.choice(URLS)
        tree["webhooks"][0]["url"] = url
        name = f"webhooks.0.url = {shorten(url, 60)}"
    elif kind == 1:
        url = rng.choice(URLS)
        tree["rules"] = [{"name": "gate", "do": [{"http": {"url": url}}]}]
        name = f"rules.0.do.0.http.url = {shorten(url, 60)}"
    elif kind == 2:
        header = (
            (rng.choice(HEADER_NAMES), "v")
            if rng.random() < 0.5
            else ("X-Key", rng.choice(HEADER_VALUES))
        )
        action = {"url": "http://relay.lan/open", "headers": dict([header])}
        tree["rules"] = [{"name": "gate", "do": [{"http": action}]}]
        name = f"rule header {shorten(header, 60)}"
    elif kind == 3:
        entry = random_format(rng) if rng.random() < 0.8 else rng.choice(FORMATS)
        tree["plates"]["formats"] = ["in_rto", entry]
        name = f"plates.formats = ['in_rto', {entry!r}]"
    else:
        keys = rng.choice(PATH_KEYS)
        parent = tree
        for key in keys[:-1]:
            parent = parent.setdefault(key, {})
        parent[keys[-1]] = f"recordings/a\x00b{rng.randrange(100)}"
        name = f"{'.'.join(keys)} with a NUL"
    return name, yaml.safe_dump(tree, sort_keys=False).encode("utf-8", "surrogatepass")


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
    paths = [config.events_log, config.dues.database, config.outbox.database]
    paths += [config.recordings.directory, *(f for f in config.list_files.values() if f)]
    broken += [f"a NUL in the path {str(p)!r}" for p in paths if "\x00" in str(p)]
    urls = [hook.url for hook in config.webhooks]
    urls += [action.http.url for rule in config.rules for action in rule.do if action.http]
    broken += [f"a URL that cannot work: {shorten(url, 80)}" for url in urls if not usable(url)]
    for rule in config.rules:
        for action in rule.do:
            for header, value in (action.http.headers if action.http else {}).items():
                if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", header) or re.search(
                    r"[\x00-\x08\x0a-\x1f\x7f]", value
                ):
                    broken.append(f"a header that cannot be sent: {shorten((header, value))}")
    return broken


def usable(url: str) -> bool:
    """Whether a request can be sent to ``url`` (placeholders filled in)."""
    try:
        parsed = yarl.URL(re.sub(r"\{[a-z_]*\}", "x", url))
    except ValueError:
        return False
    control = re.search(r"[\x00-\x1f\x7f]", url)
    return bool(parsed.host) and 0 < (parsed.port or 0) < 65536 and not control


def runs_fast(formats: list[str]) -> str | None:
    """Why a loaded config's formats are too slow on plate-sized texts, or ``None``."""
    for entry in formats:
        pattern = compile_format(entry)
        for text in ("A" * 20, "A" * 19 + "!", "AB" * 10, "1" * 20, "A" * 10 + "1" * 10):
            started = time.perf_counter()
            pattern.fullmatch(text)
            if time.perf_counter() - started > 0.05:
                return f"format {entry!r} took {time.perf_counter() - started:.2f} s on {text!r}"
    return None


def load_one(path: Path, description: str, tally: Tally) -> None:
    """Load one config: it loads (following the README's rules, with plate formats that
    can be used) or raises ConfigError, within 5 s and 512 MB; anything else fails."""
    try:
        with bounded(5.0, 512.0):
            config = load_config(path)
    except ConfigError as error:
        tally.count("ConfigError")
        if SECRET in str(error):
            tally.fail(description, f"the error prints a password: {shorten(str(error))}")
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
                slow = runs_fast(camera.plates.formats)
            if slow is not None:
                tally.fail(description, f"loaded, yet {slow}")
                break
        except Exception as error:
            tally.fail(
                description,
                f"loaded, then reading a plate with camera {camera.name}'s formats "
                f"{shorten(camera.plates.formats, 80)} failed: {type(error).__name__}: {error}",
            )
            break


@pytest.mark.timeout(600)  # several daemons or a fuzz budget; minutes under load
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
    inputs += [surface_config(rng) for _ in range(150)]
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
    special_files(tmp_path, tally)
    tally.report(capsys)
    tally.verdict()


def special_files(folder: Path, tally: Tally) -> None:
    """FIFOs, devices, a directory and a 10 GB sparse file as the config, as a list's or a
    dues CSV, and through ``streamer check-config``: each refused in one line, at once."""
    fifo = folder / "fifo.yaml"
    os.mkfifo(fifo)
    (folder / "link.yaml").symlink_to(fifo)
    sparse = folder / "sparse.yaml"
    with sparse.open("wb") as file:
        file.truncate(10**10)
    files = [fifo, folder / "link.yaml", Path("/dev/zero"), Path("/dev/urandom"), folder, sparse]
    for path in files:
        for what, read, error in [
            ("config", load_config, ConfigError),
            ("CSV", lambda p: read_csv(p, ("plate",), dict), StoreError),
        ]:
            description = f"{path} as a {what}"
            try:
                with bounded(2.0, 100.0):
                    read(path)
            except error as refused:
                tally.count(f"special file refused ({what})")
                if len(str(refused).splitlines()) != 1:
                    tally.fail(description, f"refused in several lines: {shorten(str(refused))}")
            except Exception as failure:
                tally.count(type(failure).__name__)
                tally.fail(description, f"{type(failure).__name__}: {shorten(str(failure))}")
            else:
                tally.count("special file read")
                tally.fail(description, "read as if it were a file")
    command = [sys.executable, "-m", "streamer", "check-config", "--config", str(fifo)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        tally.fail("streamer check-config on a FIFO", "still running after 60 s")
        return
    tally.outcomes[f"check-config exit {result.returncode}"] += 1
    if result.returncode != 2 or "Traceback" in result.stderr:
        tally.fail("streamer check-config on a FIFO", f"exit {result.returncode}")
