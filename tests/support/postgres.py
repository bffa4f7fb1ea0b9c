"""A real PostgreSQL for tests: Debian's server, made with ``initdb`` in a temporary folder
and started on a free port; never a server that happens to be running.

PostgreSQL refuses to run as root, so when the tests run as root the server's files belong
to the ``postgres`` user the Debian package creates, and its programs run as that user.
The server takes password logins for :data:`USER` on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg

from support.rtsp import free_port

USER, PASSWORD = "streamer", "pg-s3cret:p@ss"


@functools.cache
def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL programs (the newest version installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@functools.cache
def postgres_missing() -> str | None:
    """None when PostgreSQL can run here, else why not (for ``pytest.skip``)."""
    if postgres_bin() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser to start PostgreSQL as its own user"
    return None


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary folder, on ``127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="streamer-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.bin = postgres_bin() or Path("/nonexistent")

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        """``initdb`` (the first time), then start and wait until it takes connections."""
        if not self.data.exists():
            password = self.folder / "password"
            password.write_text(PASSWORD + "\n")
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres")
                shutil.chown(password, "postgres")
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                USER,
                f"--pwfile={password}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c fsync=off",
            "-w",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it died)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        """A ``postgresql://`` URL for :data:`USER`."""
        return f"postgresql://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def new_database(self, encoding: str = "UTF8") -> str:
        """A new empty database (``SQL_ASCII``: as ``initdb`` makes it without a locale);
        its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(
                f"CREATE DATABASE \"{name}\" ENCODING '{encoding}' LOCALE 'C' TEMPLATE template0"
            )
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
