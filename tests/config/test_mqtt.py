"""MQTT settings: topics a broker would drop or refuse are refused at load, in one line
naming the key."""

from __future__ import annotations

import pytest

from streamer.config import ConfigError, parse_config, topic_problem


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"topic_prefix": "$SYS/streamer"}, "mqtt.topic_prefix: starts with $"),
        ({"topic_prefix": "$share/g"}, "mqtt.topic_prefix: starts with $"),
        ({"topic_prefix": "site//a"}, "mqtt.topic_prefix: has an empty level"),
        ({"topic_prefix": "/site"}, "mqtt.topic_prefix: has an empty level"),
        ({"topic_prefix": "site/"}, "mqtt.topic_prefix: has an empty level"),
        ({"topic_prefix": "site/+"}, "mqtt.topic_prefix: holds a wildcard"),
        ({"topic_prefix": "gate\x01"}, "mqtt.topic_prefix: holds '\\x01'"),
        ({"topic_prefix": ""}, "mqtt.topic_prefix: must not be empty"),
        ({"discovery": {"prefix": "$SYS"}}, "mqtt.discovery.prefix: starts with $"),
        ({"discovery": {"prefix": "ha/"}}, "mqtt.discovery.prefix: has an empty level"),
        ({"discovery": {"prefix": "ha/#"}}, "mqtt.discovery.prefix: holds a wildcard"),
    ],
)
def test_topics_the_broker_drops_are_refused_in_one_line(
    mqtt: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"mqtt": {"url": "mqtt://broker", **mqtt}})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("topic", ["streamer", "site/a", "ha", "a-b_c.d/é/1"])
def test_ordinary_topics_pass(topic: str) -> None:
    assert topic_problem(topic) is None
    config = parse_config(
        {"mqtt": {"url": "mqtt://b", "topic_prefix": topic, "discovery": {"prefix": topic}}}
    ).mqtt
    assert config is not None
    assert config.topic_prefix == config.discovery.prefix == topic
