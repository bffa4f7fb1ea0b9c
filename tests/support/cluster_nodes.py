"""Nodes of one cluster for the end-to-end tests: ``streamer run`` processes sharing a
PostgreSQL database, each with its API on a free port, and what the tests ask them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from streamer.config import ClusterConfig, Config

from support.daemon import make_config, write_yaml
from support.rtsp import RtspServer, free_port

#: The nodes' camera lease: short, so that the tests see failovers quickly.
LEASE_S = 3.0
#: A node: its ``streamer run`` process and its API's URL.
Node = tuple[subprocess.Popen[str], str]


def api(node_url: str, path: str) -> dict[str, Any]:
    """A node's answer to ``GET path``."""
    answer = requests.get(f"{node_url}{path}", timeout=5)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


@contextlib.contextmanager
def cluster_nodes(
    folder: Path,
    url: str,
    cameras: list[dict[str, str]],
    hook: str,
    names: list[str],
    **webhook: object,
) -> Iterator[dict[str, Node]]:
    """``streamer run`` nodes of one cluster (:data:`LEASE_S`), each with its API on a
    free port and a webhook of final events to ``hook`` (with the ``webhook`` settings):
    name → node; killed after the test if still running."""
    nodes: dict[str, Node] = {}
    try:
        for name in names:
            (folder / name).mkdir()
            port = free_port()
            config = make_config(
                folder / name,
                cameras=cameras,
                cluster={"database": url, "node": name, "lease_s": LEASE_S},
                http={"enabled": True, "port": port},
                webhooks=[{"url": hook, "phases": ["final"], **webhook}],
            )
            path = write_yaml(config, folder / f"{name}.yaml")
            with (folder / name / "stderr.log").open("w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, "-m", "streamer", "run", "--config", str(path)],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    text=True,
                )
            nodes[name] = (process, f"http://127.0.0.1:{port}")
        yield nodes
    finally:
        for process, _ in nodes.values():
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
            if process.poll() is None:
                process.kill()


def holders(nodes: dict[str, Node]) -> dict[str, str | None]:
    """Each online camera and its node, as the first node that answers says."""
    for _, node_url in nodes.values():
        with contextlib.suppress(requests.RequestException):
            listed = api(node_url, "/api/cameras")["cameras"]
            return {c["name"]: c["node"] for c in listed if c["status"] == "online"}
    return {}


def rtsp_cameras(
    server_factory: Callable[..., RtspServer], video: Path, count: int
) -> list[dict[str, str]]:
    """``count`` cameras, each an RTSP server looping ``video``."""
    return [
        {"name": f"cam-{n}", "source": server_factory(video, loop=True).url}
        for n in range(1, count + 1)
    ]


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout:g} s"
        time.sleep(0.2)
    return time.monotonic() - started


def cluster_config(tmp_path: Path, url: str, **settings: object) -> Config:
    return make_config(tmp_path, cluster={"database": url}, **settings)


def node_config(url: str, node: str, lease_s: float = 10) -> ClusterConfig:
    return ClusterConfig(database=url, node=node, lease_s=lease_s)
