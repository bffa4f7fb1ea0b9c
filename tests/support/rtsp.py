"""A real RTSP server for tests: ``tests/support/rtsp_server.py`` run by Debian's GStreamer Python.

The server runs as a child process of ``/usr/bin/python3`` (which has ``gi``; the
virtualenv does not). A test can start it, :meth:`RtspServer.kill` it mid-stream to
simulate a camera crash or a dropped network, and start it again on the same URL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    " from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    " missing = [e for e in ('qtdemux', 'mpeg4videoparse', 'rtpmp4vpay')"
    " if Gst.ElementFactory.find(e) is None];"
    " assert not missing, 'missing GStreamer elements: ' + ', '.join(missing)"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@functools.cache
def gstreamer_available() -> str | None:
    """None when the system Python can run the RTSP server, else a one-line reason."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is not installed"
    try:
        result = subprocess.run(
            [SYSTEM_PYTHON, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} took over 30 s to import GStreamer"
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
    return f"GStreamer RTSP server unusable from {SYSTEM_PYTHON}: {lines[-1]}"


class RtspServer:
    """One video file served at ``rtsp://127.0.0.1:PORT/MOUNT`` by a child process.

    Each client connection plays the file from its start at its frame rate; with ``loop``
    the file repeats forever, else the stream ends at the end of the file (the server
    keeps running). The port is fixed at construction, so a restart keeps the same URL.
    """

    def __init__(
        self, video: Path, *, port: int | None = None, mount: str = "/gate", loop: bool = False
    ) -> None:
        """Describe the server; nothing runs until :meth:`start`.

        Args:
            video: The file to serve (MP4 from OpenCV's ``mp4v`` writer is sent as it is).
            port: TCP port on 127.0.0.1; a free one when None.
            mount: Path of the stream in the URL, starting with ``/``.
            loop: Repeat the file forever instead of ending the stream at its end.
        """
        self.video = Path(video)
        self.port = free_port() if port is None else port
        self.mount = mount if mount.startswith("/") else f"/{mount}"
        self.loop = loop
        self.url = f"rtsp://127.0.0.1:{self.port}{self.mount}"
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it listens.

        Raises:
            RuntimeError: when it is already running, or it exits or does not print
                ``READY`` within ``timeout`` seconds; the message holds its stderr.
        """
        if self.running:
            raise RuntimeError(f"RTSP server for {self.url} is already running")
        self._reap()
        command = [SYSTEM_PYTHON, "-I", str(SERVER_SCRIPT), "--port", str(self.port)]
        command += ["--mount", self.mount, "--file", str(self.video.resolve())]
        if self.loop:
            command.append("--loop")
        # stderr goes to a file (closed by _reap): a pipe nobody reads could fill up.
        self._stderr = tempfile.TemporaryFile(prefix="rtsp-server-")  # noqa: SIM115
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        output = b""
        while b"\n" not in output:
            left = deadline - time.monotonic()
            if left <= 0 or process.poll() is not None:
                break
            if select.select([process.stdout], [], [], min(left, 0.5))[0]:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:  # stdout closed: the process is exiting
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=5)
                    break
                output += chunk
        if not output.startswith(b"READY "):
            reason = "exited" if process.poll() is not None else f"not ready after {timeout} s"
            stderr = self._read_stderr()
            self.kill()
            raise RuntimeError(f"RTSP server for {self.url} {reason}: {stderr}")

    def pause(self, paused: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the server: the connection stays open but goes silent."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server (a camera crash or a dropped network) and wait for it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        """SIGTERM the server and wait for it; SIGKILL when it takes over 5 s."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._reap()

    def _reap(self) -> None:
        """Wait for the ended process and close its pipes."""
        if self._process is not None:
            self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _read_stderr(self) -> str:
        """What the server wrote to stderr so far, trimmed to its last 4000 characters."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return text[-4000:] or "(no output on stderr)"

    def __enter__(self) -> RtspServer:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """The URL and whether the server runs."""
        return f"RtspServer({self.url!r}, running={self.running})"
