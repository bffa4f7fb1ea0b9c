"""The README's set-up on a stock Debian, and the image, in Docker (scripts/docker.sh).

A fresh container of a minimal Debian bookworm (made from Debian's packages: no registry)
gets only ``make``, as the README says, then runs ``make demo`` and ``make test``; the
image is built in its two stages and must run the demo with no torch in it, and
deploy/compose.yaml is brought up as a cluster of three (its PostgreSQL made from Debian's
packages too). Skipped, with the reason, where no Docker daemon can start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from support.daemon import ROOT

SCRIPT = ROOT / "scripts" / "docker.sh"


def docker_sh(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def docker() -> None:
    if os.environ.get("STREAMER_IN_CONTAINER"):
        pytest.skip("this run is the container check itself")
    started = docker_sh("daemon", timeout=120)
    if started.returncode != 0:
        pytest.skip(f"no Docker daemon here: {started.stderr.strip()}")


@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("docker")
def test_the_readme_commands_set_up_a_stock_debian() -> None:
    result = docker_sh("readme", timeout=3500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "demo plates read: 5 of 5" in output
    summary = [line for line in output.splitlines() if " passed" in line and " in " in line]
    assert summary, output[-3000:]
    assert " failed" not in summary[-1], summary[-1]


@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("docker")
def test_the_image_runs_the_demo_without_torch() -> None:
    built = docker_sh("image", timeout=3500)
    assert built.returncode == 0, built.stderr[-3000:]
    size_gb = int(built.stdout.split()[-1]) / 1e9
    assert size_gb < 2.0

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "streamer:latest", *command],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    probe = run("python3", "-c", "import importlib.util as u; print(u.find_spec('torch'))")
    assert probe.stdout.strip() == "None", probe.stderr
    demo = run("streamer", "demo")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "demo plates read: 5 of 5" in demo.stdout


#: deploy/compose.yaml, with PostgreSQL from Debian's packages laid over it.
COMPOSE = [
    *("docker-compose", "--project-name", "streamer-compose-test"),
    *("--file", "deploy/compose.yaml", "--file", "tests/support/docker/compose.yaml"),
]
#: The secrets compose asks for, as a user exports them.
SECRETS = {
    "PGPASSWORD": "pg-p@ss:word",
    "STREAMER_TOKEN": "compose-test-token",
    "WEBHOOK_SECRET": "compose-test-secret",
    "CAMERA_USER": "viewer",
    "CAMERA_PASSWORD": "cam:p@ss",
}


def compose(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMPOSE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env={**os.environ, **SECRETS},
    )


def cluster_of(port: int) -> dict[str, Any]:
    """A node's ``/api/cluster``, or ``{}`` while it does not answer."""
    headers = {"Authorization": f"Bearer {SECRETS['STREAMER_TOKEN']}"}
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/api/cluster", headers=headers, timeout=5)
        return dict(answer.json()) if answer.ok else {}
    except (requests.RequestException, ValueError):
        return {}


def holders(port: int) -> Counter[str]:
    """How many cameras each node holds, as the node on ``port`` says."""
    cameras = cluster_of(port).get("cameras", {})
    return Counter(str(camera["node"]) for camera in cameras.values() if camera["node"])


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s"
        time.sleep(2)


@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("docker")
def test_compose_brings_up_a_cluster_that_shares_the_cameras() -> None:
    """``docker-compose up`` of deploy/compose.yaml: PostgreSQL and three nodes, which
    share the six cameras of deploy/streamer.yaml two each; a node stopped with SIGTERM
    hands its cameras to the other two."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    for part in ("image", "postgres"):
        built = docker_sh(part, timeout=3500)
        assert built.returncode == 0, built.stderr[-3000:]
    compose("down", "--volumes")
    try:
        started = compose("up", "--detach", "--no-build")
        assert started.returncode == 0, started.stderr[-3000:]
        # Each node measures the detector's precision first; three at once take a while.
        wait_until(lambda: sorted(holders(8003).values()) == [2, 2, 2], 600)
        overview = cluster_of(8004)
        assert sorted(n["name"] for n in overview["nodes"] if n["alive"]) == [
            "node-1",
            "node-2",
            "node-3",
        ]
        stopped = compose("stop", "node-3", timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-3000:]
        wait_until(lambda: holders(8003) == Counter({"node-1": 3, "node-2": 3}), 60)
    finally:
        logs = compose("logs", "--no-color", "--tail", "20").stdout
        compose("down", "--volumes")
    assert "Traceback" not in logs, logs[-5000:]
