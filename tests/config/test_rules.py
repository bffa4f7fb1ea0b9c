"""Rule settings: placeholders, literal braces and MQTT topics, checked at load as they are
rendered when a rule fires."""

from __future__ import annotations

import pytest

from streamer.config import ConfigError, When, fill_placeholders, parse_config

VALUES = {"plate_number": "KA01AB1234", "camera": "gate-1"}
#: A Shelly relay (Gen2 RPC, nested) and Zigbee2MQTT: JSON bodies without placeholders.
SHELLY = '{"id":1,"method":"Switch.Set","params":{"id":0,"on":true}}'
ZIGBEE = '{"state": "ON"}'


def rules_with(action: dict[str, object]) -> dict[str, object]:
    return {"mqtt": {"url": "mqtt://broker"}, "rules": [{"name": "gate", "do": [action]}]}


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        (SHELLY, SHELLY),
        (ZIGBEE, ZIGBEE),
        ('{"id":0,"on":true}', '{"id":0,"on":true}'),
        ('{"plate":"{plate_number}"}', '{"plate":"KA01AB1234"}'),
        ("{{plate_number}} is {plate_number}", "{plate_number} is KA01AB1234"),
        ("{{ value_json.state }}", "{{ value_json.state }}"),  # a Home Assistant template
        ("{", "{"),
        ("}}", "}}"),
        ("{camera}{camera}", "gate-1gate-1"),
    ],
)
def test_only_a_known_name_in_single_braces_is_a_placeholder(text: str, filled: str) -> None:
    assert fill_placeholders(text, VALUES) == filled
    http = {"http": {"url": "http://relay/rpc", "body": text}}
    mqtt = {"mqtt": {"topic": "zigbee2mqtt/gate/set", "payload": text}}
    for action in (http, mqtt):
        parse_config(rules_with(action))  # loads


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            {"http": {"url": "http://relay/x", "body": '{"plate":"{plate}"}'}},
            "rules.0.do.0.http.body: unknown placeholder {plate}; known: {plate_number}",
        ),
        (
            {"mqtt": {"topic": "gate/{cam}", "payload": "1"}},
            "rules.0.do.0.mqtt.topic: unknown placeholder {cam}",
        ),
        ({"mqtt": {"topic": "$SYS/gate"}}, "rules.0.do.0.mqtt.topic: starts with $"),
        ({"mqtt": {"topic": "gate//open"}}, "rules.0.do.0.mqtt.topic: has an empty level"),
        ({"mqtt": {"topic": "/gate/{camera}"}}, "rules.0.do.0.mqtt.topic: has an empty level"),
        ({"mqtt": {"topic": "{camera}/"}}, "rules.0.do.0.mqtt.topic: has an empty level"),
        ({"mqtt": {"topic": "gate/+/open"}}, "rules.0.do.0.mqtt.topic: holds a wildcard"),
        ({"mqtt": {"topic": "gate/#"}}, "rules.0.do.0.mqtt.topic: holds a wildcard"),
    ],
)
def test_bad_placeholders_and_topics_are_one_line_naming_the_key(
    action: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(rules_with(action))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_the_unknown_placeholder_error_shows_the_escape() -> None:
    with pytest.raises(ConfigError, match=r"for the text \{plate\}, write \{\{plate\}\}"):
        parse_config(rules_with({"mqtt": {"topic": "gate", "payload": "{plate}"}}))


def when(**conditions: object) -> When:
    return When.model_validate(conditions)


@pytest.mark.parametrize(
    ("conditions", "plate", "unread", "unread_in_a_rule"),
    [
        ({}, True, True, False),  # a webhook takes every event; a rule, read plates only
        ({"unreadable": True}, False, True, True),
        ({"unreadable": False}, True, False, False),
        ({"dues_pending": False}, True, False, False),  # dues unknown without a plate
        ({"not_lists": ["banned"]}, True, False, False),  # never opens for a hidden plate
        ({"direction": "entry"}, True, True, False),
        ({"direction": ["exit"]}, False, False, False),
    ],
)
def test_when_and_vehicles_whose_plate_was_not_read(
    conditions: dict[str, object], plate: bool, unread: bool, unread_in_a_rule: bool
) -> None:
    ways = ("approaching", "entry")
    assert when(**conditions).matches((), False, ways) is plate
    assert when(**conditions).matches((), False, ways, has_plate=False) is unread
    in_a_rule = when(**conditions).matches((), False, ways, False, unread_by_default=False)
    assert in_a_rule is unread_in_a_rule


def test_unreadable_with_a_plate_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="unreadable: true picks vehicles without a plate"):
        when(unreadable=True, lists=["residents"])


def test_a_direction_no_camera_names_is_refused_at_load() -> None:
    config = {
        "cameras": [{"name": "gate", "source": "x.mp4", "direction": {"approaching": "entry"}}],
        "rules": [
            {"name": "in", "when": {"direction": "entry"}, "do": [{"http": {"url": "http://r/"}}]}
        ],
    }
    assert parse_config(config).rules[0].when.direction == ["entry"]
    config["rules"][0]["when"] = {"direction": "exit"}  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"rules.0.when.direction: unknown direction 'exit'"):
        parse_config(config)
