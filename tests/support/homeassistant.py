"""Home Assistant, as far as the tests need it: the MQTT entities that discovery configs
make, their states after each message a real subscriber received, and automations (state
and MQTT triggers, template conditions, actions), every template rendered by Jinja as HA
renders it. A template that uses a variable it does not have fails the test (HA logs a
warning and renders nothing).

What it follows of HA's MQTT integration (2024.3 to 2025.4):

- An entity with an availability topic is ``unavailable`` until ``payload_available``
  arrives there, and again on ``payload_not_available``; until its state topic gives a
  state it is ``unknown``. A binary sensor takes the rendered value when it is
  ``payload_on`` or ``payload_off`` (HA logs and ignores any other: :attr:`Entity.ignored`);
  a sensor takes the text; an image takes the bytes (its state is when they came).
- An entity made from a discovery config subscribes to its topics, attributes,
  availability, state (HA's order), and gets what the broker retains on them. A started
  or restarted HA subscribes afresh: the retained messages come, with configs among them.
- Each message writes the states of the entities it concerns once; a state trigger fires
  on a written state that changed and matches ``from``/``to``/``not_from``/``not_to``; an
  MQTT trigger fires on every message on its topic, retained or not.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from support.mosquitto import Received, Subscriber

ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
#: ``<discovery prefix>/<component>/<node_id>/<object_id>/config``
DISCOVERY = re.compile(r"^homeassistant/(?P<component>[a-z_]+)/[^/]+/[^/]+/config$")


def render(template: str, payload: bytes) -> str:
    """A template as HA renders an MQTT value: ``value`` and ``value_json`` of the payload."""
    text = payload.decode()
    try:
        variables: dict[str, Any] = {"value": text, "value_json": json.loads(text)}
    except ValueError:
        variables = {"value": text}
    return ENVIRONMENT.from_string(template).render(variables)


def slug(text: str) -> str:
    """An entity ID's object part as HA makes it from the device's and entity's names."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dataclass(frozen=True)
class State:
    """An entity's state as HA writes it (``trigger.to_state`` and so on)."""

    state: str
    attributes: Mapping[str, Any]


@dataclass
class Entity:
    """One discovered MQTT entity and what it has received."""

    component: str
    config: dict[str, Any]
    available: bool = False
    value: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None
    ignored: list[str] = field(default_factory=list)

    @property
    def entity_id(self) -> str:
        return f"{self.component}.{slug(self.config['device']['name'] + ' ' + self.config['name'])}"

    @property
    def topics(self) -> list[str]:
        """Its topics, in the order HA subscribes to them."""
        keys = ("json_attributes_topic", "availability_topic", "state_topic", "image_topic")
        return list(dict.fromkeys(self.config[key] for key in keys if key in self.config))

    def now(self) -> State:
        if not self.available:
            return State("unavailable", {})
        state = "unknown" if self.value is None else self.value
        attributes = dict(self.attributes)
        if self.component == "image":
            attributes["entity_picture"] = f"/api/image_proxy/{self.entity_id}?token=t"
        return State(state, attributes)

    def receive(self, topic: str, payload: bytes, updates: int) -> None:
        config = self.config
        if topic == config.get("json_attributes_topic"):
            template = config.get("json_attributes_template")
            self.attributes = json.loads(render(template, payload) if template else payload)
        if topic == config.get("availability_topic"):
            if payload.decode() == config.get("payload_available", "online"):
                self.available = True
            elif payload.decode() == config.get("payload_not_available", "offline"):
                self.available = False
        if topic == config.get("image_topic"):
            self.image, self.value = payload, f"updated {updates}"
        if topic == config.get("state_topic"):
            template = config.get("value_template")
            value = render(template, payload) if template else payload.decode()
            if self.component == "binary_sensor":
                states = {config["payload_on"]: "on", config["payload_off"]: "off"}
                if value in states:
                    self.value = states[value]
                elif value.strip():
                    self.ignored.append(value)
            elif value or "state_class" not in config:
                self.value = value


@dataclass(frozen=True)
class Notification:
    """One action an automation ran: its rendered data, and the images HA held then."""

    automation: str
    action: str
    data: dict[str, Any]
    images: dict[str, bytes | None]


class HomeAssistant:
    """A started Home Assistant with ``automations`` (as in ``automations.yaml``, in HA
    2024.10's words or the older ones), fed what a subscriber to ``#`` received.

    Example:
        >>> ha = HomeAssistant(yaml.safe_load(AUTOMATIONS))
        >>> ha.follow(subscriber)
        >>> ha.history["binary_sensor.gate_1_online"]
        ['unavailable', 'off', 'on']
    """

    def __init__(self, automations: Sequence[Mapping[str, Any]]) -> None:
        self.automations = [_modern(automation) for automation in automations]
        self.entities: dict[str, Entity] = {}  # by unique_id
        self.history: dict[str, list[str]] = {}  # entity_id: its states, as they changed
        self.notifications: list[Notification] = []
        self._held: dict[str, bytes] = {}  # retained on the broker, by topic
        self._followed = 0
        self._updates = 0

    def follow(self, subscriber: Subscriber) -> None:
        """Take in the messages ``subscriber`` received since the last call."""
        messages = subscriber.messages()
        for message in messages[self._followed :]:
            self.receive(message)
        self._followed = len(messages)

    def entity(self, entity_id: str) -> Entity:
        (entity,) = [e for e in self.entities.values() if e.entity_id == entity_id]
        return entity

    def receive(self, message: Received) -> None:
        """One message, as HA's MQTT client hands it to the integration."""
        self._updates += 1
        if message.retain:
            self._held[message.topic] = message.payload
        if match := DISCOVERY.match(message.topic):
            self._discovered(match["component"], message.payload)
        for entity in list(self.entities.values()):
            if message.topic in entity.topics:
                self._write(entity, message.topic, message.payload)
        for automation in self.automations:
            for trigger in automation["triggers"]:
                if trigger["trigger"] == "mqtt" and _matches(trigger["topic"], message.topic):
                    text = message.payload.decode()
                    variables = {"platform": "mqtt", "topic": message.topic, "payload": text}
                    with contextlib.suppress(ValueError):
                        variables["payload_json"] = json.loads(text)
                    self._run(automation, variables)

    def _discovered(self, component: str, payload: bytes) -> None:
        if not payload:
            return
        config = json.loads(payload)
        if config["unique_id"] in self.entities:
            return
        entity = self.entities[config["unique_id"]] = Entity(component, config)
        self._changed(entity, None, entity.now())
        for topic in entity.topics:  # its subscriptions: what the broker retains on them
            if topic in self._held:
                self._write(entity, topic, self._held[topic])

    def _write(self, entity: Entity, topic: str, payload: bytes) -> None:
        before = entity.now()
        entity.receive(topic, payload, self._updates)
        after = entity.now()
        if after != before:
            self._changed(entity, before, after)

    def _changed(self, entity: Entity, before: State | None, after: State) -> None:
        if before is None or before.state != after.state:
            self.history.setdefault(entity.entity_id, []).append(after.state)
        for automation in self.automations:
            for trigger in automation["triggers"]:
                if trigger["trigger"] == "state" and _fires(trigger, entity, before, after):
                    variables = {
                        "platform": "state",
                        "entity_id": entity.entity_id,
                        "from_state": before,
                        "to_state": after,
                    }
                    self._run(automation, variables)

    def _run(self, automation: Mapping[str, Any], trigger: dict[str, Any]) -> None:
        def states(entity_id: str) -> str:
            found = [e for e in self.entities.values() if e.entity_id == entity_id]
            return found[0].now().state if found else "unknown"

        def state_attr(entity_id: str, name: str) -> Any:
            found = [e for e in self.entities.values() if e.entity_id == entity_id]
            return found[0].now().attributes.get(name) if found else None

        variables = {"trigger": trigger, "states": states, "state_attr": state_attr}
        for condition in automation.get("conditions", []):
            template = condition if isinstance(condition, str) else condition["value_template"]
            if ENVIRONMENT.from_string(template).render(variables).strip().lower() != "true":
                return
        images = {e.entity_id: e.image for e in self.entities.values() if e.component == "image"}
        for action in automation["actions"]:
            data = _render_all(action.get("data", {}), variables)
            self.notifications.append(
                Notification(automation["alias"], action["action"], data, images)
            )


def _fires(trigger: Mapping[str, Any], entity: Entity, before: State | None, after: State) -> bool:
    """Whether a state trigger fires on this write (HA: the state changed, and the old and
    new states match what it asks)."""
    entity_ids = trigger["entity_id"]
    if entity.entity_id not in ([entity_ids] if isinstance(entity_ids, str) else entity_ids):
        return False
    old = None if before is None else before.state
    if old == after.state:
        return False  # an attribute changed: not with from/to/not_from/not_to

    def listed(key: str) -> list[str] | None:
        value = trigger.get(key)
        return None if value is None else [value] if isinstance(value, str) else list(value)

    checks = [
        ("from", lambda values: old in values),
        ("to", lambda values: after.state in values),
        ("not_from", lambda values: old not in values),
        ("not_to", lambda values: after.state not in values),
    ]
    return all(check(values) for key, check in checks if (values := listed(key)) is not None)


def _matches(pattern: str, topic: str) -> bool:
    regex = re.escape(pattern).replace(r"\+", "[^/]+").replace(r"\#", ".*")
    return re.fullmatch(regex, topic) is not None


def _render_all(data: Any, variables: Mapping[str, Any]) -> Any:
    """Every string in ``data`` rendered as a template, as HA renders an action's data."""
    if isinstance(data, str):
        return ENVIRONMENT.from_string(data).render(variables)
    if isinstance(data, Mapping):
        return {key: _render_all(value, variables) for key, value in data.items()}
    if isinstance(data, list):
        return [_render_all(value, variables) for value in data]
    return data


def _modern(automation: Mapping[str, Any]) -> dict[str, Any]:
    """An automation in HA 2024.10's words (``triggers``, ``trigger: state``, ``actions``,
    ``action: notify.x``), also when written in the older ones (``trigger``, ``platform:
    state``, ``action``, ``service: notify.x``)."""
    result = dict(automation)
    for old, new in (("trigger", "triggers"), ("condition", "conditions"), ("action", "actions")):
        if old in result:
            value = result.pop(old)
            result[new] = value if isinstance(value, list) else [value]
    result["triggers"] = [
        {("trigger" if k == "platform" else k): v for k, v in t.items()} for t in result["triggers"]
    ]
    result["actions"] = [
        {("action" if k == "service" else k): v for k, v in a.items()} for a in result["actions"]
    ]
    return result
