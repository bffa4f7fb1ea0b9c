"""The README's set-up on a stock Debian, and the image, in Docker (scripts/docker.sh).

A fresh container of a minimal Debian bookworm (made from Debian's packages: no registry)
gets only ``make``, as the README says, then runs ``make demo`` and ``make test``; the
image is built in its two stages and must run the demo with no torch in it. Skipped, with
the reason, where no Docker daemon can start.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT

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
