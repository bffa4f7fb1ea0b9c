"""Config loading: defaults, overrides, ${VAR} substitution and error messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from streamer.config import Config, ConfigError, load_config, parse_config

from support.daemon import ROOT
from support.fuzz import bounded


def test_example_config_is_the_embedded_defaults() -> None:
    """config/streamer.yaml documents the defaults; it must not drift from them."""
    assert load_config(ROOT / "config" / "streamer.yaml") == Config()


def test_defaults_process_the_demo_recording() -> None:
    config = Config()
    assert [(c.name, c.source) for c in config.cameras] == [("gate-1", "recordings/demo.mp4")]
    assert config.dues.database == Path("recordings/dues.sqlite")
    assert config.events_log == Path("recordings/events.jsonl")


def test_camera_overrides_merge_over_global_sections() -> None:
    config = parse_config(
        {
            "tracker": {"lost_timeout_s": 2.0, "min_frames": 4},
            "cameras": [
                {"name": "a", "source": "a.mp4", "tracker": {"min_frames": 9}},
                {"name": "b", "source": "b.mp4"},
            ],
        }
    )
    a, b = config.cameras
    assert (a.tracker.lost_timeout_s, a.tracker.min_frames) == (2.0, 9)
    assert (b.tracker.lost_timeout_s, b.tracker.min_frames) == (2.0, 4)


def test_global_sections_reach_the_default_camera() -> None:
    config = parse_config({"reader": {"crops": 5}})
    assert config.cameras[0].reader.crops == 5


def test_environment_variables_are_substituted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_URL", "recordings/gate.mp4")
    config = parse_config(
        {
            "cameras": [{"name": "g", "source": "${GATE_URL}"}],
            "events_log": "${LOG_DIR:-logs}/events.jsonl",
        }
    )
    assert config.cameras[0].source == "recordings/gate.mp4"
    assert config.events_log == Path("logs/events.jsonl")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"cameras": [{"name": "g", "source": ""}]},
            "cameras.0.source: String should have at least 1 character (got '')",
        ),
        (
            {"cameras": [{"name": "g", "source": "  "}]},
            "cameras.0.source: must not be empty (got '  ')",
        ),
        (
            {"cameras": [{"name": "g", "source": "x.mp4", "colour": "red"}]},
            "cameras.0.colour: unknown key",
        ),
        ({"camera": []}, "camera: unknown key"),
        (
            {"cameras": [{"name": "bad name!", "source": "x.mp4"}]},
            "cameras.0.name: String should match pattern",
        ),
        (
            {"tracker": {"lost_timeout_s": -1}},
            "tracker.lost_timeout_s: Input should be greater than 0 (got -1)",
        ),
        (
            {"detection": {"confidence": "high"}},
            "detection.confidence: Input should be a valid number",
        ),
        (
            {"plates": {"formats": ["in_rto", "[unclosed"]}},
            "plates.formats.1: '[unclosed' is neither a preset",
        ),
        (
            {"cameras": [{"name": "g", "source": "a"}, {"name": "g", "source": "b"}]},
            "camera names must be unique: g",
        ),
        (
            {"cameras": [{"name": "g", "source": "${NOT_SET_ANYWHERE}"}]},
            "cameras.0.source: environment variable NOT_SET_ANYWHERE is not set",
        ),
        ({"cameras": []}, "cameras: List should have at least 1 item"),
        ([1, 2], "<root>: expected a mapping of settings"),
    ],
)
def test_errors_name_the_key_path_and_value(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read config"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("cameras: [\n  - name: a\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: line \d+"):
        load_config(broken)


def test_yaml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"cameras": [{"name": "x", "source": "x.mp4"}], "dedup": {"window_s": 5}})
    )
    config = load_config(path)
    assert config.cameras[0].dedup.window_s == 5


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"events_log": "recordings/ev\x00ents.jsonl"}, "events_log"),
        ({"dues": {"database": "dues\x00.sqlite"}}, "dues.database"),
        ({"outbox": {"database": "\x00"}}, "outbox.database"),
        ({"recordings": {"directory": "evidence\x00/x"}}, "recordings.directory"),
        ({"lists": {"banned": {"file": "banned\x00.csv"}}}, "lists.banned.file"),
    ],
)
def test_a_nul_in_a_path_is_refused_at_load(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert str(error.value).startswith(f"{key}: must not contain a NUL character")
    assert "\n" not in str(error.value)


def test_a_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "streamer.yaml"
    os.mkfifo(fifo)  # nothing ever writes it: reading it would wait forever
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as file:  # sparse: 10 GB of NULs that take no disk
        file.truncate(10**10)
    for path, reason in [
        (fifo, "a FIFO, not a regular file"),
        (Path("/dev/zero"), "a character device, not a regular file"),
        (tmp_path, "a directory, not a regular file"),
        (huge, "larger than 10 MB"),
    ]:
        with bounded(2.0, 100.0), pytest.raises(ConfigError) as error:
            load_config(path)
        assert str(error.value) == f"{path}: cannot read config ({reason})"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://relay.lan:99999/open", "the port must be a number from 1 to 65535"),
        ("http://relay.lan:0/open", "the port must be a number from 1 to 65535"),
        ("http://relay.lan:8o/open", "the port must be a number from 1 to 65535"),
        ("http://[::1/open", "an IPv6 host must be a valid address in closed brackets"),
        ("http://[::g]/open", "an IPv6 host must be a valid address in closed brackets"),
        ("http://10.0.0.300/open", "10.0.0.300 is not an IPv4 address"),
        ("http://relay..lan/open", "'relay..lan' is not a valid host name"),
        ("http:///open", "needs a host"),
        ("http://relay.lan/open\x7f", "must not hold control characters"),
    ],
)
def test_urls_that_cannot_work_are_refused_at_load(url: str, message: str) -> None:
    for data, key in [
        ({"webhooks": [{"url": url}]}, "webhooks.0.url"),
        ({"rules": [{"name": "gate", "do": [{"http": {"url": url}}]}]}, "rules.0.do.0.http.url"),
    ]:
        with pytest.raises(ConfigError) as error:
            parse_config(data)
        assert str(error.value).startswith(f"{key}: {message}"), str(error.value)
        assert "\n" not in str(error.value)


def test_urls_that_work_are_accepted() -> None:
    for url in [
        "http://127.0.0.1:8080/hook",
        "https://[::1]:8443/hook?key=x",
        "http://relay-{camera}.lan/open?plate={plate_number}",
        "https://bücher.example/hook",
        "http://gate_relay/rpc/Switch.Set?id=0&on=true",
        "http://admin:p@ss/w0rd@10.0.0.7/relay/0",
    ]:
        parse_config({"webhooks": [{"url": url.replace("{camera}", "x")}]})
        parse_config({"rules": [{"name": "gate", "do": [{"http": {"url": url}}]}]})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Key": "a\r\nX-Injected: 1"}, "header X-Key: the value must not hold a line break"),
        ({"X-Key": "a\nb"}, "header X-Key: the value must not hold a line break"),
        ({"X-Key": "a\x00b"}, "header X-Key: the value must not hold a line break"),
        ({"X-Key\r\n": "a"}, "header 'X-Key\\r\\n': a name is letters, digits"),
        ({"X Key": "a"}, "header 'X Key': a name is letters, digits"),
        ({"": "a"}, "header '': a name is letters, digits"),
    ],
)
def test_rule_headers_that_cannot_be_sent_are_refused(
    headers: dict[str, str], message: str
) -> None:
    action = {"http": {"url": "http://relay.lan/open", "headers": headers}}
    with pytest.raises(ConfigError) as error:
        parse_config({"rules": [{"name": "gate", "do": [action]}]})
    assert str(error.value).startswith(f"rules.0.do.0.http.headers: {message}")
    assert "a\r\nX-Injected" not in str(error.value)


def test_secrets_in_refused_urls_are_masked() -> None:
    url = "http://gate:s3cret@[::1/open?key=k3y&plate={plate_number}"
    with pytest.raises(ConfigError) as error:
        parse_config({"rules": [{"name": "gate", "do": [{"http": {"url": url}}]}]})
    assert "s3cret" not in str(error.value)
    assert "k3y" not in str(error.value)
    assert "http://gate:***@[::1/open?key=***&plate=***" in str(error.value)


@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_token_is_refused_not_taken_for_none(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("STREAMER_TOKEN", token)
    with pytest.raises(ConfigError, match=r"^http.token: must not be empty"):
        parse_config({"http": {"host": "0.0.0.0", "token": "${STREAMER_TOKEN}"}})


BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BILLION_LAUGHS.encode(), "more than 100000 values once its aliases are expanded"),
        (b"http:\n  token: a\nhttp:\n  port: 9\n", "line 3: duplicate key 'http'"),
        (b"plates:\n  formats: ['A{99999999999}']\n", "repetition number is too large"),
        (b"plates:\n  min_length: 9\n  max_length: 4\n", "must not exceed max_length"),
        (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
        (b"cameras:\n  - name: caf\xe9\n", "not UTF-8"),
        (b"plates: {formats: &f [*f]}\n", "line 1: an alias refers to the value that holds it"),
        (b"? [a, b]\n: 1\n", "a key must be a plain value"),
        (b"shutdown_timeout_s: " + b"9" * 5000 + b"\n", "integer string conversion"),
    ],
    ids=[
        "alias-bomb",
        "duplicate-key",
        "huge-repeat",
        "lengths",
        "deep",
        "latin-1",
        "self-alias",
        "list-key",
        "5000-digits",
    ],
)
def test_hostile_configs_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        (
            {"url": "http://broker:1883"},
            "mqtt.url: must be mqtt://host[:port] or mqtts://host[:port] (TLS) "
            "(got 'http://broker:1883')",
        ),
        (
            {"url": "mqtt://alice:hunter2@broker"},
            "mqtt.url: put the user name and password in mqtt.username and mqtt.password "
            "(got 'mqtt://alice:***@broker')",
        ),
        ({"url": "mqtt://broker:70000"}, "mqtt.url: port must be between 1 and 65535"),
        ({"url": "mqtt://broker/topic"}, "mqtt.url: must be mqtt://host[:port]"),
        ({"url": "mqtt://broker", "password": "x"}, "mqtt: password needs username"),
        ({"url": "mqtt://broker", "tls": {"insecure": True}}, "mqtt: tls needs an mqtts:// url"),
        (
            {"url": "mqtts://broker", "tls": {"key_file": "k.pem"}},
            "mqtt.tls: key_file needs cert_file",
        ),
        (
            {"url": "mqtt://broker", "topic_prefix": "site/#"},
            "mqtt.topic_prefix: holds a wildcard (+ or #)",
        ),
        ({"url": "mqtt://broker", "qos": 2}, "mqtt.qos: unknown key"),
        ({"username": "alice"}, "mqtt.url: Field required"),
    ],
)
def test_mqtt_errors_are_one_line_naming_the_key(mqtt: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"mqtt": mqtt})
    assert str(error.value).startswith(message)
    assert "hunter2" not in str(error.value)
    assert "\n" not in str(error.value)


def test_mqtt_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Config().mqtt is None  # off unless configured
    monkeypatch.setenv("MQTT_PASSWORD", "p@ss:word")
    config = parse_config(
        {
            "mqtt": {
                "url": "mqtts://broker.lan",
                "username": "anpr",
                "password": "${MQTT_PASSWORD}",
            },
            "webhooks": [{"url": "http://127.0.0.1:9/hook", "name": "hook"}],
        }
    )
    mqtt = config.mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port, mqtt.password) == ("broker.lan", 8883, "p@ss:word")
    assert mqtt.display == "mqtts://anpr:***@broker.lan:8883"
    assert mqtt.label == "mqtt:broker.lan:8883"
    assert mqtt.client_id.startswith("streamer-")
    assert (mqtt.topic_prefix, mqtt.discovery.enabled, mqtt.discovery.prefix) == (
        "streamer",
        True,
        "homeassistant",
    )
    assert [target.label for target in config.delivery_targets] == ["hook", mqtt.label]
    ipv6 = parse_config({"mqtt": {"url": "mqtt://[::1]:1884"}}).mqtt
    assert ipv6 is not None
    assert (ipv6.host, ipv6.port, ipv6.display) == ("::1", 1884, "mqtt://[::1]:1884")
