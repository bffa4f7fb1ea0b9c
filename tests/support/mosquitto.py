"""A real MQTT broker for tests: Debian's Mosquitto on a free port, and a real subscriber.

:class:`Broker` writes a config into its own folder (with a password file made by
``mosquitto_passwd`` when it has users) and runs ``/usr/sbin/mosquitto`` on it; a test
can stop it and start it again on the same port. :class:`Subscriber` is a paho client in
its own thread that records every message it receives.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from support.rtsp import free_port

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")


@functools.cache
def mosquitto_missing() -> str | None:
    """None when Mosquitto can run here, else why not (for ``pytest.skip``)."""
    for program in (MOSQUITTO, MOSQUITTO_PASSWD):
        if not os.access(program, os.X_OK):
            return f"{program} is not installed (Debian: apt-get install mosquitto)"
    return None


class Broker:
    """Mosquitto listening on ``127.0.0.1:PORT``, its files in ``folder``.

    Args:
        folder: Where its config, password file, persistence and log go.
        users: User names and passwords; anonymous clients are refused when given.
        persistent: Keep retained messages and sessions across a restart (on disk).
        tls: (certificate, key) files: also listen with TLS, on :attr:`tls_port`.
        settings: More lines of its config, e.g. ``max_packet_size 1500``.
    """

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        persistent: bool = False,
        tls: tuple[Path, Path] | None = None,
        settings: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.settings = list(settings)
        self.port = free_port()
        self.users = users or {}
        self.persistent = persistent
        self.tls = tls
        self.tls_port = free_port()
        self.log = folder / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """``mqtts://localhost:TLS_PORT`` (the name its test certificate is made for)."""
        return f"mqtts://localhost:{self.tls_port}"

    def _config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if self.users else 'true'}",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self.folder}/",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # As root, Mosquitto would switch to its own user, who cannot read our files.
            f"user {getpass.getuser()}",
            *self.settings,
        ]
        if self.users:
            passwords = self.folder / "passwords"
            passwords.unlink(missing_ok=True)
            for index, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if index == 0 else []
                subprocess.run(
                    [MOSQUITTO_PASSWD, *create, "-b", passwords, user, password],
                    check=True,
                    capture_output=True,
                )
            lines.append(f"password_file {passwords}")
        if self.tls:
            certificate, key = self.tls
            lines += [f"listener {self.tls_port} 127.0.0.1", f"certfile {certificate}"]
            lines.append(f"keyfile {key}")
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Broker:
        """Start it; returns once it accepts connections."""
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", self._config()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited: {error}{log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it as a service manager would (SIGTERM: it saves its persistence file)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
            with self._process:  # waits, and closes its pipes
                pass
        self._process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    """One message as the subscriber got it, with the time it arrived."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float

    @property
    def text(self) -> str:
        """The payload as text."""
        return self.payload.decode()


class Subscriber:
    """A real MQTT client subscribed to ``topic`` (QoS 2, so each message arrives with the
    QoS it was published with), recording every message; a thread of paho's runs it.

    With ``persistent``, its session outlives a disconnection (and, on a persistent
    broker, a broker restart): what is published meanwhile is kept for it.
    """

    def __init__(
        self,
        broker: Broker,
        topic: str = "#",
        *,
        user: tuple[str, str] | None = None,
        persistent: bool = False,
        client_id: str = "",
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.user = user
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{time.monotonic_ns()}",
            clean_session=not persistent,
        )
        if user is not None:
            self.client.username_pw_set(*user)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: paho.Client, *args: object) -> None:
        client.subscribe(self.topic, qos=2)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        received = Received(
            message.topic, message.payload, message.qos, bool(message.retain), time.time()
        )
        with self._lock:
            self.received.append(received)

    def __enter__(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the subscriber was not subscribed within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def messages(self, topic: str | None = None) -> list[Received]:
        """What has arrived so far (on ``topic`` only, when given), in order."""
        with self._lock:
            return [m for m in self.received if topic is None or m.topic == topic]

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 30) -> None:
        """Wait until ``condition(messages)`` holds."""
        deadline = time.monotonic() + timeout
        while not condition(self.messages()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout:g} s: {self.messages()[-5:]}")
            time.sleep(0.02)

    def retained(self, settle_s: float = 0.5) -> dict[str, Received]:
        """The retained messages on the broker now, by topic (a fresh subscription: they
        arrive at once after it)."""
        with Subscriber(self.broker, self.topic, user=self.user) as fresh:
            time.sleep(settle_s)
            return {m.topic: m for m in fresh.messages() if m.retain}
