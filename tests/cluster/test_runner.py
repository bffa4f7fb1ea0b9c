"""Daemons sharing one PostgreSQL database (``cluster.database``): its schema, migrated once
however many nodes start at once, and the dues and lists every node sees. The server is
Debian's PostgreSQL, started by the tests on a free port."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from streamer.sources.demo import DemoManifest

from support.cluster_nodes import LEASE_S, api, cluster_nodes, holders, rtsp_cameras, wait_for
from support.postgres import PostgresServer, postgres_missing
from support.receiver import Receiver
from support.rtsp import RtspServer, free_port


@pytest.mark.timeout(600)  # several daemons or a fuzz budget; minutes under load
def test_three_nodes_share_six_cameras_and_take_over_from_a_dead_one(
    tmp_path: Path,
    postgres_server: PostgresServer,
    demo_video: DemoManifest,
    server_factory: Callable[..., RtspServer],
) -> None:
    """Three ``streamer run`` nodes, six RTSP cameras looping the demo, a webhook
    receiver. A node killed with SIGKILL: its cameras are read again by the others within
    ``lease_s`` + 10 s. A node stopped with SIGTERM: its cameras move at once."""
    cameras = rtsp_cameras(server_factory, demo_video.path, 6)
    receiver = Receiver(free_port()).start()
    url = postgres_server.new_database()
    try:
        with cluster_nodes(tmp_path, url, cameras, receiver.url, ["n1", "n2", "n3"]) as nodes:
            wait_for(lambda: sorted(Counter(holders(nodes).values()).values()) == [2, 2, 2], 90)
            overview = api(nodes["n1"][1], "/api/cluster")
            alive = sorted(n["name"] for n in overview["nodes"] if n["alive"])
            assert alive == ["n1", "n2", "n3"]
            # SIGKILL n1: its two cameras come back on n2 and n3.
            victim = set(overview["nodes"][0]["cameras"])
            nodes["n1"][0].kill()
            killed_at = time.monotonic()
            survivors = {name: node for name, node in nodes.items() if name != "n1"}

            def recovered() -> bool:
                held = holders(survivors)
                return set(held) == {c["name"] for c in cameras} and "n1" not in held.values()

            wait_for(recovered, LEASE_S + 10)
            failover = time.monotonic() - killed_at
            assert victim <= set(holders(survivors))
            logging.getLogger(__name__).info("failover in %.1f s", failover)
            # SIGTERM n2: it finishes its tracks, releases its cameras, n3 takes them all.
            process, _ = nodes["n2"]
            process.terminate()
            assert process.wait(30) == 0
            stopped_at = time.monotonic()
            last = {"n3": nodes["n3"]}
            wait_for(lambda: Counter(holders(last).values()) == {"n3": 6}, LEASE_S * 2 + 10)
            handover = time.monotonic() - stopped_at
            logging.getLogger(__name__).info("hand-over on SIGTERM in %.1f s", handover)
            assert handover < LEASE_S  # released at once, not waited out
            # Every camera's vehicles reach the receiver, whichever node read them.
            wait_for(
                lambda: {e["camera"] for e in receiver.unique().values()} == set(holders(last)),
                60,
            )
            # n3's /api/events shows the cluster's events, those of nodes gone too.
            listed = api(nodes["n3"][1], "/api/events?limit=1000")["events"]
            finals = {e["event_id"] for e in receiver.unique().values()}
            assert finals <= {e["event_id"] for e in listed}
            assert {e["node"] for e in listed} > {"n3"}
    finally:
        receiver.stop()


@pytest.mark.timeout(600)  # several daemons or a fuzz budget; minutes under load
def test_a_database_outage_stops_the_cameras_and_loses_no_event(
    tmp_path: Path, demo_video: DemoManifest, server_factory: Callable[..., RtspServer]
) -> None:
    """The database is killed for 20 s: the nodes stop their cameras before the leases
    could pass to anyone, keep every event they had, and read again once it is back."""
    if reason := postgres_missing():
        pytest.skip(reason)
    cameras = rtsp_cameras(server_factory, demo_video.path, 2)
    receiver = Receiver(free_port()).start()
    with PostgresServer() as server:
        url = server.new_database()
        try:
            with cluster_nodes(tmp_path, url, cameras, receiver.url, ["n1", "n2"]) as nodes:
                wait_for(lambda: Counter(holders(nodes).values()) == {"n1": 1, "n2": 1}, 90)

                def reading() -> int:  # cameras the nodes read, each by its own /health
                    return sum(len(api(u, "/health")["cameras"]) for _, u in nodes.values())

                down_at, down_wall = time.monotonic(), time.time()
                server.stop("immediate")
                wait_for(lambda: reading() == 0, LEASE_S + 10)
                # Each node decided to stop before the leases could pass to another node.
                for name in nodes:
                    fenced = fencing_time(tmp_path / name / "stderr.log") - down_wall
                    assert 0 < fenced < LEASE_S, (name, fenced)
                time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
                server.start()
                back = wait_for(lambda: len(holders(nodes)) == 2, LEASE_S * 2 + 15)
                logging.getLogger(__name__).info(
                    "fenced %.1f s after the database died; reading again %.1f s after it "
                    "came back",
                    fenced,
                    back,
                )

                # Nothing lost: every final event the nodes logged reaches the receiver.
                def logged() -> set[str]:
                    keys = set()
                    for name in nodes:
                        for line in (tmp_path / name / "events.jsonl").read_text().splitlines():
                            record = json.loads(line)
                            if record.get("phase") == "final":
                                keys.add(f"{record['event_id']}:final")
                    return keys

                wait_for(lambda: bool(logged()) and logged() <= set(receiver.unique()), 60)
                for name in nodes:  # no track or sink failed for want of the database
                    log = (tmp_path / name / "stderr.log").read_text()
                    assert "Traceback" not in log
                    assert not re.search(r"track \d+ failed|sink \w+ failed", log)
        finally:
            receiver.stop()


def fencing_time(log: Path) -> float:
    """When a node's log says it stopped its cameras for want of renewals (Unix time)."""
    for line in log.read_text().splitlines():
        if "leases not renewed" in line:
            moment = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return moment.timestamp()
    raise AssertionError(f"{log}: the node never stopped its cameras")
