"""Leases: each node's share, the moves when nodes join, a dead node's cameras."""

from __future__ import annotations

import time

import pytest

from streamer.cluster.database import PostgresDatabase
from streamer.cluster.leases import Leases, share

from support.cluster_nodes import (
    node_config,
)
from support.postgres import PostgresServer


@pytest.mark.parametrize(
    ("counts", "me", "expected"),
    [
        ({"a": 0}, "a", (0, 6)),  # alone: everything
        ({"a": 6, "b": 0}, "a", (3, 0)),  # a second node: hand half over
        ({"a": 3, "b": 0}, "b", (0, 3)),
        ({"a": 3, "b": 3, "c": 0}, "a", (1, 0)),  # a third: each gives what is over 2
        ({"a": 3, "b": 3, "c": 0}, "b", (1, 0)),
        ({"a": 2, "b": 2, "c": 0}, "c", (0, 2)),
        ({"a": 3, "b": 3, "c": 1, "d": 0}, "a", (1, 0)),  # 7 over 4: 2, 2, 2, 1 at most
        ({"a": 2, "b": 2, "c": 2, "d": 1}, "a", (0, 0)),
        ({"a": 2, "b": 2, "c": 2, "d": 0}, "a", (1, 0)),  # d has less than 1: the busiest
        ({"a": 1, "b": 2, "c": 2, "d": 0}, "b", (1, 0)),  # (first by name) gives one
        ({"a": 1, "b": 2, "c": 2, "d": 0}, "c", (0, 0)),
        ({"a": 2, "b": 2, "c": 2}, "c", (0, 0)),  # balanced: nothing moves
        ({"a": 2, "b": 2}, "a", (0, 1)),  # a dead node's two cameras: one each
    ],
)
def test_the_share_of_each_node(counts: dict[str, int], me: str, expected: tuple[int, int]) -> None:
    assert share(6, counts, dict.fromkeys(counts, 13), me) == expected


def test_a_node_never_holds_more_than_it_can() -> None:
    assert share(6, {"a": 0, "b": 0}, {"a": 2, "b": 13}, "a") == (0, 2)
    assert share(6, {"a": 3}, {"a": 2}, "a") == (1, 0)


def test_cameras_spread_over_the_nodes_with_as_few_moves_as_possible(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    database = PostgresDatabase(url)
    cameras = [f"cam-{n}" for n in range(6)]
    a, b, c = (Leases(database, node_config(url, name), cameras) for name in "abc")
    assert settle([a]) == ({"a": 6}, 0)
    assert settle([a, b]) == ({"a": 3, "b": 3}, 3)
    assert settle([a, b, c]) == ({"a": 2, "b": 2, "c": 2}, 2)  # one from a, one from b
    overview = a.overview()
    assert sorted(overview["cameras"]) == cameras
    assert {n["name"]: len(n["cameras"]) for n in overview["nodes"]} == {"a": 2, "b": 2, "c": 2}
    database.close()


def test_a_dead_nodes_cameras_are_free_only_when_its_leases_expire(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    database = PostgresDatabase(url)
    cameras = ["cam-1", "cam-2"]
    a, b = (Leases(database, node_config(url, name, lease_s=3), cameras) for name in "ab")
    assert a.round({}).held == {"cam-1", "cam-2"}
    assert b.round({}).held == set()  # a is alive: its leases hold
    time.sleep(3.2)  # a stops renewing (it died)
    assert b.round({}).held == {"cam-1", "cam-2"}
    assert a.round({}).held == set()  # a is back: its leases are gone, it must not read
    database.close()


def settle(nodes: list[Leases], rounds: int = 6) -> tuple[dict[str, int], int]:
    """``rounds`` renewal rounds over ``nodes`` in turn, handing over as told; each node's
    cameras at the end, and how many hand-overs it took."""
    moves = 0
    held: dict[str, int] = {}
    for _ in range(rounds):
        for node in nodes:
            result = node.round({})
            node.release(result.release)
            moves += len(result.release)
            held[node.node] = len(result.held - result.release)
    return held, moves
