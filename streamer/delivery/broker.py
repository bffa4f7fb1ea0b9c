"""The connection to an MQTT broker: TLS, a client with the daemon's last will, and a
broker that refuses the daemon told apart from one that cannot be reached."""

from __future__ import annotations

import logging
import ssl

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from streamer.config import MqttConfig
from streamer.delivery.topics import OFFLINE

logger = logging.getLogger(__name__)
#: paho's own log: its debug lines only, since its warnings and errors (a reset connection)
#: say what the MQTT sender logs anyway, in its own words.
_client_logger = logger.getChild("client")
_client_logger.addFilter(lambda record: record.levelno <= logging.DEBUG)

#: CONNACK codes of a broker that refuses who we are (MQTT 3.1.1: 2 identifier rejected,
#: 4 bad user name or password, 5 not authorised; paho reports them as MQTT 5 codes).
REFUSED_CODES = {2, 4, 5, 133, 134, 135}


class MqttRefusedError(RuntimeError):
    """The broker refused the connection: the credentials or the client identifier."""


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context of an ``mqtts://`` broker (``None`` for ``mqtt://``).

    Raises:
        ValueError: when a certificate or key file cannot be read.
    """
    if config.scheme != "mqtts":
        return None
    tls = config.tls
    files = {} if tls is None else {"ca_file": tls.ca_file, "cert_file": tls.cert_file}
    if tls is not None:
        files["key_file"] = tls.key_file
    for key, path in files.items():
        if path is None:
            continue
        try:
            path.open("rb").close()
        except OSError as error:
            raise ValueError(f"mqtt.tls.{key}: cannot read {path} ({error.strerror})") from None
    try:
        context = ssl.create_default_context(cafile=files.get("ca_file"))
        if tls is not None and tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as error:
        raise ValueError(f"mqtt.tls: {error.reason or error}") from None
    if tls is not None and tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def refused(error: Exception) -> bool:
    if not isinstance(error, MqttConnectError):
        return False
    code = getattr(error.rc, "value", error.rc)
    return isinstance(code, int) and code in REFUSED_CODES


def new_client(config: MqttConfig, availability: str, tls: ssl.SSLContext | None) -> aiomqtt.Client:
    """A client for one connection, with ``offline`` on ``availability`` as its last will.
    Each connection gets a new client, so nothing of a broken one is sent again."""
    return aiomqtt.Client(
        config.host,
        config.port,
        username=config.username,
        password=config.password,
        identifier=config.client_id,
        will=aiomqtt.Will(availability, OFFLINE, qos=1, retain=True),
        keepalive=config.keepalive_s,
        timeout=config.timeout_s,
        tls_context=tls,
        logger=_client_logger,
    )
