"""Hostile rule and MQTT configs: each loads, or raises one ConfigError naming the key."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest

from streamer.config import ConfigError, parse_config, topic_problem
from streamer.delivery.homeassistant import discovery_configs
from streamer.delivery.rules import origin, render
from streamer.events import ListMatch

from support.factories import make_event
from support.fuzz import HOSTILE_STRINGS, HOSTILE_VALUES, SEED, Tally, bounded, node_paths, shorten

HOSTILE_TOPICS = ["$SYS/x", "$share/g/t", "$", "a//b", "/a", "a/", "/", "#", "+", "a/#"]


HOSTILE_TEMPLATES = ['{"id":0,"on":true}', '{"state": "ON"}', "{plate}", "{{", "}}", "{}", "{0}"]


HOSTILE_URLS = ["http://[::1", "http://h:99999/x", "http://h/{plate}", "ftp://h/x", "http://"]

# --- rules and MQTT ------------------------------------------------------------------------

RULES_CONFIG: dict[str, Any] = {
    "cameras": [{"name": "gate-1", "source": "/srv/video/gate-1.mp4"}],
    "lists": {"residents": None, "banned": None},
    "mqtt": {
        "url": "mqtt://broker.lan:1883",
        "username": "anpr",
        "password": "s3cret",
        "topic_prefix": "site/a",
        "discovery": {"enabled": True, "prefix": "homeassistant"},
    },
    "rules": [
        {
            "name": "open-gate",
            "cameras": ["gate-1"],
            "when": {"lists": ["residents"], "dues_pending": False},
            "do": [
                {
                    "http": {
                        "url": "http://relay.lan/rpc?plate={plate_number}",
                        "method": "POST",
                        "headers": {"Authorization": "Bearer t0k3n"},
                        "body": '{"id":1,"method":"Switch.Set","params":{"id":0,"on":true}}',
                        "timeout_s": 2,
                    }
                },
                {"mqtt": {"topic": "zigbee2mqtt/gate/set", "payload": '{"state": "ON"}'}},
            ],
        },
        {
            "name": "banned",
            "when": {"lists": ["banned"]},
            "do": [{"mqtt": {"topic": "alerts/{camera}", "retain": False}}],
        },
    ],
}
HOSTILE_TOPICS += ["a/+/b", "", " ", "a b", "a\x00b", "a\x01", "a\x7f", "a\u0085", "a\u2028"]
HOSTILE_TOPICS += ["\ud800", "x" * 70_000, "é/ü/中", "{camera}", "{lists}", "{plate}", "{{camera}}"]
HOSTILE_TOPICS += ["gate/{lists}/x", "/{camera}", "{", "}", "{}", "{0}", "${FUZZ_UNSET}"]
HOSTILE_TEMPLATES += ["{__class__}", "{plate_number.__class__}", "{plate_number!r}", "%s%n"]
HOSTILE_TEMPLATES += ["{plate_number:>99999999}", "{{plate_number}}", "{{{camera}}}", "\x00"]
HOSTILE_TEMPLATES += ["{" * 5000, "}" * 5000, "{a" * 3000, "x" * 20_000, "\ud800", "${"]
HOSTILE_URLS += ["http://h/\r\nX: y", "http://u:p@h/x", "HTTP://H/{camera}", "http://{camera}/x"]
HOSTILE_URLS += ["http://h/" + "a" * 100_000, "https://h/{{lists}}", "javascript:alert(1)"]
HOSTILE_HEADERS: list[Any] = [{"X\r\nY": "1"}, {"A": "b\r\nc"}, {"": "x"}, {"Host": "evil"}]
HOSTILE_HEADERS += [{"A": 1}, {"A": None}, ["A", "b"], "A: b", {"A": "x" * 100_000}]
HOSTILE_FLAGS: list[Any] = ["yes", "no", 2, -1, None, "true", [], {}, 1.5, 0, 1, "on"]


def rules_mutation(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The rules-and-MQTT base config with one hostile value: a topic, a prefix, a body or
    payload, a URL, headers, a flag, or any value anywhere in the two sections."""
    tree = json.loads(json.dumps(RULES_CONFIG))
    mqtt, rules = tree["mqtt"], tree["rules"]
    http, publish = rules[0]["do"][0]["http"], rules[rng.randrange(2)]["do"][-1]["mqtt"]
    op = rng.randrange(9)
    if op == 0:
        key, value = rng.choice(["topic_prefix", "discovery.prefix"]), rng.choice(HOSTILE_TOPICS)
        (mqtt if key == "topic_prefix" else mqtt["discovery"])[key.split(".")[-1]] = value
        return f"mqtt.{key} = {shorten(value, 40)}", tree
    if op == 1:
        publish["topic"] = value = rng.choice(HOSTILE_TOPICS)
        return f"a rule's mqtt.topic = {shorten(value, 40)}", tree
    if op == 2:
        key, value = rng.choice(["body", "url"]), rng.choice(HOSTILE_TEMPLATES)
        if key == "url":
            value = "http://relay.lan/" + value
        http[key] = value
        return f"http.{key} = {shorten(value, 40)}", tree
    if op == 3:
        publish["payload"] = value = rng.choice(HOSTILE_TEMPLATES)
        return f"mqtt.payload = {shorten(value, 40)}", tree
    if op == 4:
        http["url"] = value = rng.choice(HOSTILE_URLS)
        return f"http.url = {shorten(value, 40)}", tree
    if op == 5:
        http["headers"] = value = rng.choice(HOSTILE_HEADERS)
        return f"http.headers = {shorten(value, 40)}", tree
    if op == 6:
        key, value = rng.choice(["retain", "qos"]), rng.choice(HOSTILE_FLAGS)
        publish[key] = value
        return f"mqtt.{key} = {shorten(value, 40)}", tree
    if op == 7:
        mqtt["discovery"]["enabled"] = value = rng.choice(HOSTILE_FLAGS)
        return f"mqtt.discovery.enabled = {shorten(value, 40)}", tree
    section = {"mqtt": mqtt, "rules": rules}
    path = rng.choice(node_paths(section))
    parent: Any = section
    for key in path[:-1]:
        parent = parent[key]
    value = rng.choice([*HOSTILE_VALUES, *HOSTILE_STRINGS[:12], *HOSTILE_TOPICS[:10]])
    parent[path[-1]] = value
    tree.update(section)
    return f"{'.'.join(map(str, path))} = {shorten(value, 40)}", tree


_ERROR_LINE = re.compile(r"^(<root>|[A-Za-z0-9_.-]+): \S")


def check_rules_config(description: str, tree: dict[str, Any], tally: Tally) -> None:
    """It loads, and then every topic it publishes to is one a broker takes and every
    template renders; or it raises ConfigError, each line naming a key."""
    try:
        with bounded(5.0, 512.0):
            config = parse_config(tree)
    except ConfigError as error:
        tally.count("ConfigError")
        lines = str(error).splitlines()
        if not lines or not all(_ERROR_LINE.match(line) for line in lines):
            tally.fail(description, f"ConfigError not naming the key: {shorten(str(error))}")
        return
    except Exception as error:
        tally.count(type(error).__name__)
        tally.fail(
            description, f"parse_config raised {type(error).__name__}: {shorten(str(error))}"
        )
        return
    tally.count("loaded")
    event = make_event("KA01AB1234", camera="gate-1", lists=ListMatch(("residents",)))
    topics = []
    if config.mqtt is not None:
        topics += [config.mqtt.topic_prefix, config.mqtt.discovery.prefix]
        topics += [m.topic for m in discovery_configs(config.mqtt, ["gate-1"])]
    try:
        for rule in config.rules:
            for action in rule.do:
                if action.http is not None:
                    origin(action.http.url)
                    render(action.http.url, event, url=True)
                    render(action.http.body or "", event)
                if action.mqtt is not None:
                    render(action.mqtt.payload or "", event)
                    topics.append(render(action.mqtt.topic, event))
    except Exception as error:
        tally.fail(description, f"loaded, then rendering raised {type(error).__name__}: {error}")
    for topic in topics:
        if (problem := topic_problem(topic)) is not None:
            tally.fail(description, f"loaded, yet a broker drops the topic {topic!r}: {problem}")


def test_hostile_rule_and_mqtt_configs_load_or_raise_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FUZZ_UNSET", raising=False)
    rng = random.Random(f"{SEED}-rules")
    tally = Tally("rules and MQTT", minimum=800)
    parse_config(RULES_CONFIG)  # the mutations start from a valid config
    planned = 1000
    for number in range(planned):
        if tally.over_budget(number, planned):
            break
        description, tree = rules_mutation(rng)
        check_rules_config(f"rules config #{number} ({description})", tree, tally)
    tally.report(capsys)
    tally.verdict()
