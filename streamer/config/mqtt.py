"""Settings of the MQTT output: the broker, its credentials and TLS, the topics, and Home
Assistant's discovery."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from streamer.config.base import Section

#: The longest topic MQTT carries, in UTF-8 bytes.
MAX_TOPIC_BYTES = 65_535
#: What no topic here may hold: white space, and what brokers refuse as malformed (control
#: characters, surrogates): Mosquitto drops a client that publishes to such a topic.
_UNFIT = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: ``mqtt://host[:port]`` or ``mqtts://host[:port]``; an IPv6 host in brackets.
_URL = re.compile(r"^(mqtts?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?/?$")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def topic_problem(topic: str) -> str | None:
    """Why messages cannot be published to ``topic``, or ``None`` when they can.

    A broker refuses a wildcard (``+``, ``#``), keeps the topics that start with ``$``
    (``$SYS``) for itself, and drops a client that sends a control character; without
    MQTT 5 it does so without a word, and the message would count as delivered. An empty
    level (``a//b``, a ``/`` at either end) is legal but always a slip.

    Example:
        >>> topic_problem("$SYS/streamer")
        'starts with $: the broker keeps $ topics (such as $SYS) for itself'
    """
    if not topic:
        return "must not be empty"
    if topic.startswith("$"):
        return "starts with $: the broker keeps $ topics (such as $SYS) for itself"
    if "+" in topic or "#" in topic:
        return "holds a wildcard (+ or #): a message goes to one topic"
    if "" in topic.split("/"):
        return "has an empty level (// or a / at either end)"
    if (unfit := _UNFIT.search(topic)) is not None:
        return f"holds {unfit.group()!r}: no white space or control characters"
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        return f"is longer than MQTT's {MAX_TOPIC_BYTES:,} bytes"
    return None


def _fit_topic(topic: str) -> str:
    if (problem := topic_problem(topic)) is not None:
        raise ValueError(problem)
    return topic


def default_client_id() -> str:
    """``streamer-<hostname>``: unique per machine, stable across restarts."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()).strip("-") or "host"
    return f"streamer-{host}"[:64]


class MqttTlsConfig(Section):
    """TLS to the broker (with an ``mqtts://`` URL)."""

    ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) the broker's certificate is checked against; "
        "default: the system's.",
    )
    cert_file: Path | None = Field(
        None,
        description="Client certificate (PEM), for a broker that authenticates clients by "
        "certificate.",
    )
    key_file: Path | None = Field(
        None, description="The client certificate's private key (PEM); default: in cert_file."
    )
    insecure: bool = Field(
        False,
        description="Accept any certificate and host name (a test broker with a self-signed "
        "certificate): the connection is encrypted but the broker is not verified.",
    )

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> MqttTlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


class DiscoveryConfig(Section):
    """Home Assistant's MQTT discovery."""

    enabled: bool = Field(
        True,
        description="Publish Home Assistant discovery configs (retained), so that each camera "
        "appears as a device with its entities.",
    )
    prefix: str = Field(
        "homeassistant",
        max_length=1000,
        description="Home Assistant's discovery prefix (its MQTT integration's setting): "
        "topic levels separated by single slashes, without wildcards, white space or a "
        "leading $.",
    )

    _topic = field_validator("prefix")(_fit_topic)


class MqttConfig(Section):
    """The MQTT broker that plate events and camera states are published to."""

    url: str = Field(
        ...,
        description="The broker: mqtt://host[:port] (default port 1883) or mqtts://host[:port] "
        "(TLS, default port 8883).",
    )
    username: str | None = Field(None, description="User name at the broker.")
    password: str | None = Field(
        None, description="Password at the broker; keep it out of the file with ${ENV_VAR}."
    )
    topic_prefix: str = Field(
        "streamer",
        max_length=1000,
        description="Every topic starts with it: <prefix>/<camera>/plate and so on. Two daemons "
        "on one broker need two prefixes. Topic levels separated by single slashes, without "
        "wildcards, white space or a leading $.",
    )
    client_id: str = Field(
        default_factory=default_client_id,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="The client identifier at the broker; default: streamer-<hostname>. A "
        "broker disconnects the older of two clients with the same identifier.",
    )
    tls: MqttTlsConfig | None = Field(
        None, description="TLS options (mqtts:// only); default: verify against the system's CAs."
    )
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
    keepalive_s: int = Field(
        30,
        ge=5,
        le=3600,
        description="The connection is checked at least this often; a broker that stops "
        "answering is noticed within 1.5 times this.",
    )
    timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="To connect, and for the broker to acknowledge each message (QoS 1).",
    )
    reconnect_initial_s: float = Field(
        1.0, gt=0, le=3600, description="First wait before reconnecting; doubles per failure."
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait between reconnection attempts."
    )

    _topic = field_validator("topic_prefix")(_fit_topic)

    @field_validator("url")
    @classmethod
    def _broker_url(cls, url: str) -> str:
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        if scheme not in DEFAULT_PORTS:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port] (TLS)")
        if "@" in url:
            raise ValueError("put the user name and password in mqtt.username and mqtt.password")
        match = _URL.match(url)
        if match is None:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port] (TLS)")
        if match.group(3) is not None and not 0 < int(match.group(3)) < 65536:
            raise ValueError("port must be between 1 and 65535")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password needs username")
        if self.tls is not None and self.scheme != "mqtts":
            raise ValueError("tls needs an mqtts:// url")
        return self

    @property
    def scheme(self) -> str:
        """``mqtt`` or ``mqtts``."""
        return self.url.partition("://")[0].lower()

    @property
    def host(self) -> str:
        """The broker's host name or address (an IPv6 address without brackets)."""
        match = _URL.match(self.url)
        assert match is not None  # checked by the validator
        return match.group(2).strip("[]")

    @property
    def port(self) -> int:
        """The broker's port (1883, 8883 for mqtts, unless the URL gives one)."""
        match = _URL.match(self.url)
        assert match is not None
        return int(match.group(3) or DEFAULT_PORTS[self.scheme])

    @property
    def label(self) -> str:
        """The broker as the outbox names it: ``mqtt:<host>:<port>`` (no webhook name has a
        colon, so the two never clash)."""
        return f"mqtt:{self.host}:{self.port}"

    @property
    def display(self) -> str:
        """The broker's URL with its user and a masked password, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = ""
        if self.username is not None:
            user = f"{self.username}:***@" if self.password is not None else f"{self.username}@"
        return f"{self.scheme}://{user}{host}:{self.port}"
