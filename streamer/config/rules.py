"""Settings of what is done with a plate: the named plate lists, the ``when:`` filter that
rules and webhooks share, and the rules with their actions (an HTTP request, an MQTT
message)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from streamer.config.base import Section
from streamer.config.mqtt import topic_problem
from streamer.config.urls import http_headers, http_url

#: A list's name: as it appears in events, rules, the CLI and the API.
LIST_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: What ``{…}`` in an action's URL, body, topic or payload may name.
PLACEHOLDERS = (
    "plate_number",
    "camera",
    "event_id",
    "phase",
    "lists",
    "dues_pending",
    "reason",
    "direction",
    "vehicle_type",
    "vehicle_colour",
)
#: A placeholder is a name in single braces, ``{plate_number}``; the same in double
#: braces, ``{{plate_number}}``, is that text with single braces. Every other brace is
#: text, so that a JSON body is written as it is sent: ``{"id":0,"on":true}``.
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ListConfig(Section):
    """One named plate list (its entries live in the dues database file)."""

    description: str = Field("", max_length=200, description="Shown by `streamer lists show`.")
    file: Path | None = Field(
        None,
        description="A CSV (plate[,note][,expires]) that is the list: it replaces the list's "
        "entries at every start, and the CLI and API cannot change the list. Without it, the "
        "list is managed with `streamer lists` and /api/lists.",
    )


class When(Section):
    """Which plate events a rule acts on, or a webhook receives: all the conditions given
    must hold (none given: every plate event).

    A vehicle whose plate was not read (``unreadable: true`` picks those) is on no list and
    owes nothing that is known, so it passes no condition on lists or dues; and a rule acts
    on it only with ``unreadable: true``, so that a gate never opens for a hidden plate.
    """

    lists: list[str] | None = Field(
        None, min_length=1, description="On at least one of these lists (exact match)."
    )
    not_lists: list[str] | None = Field(None, min_length=1, description="On none of these lists.")
    dues_pending: bool | None = Field(
        None, description="true: only plates with dues pending; false: only plates without."
    )
    direction: list[str] | None = Field(
        None,
        min_length=1,
        description="Moving one of these ways: approaching, receding, left, right, or a "
        "name a camera gives one of them (its direction: {approaching: entry}).",
    )
    unreadable: bool | None = Field(
        None,
        description="true: only vehicles whose plate was not read (plate_number null); "
        "false: only read plates. Not given: a rule acts on read plates only, a webhook "
        "receives both.",
    )

    @field_validator("direction", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _plate_conditions_need_a_plate(self) -> When:
        if self.unreadable and self.plate_conditions:
            raise ValueError(
                "unreadable: true picks vehicles without a plate, which lists, not_lists "
                "and dues_pending never match; leave those out"
            )
        return self

    @property
    def plate_conditions(self) -> bool:
        """Whether a condition is on the plate (its lists or dues)."""
        return not (self.lists is None and self.not_lists is None and self.dues_pending is None)

    def matches(
        self,
        lists: Collection[str],
        dues_pending: bool,
        directions: Collection[str] = (),
        has_plate: bool = True,
        unread_by_default: bool = True,
    ) -> bool:
        """Whether a plate on ``lists``, with or without dues pending, moving
        ``directions`` (the way and the camera's name for it), passes; ``has_plate`` false
        for a vehicle whose plate was not read, which passes a ``when`` without
        ``unreadable`` only where ``unread_by_default`` (a webhook; a rule does not)."""
        if self.direction is not None and not set(self.direction) & set(directions):
            return False
        if not has_plate:
            wanted = unread_by_default if self.unreadable is None else self.unreadable
            return wanted and not self.plate_conditions
        if self.unreadable:
            return False
        if self.lists is not None and not set(self.lists) & set(lists):
            return False
        if self.not_lists is not None and set(self.not_lists) & set(lists):
            return False
        return self.dues_pending is None or self.dues_pending == dues_pending

    def named_lists(self) -> set[str]:
        """Every list the conditions name."""
        return set(self.lists or ()) | set(self.not_lists or ())


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced by its value, and each name in double braces
    by the name in single braces.

    Example:
        >>> fill_placeholders('{"on":true,"plate":"{plate_number}"}', {"plate_number": "KA01"})
        '{"on":true,"plate":"KA01"}'
        >>> fill_placeholders("{{plate_number}}", {"plate_number": "KA01"})
        '{plate_number}'
    """
    return _PLACEHOLDER.sub(lambda m: f"{{{m[1]}}}" if m[1] else values[m[2]], text)


def _placeholders(text: str) -> str:
    unknown = sorted(
        {m[2] for m in _PLACEHOLDER.finditer(text) if m[2] and m[2] not in PLACEHOLDERS}
    )
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}}; known: "
            + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            + f" (for the text {{{unknown[0]}}}, write {{{{{unknown[0]}}}}})"
        )
    return text


class HttpAction(Section):
    """An HTTP request, e.g. to a gate relay."""

    url: str = Field(..., pattern=r"^https?://[^\s]+$", description="May hold placeholders.")
    method: Literal["GET", "POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(
        None,
        max_length=10_000,
        description="Request body (may hold placeholders); default for POST and PUT: the "
        "event's JSON.",
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Seconds before it counts as failed.")

    @field_validator("url", "body")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return None if value is None else _placeholders(value)

    _usable_url = field_validator("url")(http_url)
    _usable_headers = field_validator("headers")(http_headers)


class MqttAction(Section):
    """A message on the broker of the ``mqtt`` section (QoS 1)."""

    topic: str = Field(
        ...,
        max_length=1000,
        description="May hold placeholders. Topic levels separated by single slashes, "
        "without wildcards, white space or a leading $.",
    )
    payload: str | None = Field(
        None, max_length=10_000, description="May hold placeholders; default: the event's JSON."
    )
    retain: bool = False

    @field_validator("topic", "payload")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return None if value is None else _placeholders(value)

    @field_validator("topic")
    @classmethod
    def _fit_topic(cls, topic: str) -> str:
        # Checked with every placeholder filled: what varies is the values, not the shape.
        problem = topic_problem(fill_placeholders(topic, dict.fromkeys(PLACEHOLDERS, "x")))
        if problem is not None:
            raise ValueError(problem)
        return topic


class Action(Section):
    """One thing a rule does: exactly one of ``http`` and ``mqtt``."""

    http: HttpAction | None = None
    mqtt: MqttAction | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        if (self.http is None) == (self.mqtt is None):
            raise ValueError("give exactly one of http and mqtt")
        return self

    @property
    def kind(self) -> str:
        """``http`` or ``mqtt``."""
        return "http" if self.http is not None else "mqtt"


class RuleConfig(Section):
    """Do something when a plate passes: on a vehicle's early event when it has one (a
    barrier waits for no final read), otherwise on its final event; once per vehicle."""

    name: str = Field(..., pattern=LIST_NAME, description="In logs and metrics.")
    cameras: list[str] | None = Field(
        None, min_length=1, description="Cameras it applies to; default: all."
    )
    when: When = Field(default_factory=When)
    do: list[Action] = Field(..., min_length=1, max_length=10)
    cooldown_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="The same plate on the same camera does not fire the rule again within "
        "this many seconds (a car waiting at a gate is one car).",
    )


#: A list's name, checked.
ListName = Annotated[str, StringConstraints(pattern=LIST_NAME)]


def lists_mapping(value: Any) -> Any:
    """``lists: {residents:, banned: {file: …}}``: a name with nothing after it is a list
    managed with the CLI and API."""
    if isinstance(value, dict):
        return {name: {} if entry is None else entry for name, entry in value.items()}
    return value
