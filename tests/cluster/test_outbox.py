"""The webhook outbox a cluster shares: deliveries forwarded from each node's file, claimed
by one node at a time in order, taken over from a node that died, and managed with
``streamer outbox`` from any node. The server is Debian's PostgreSQL, started by the tests."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psycopg
import pytest

from streamer.cli import main
from streamer.cluster.database import PostgresDatabase
from streamer.cluster.outbox import ClusterOutbox, Forwarder
from streamer.config import OutboxConfig, WebhookConfig
from streamer.delivery.outbox import Outbox
from streamer.delivery.queue import DEAD, DELIVERED, PENDING, Delivery
from streamer.delivery.webhooks import WebhookSender
from streamer.sources.demo import DemoManifest

from support.cluster_nodes import LEASE_S, cluster_nodes, holders, rtsp_cameras, wait_for
from support.daemon import make_config, write_yaml
from support.factories import make_event
from support.postgres import PostgresServer
from support.receiver import Receiver
from support.rtsp import RtspServer, free_port

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOOK = WebhookConfig(url="http://127.0.0.1:1/hook", name="receiver")


def node_file(tmp_path: Path, name: str) -> Outbox:
    """A node's own outbox file, with one webhook."""
    return Outbox(OutboxConfig(database=tmp_path / name / "outbox.sqlite"), [HOOK])


def shipped(file: Outbox, shared: ClusterOutbox, *plates: str) -> list[Delivery]:
    """Commit events to a node's file and forward them to the shared outbox."""
    for plate in plates:
        file.add(make_event(plate))
    pending = file.pending([HOOK.label], 100)
    shared.ship(pending)
    file.forwarded([d.id for d in pending])
    return pending


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase(postgres_server.new_database())
    yield database
    database.close()


def nodes(database: PostgresDatabase, *names: str, max_pending: int = 100) -> list[ClusterOutbox]:
    config = OutboxConfig(max_pending=max_pending)
    return [ClusterOutbox(database, name, config) for name in names]


def test_one_node_at_a_time_delivers_a_webhook_oldest_first(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    a, b = nodes(database, "a", "b")
    shipped(node_file(tmp_path, "a"), a, "AA11AA1111", "BB22BB2222")
    first = b.next_due(HOOK.label)
    assert first is not None
    assert first.payload["plate_number"] == "AA11AA1111"
    assert first.key.endswith(":final")
    assert first.state == PENDING
    assert a.claim(first.id, 30)
    assert not b.claim(first.id, 30)  # a holds it
    second = next(d for d in b.list(PENDING) if d.id != first.id)
    assert not b.claim(second.id, 30)  # not the oldest: order is kept
    waiting = b.next_due(HOOK.label)  # b waits out a's claim
    assert waiting is not None
    assert waiting.id == first.id
    assert 25 < waiting.next_at - time.time() <= 30
    a.delivered(first.id)
    after = b.next_due(HOOK.label)
    assert after is not None
    assert after.id == second.id
    assert b.claim(second.id, 30)
    assert b.counts() == {(HOOK.label, DELIVERED): 1, (HOOK.label, PENDING): 1}


def test_the_claim_of_a_node_that_died_lapses(tmp_path: Path, database: PostgresDatabase) -> None:
    a, b = nodes(database, "a", "b")
    (delivery,) = shipped(node_file(tmp_path, "a"), a, "AA11AA1111")
    assert a.claim(delivery.id, 0.5)  # then a dies mid-request
    assert not b.claim(delivery.id, 30)
    time.sleep(0.6)
    assert b.claim(delivery.id, 30)
    b.delivered(delivery.id)
    assert b.counts() == {(HOOK.label, DELIVERED): 1}


def test_a_retry_holds_back_the_webhook_on_every_node(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    a, b = nodes(database, "a", "b")
    (delivery,) = shipped(node_file(tmp_path, "a"), a, "AA11AA1111")
    assert a.claim(delivery.id, 30)
    a.retry_later(delivery.id, "HTTP 503", time.time() + 0.5)
    due = b.next_due(HOOK.label)
    assert due is not None
    assert due.attempts == 1
    assert due.last_error == "HTTP 503"
    assert 0 < due.next_at - time.time() <= 0.5
    assert not b.claim(delivery.id, 30)
    time.sleep(0.6)
    assert b.claim(delivery.id, 30)


def test_a_delivery_forwarded_twice_is_queued_once(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    """A crash between forwarding and recording it in the file forwards it again."""
    (shared,) = nodes(database, "a")
    file = node_file(tmp_path, "a")
    file.add(make_event("AA11AA1111"))
    pending = file.pending([HOOK.label], 100)
    shared.ship(pending)
    shared.ship(pending)
    assert shared.counts() == {(HOOK.label, PENDING): 1}


def test_nodes_racing_for_one_webhook_deliver_each_event_once_in_order(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    """Four nodes deliver 40 deliveries of one webhook at once: each goes out once, and in
    the order it was queued, whoever took it."""
    file = node_file(tmp_path, "a")
    shipped(file, nodes(database, "a")[0], *(f"KA01AB{n:04d}" for n in range(40)))
    sent: list[tuple[str, int]] = []
    lock = threading.Lock()

    def deliver(shared: ClusterOutbox) -> None:
        while (delivery := shared.next_due(HOOK.label)) is not None:
            if shared.claim(delivery.id, 30):
                with lock:
                    sent.append((shared.node, delivery.id))
                shared.delivered(delivery.id)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in nodes(database, *"wxyz")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [delivery_id for _, delivery_id in sent]
    assert len(ids) == 40
    assert ids == sorted(set(ids))
    assert len({node for node, _ in sent}) > 1  # the work was shared


def test_a_full_shared_outbox_dead_letters_the_oldest_and_retry_revives_them(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    (shared,) = nodes(database, "a", max_pending=2)
    shipped(node_file(tmp_path, "a"), shared, "AA11AA1111", "BB22BB2222", "CC33CC3333")
    assert shared.counts() == {(HOOK.label, PENDING): 2, (HOOK.label, DEAD): 1}
    assert shared.dropped_full == 1
    (dead,) = shared.list(DEAD)
    assert dead.payload["plate_number"] == "AA11AA1111"
    assert dead.last_error == "outbox full"
    assert shared.retry(dead.id) == 1
    assert shared.purge(DEAD) == 0
    assert shared.counts() == {(HOOK.label, PENDING): 3}


def test_streamer_outbox_shows_the_clusters_deliveries(
    tmp_path: Path,
    database: PostgresDatabase,
    postgres_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``streamer outbox`` on any node's config lists and retries the cluster's webhook
    deliveries; ``--local`` shows the node's own file."""
    url = postgres_server.new_database()
    a_database = PostgresDatabase(url)
    a = ClusterOutbox(a_database, "a", OutboxConfig())
    (delivery,) = shipped(node_file(tmp_path, "a"), a, "AA11AA1111")
    assert a.claim(delivery.id, 30)
    a.dead(delivery.id, "HTTP 410")
    other = make_config(
        tmp_path / "b",
        cluster={"database": url, "node": "b"},
        webhooks=[{"url": HOOK.url, "name": HOOK.label}],
    )
    path = write_yaml(other, tmp_path / "b.yaml")
    assert main(["outbox", "list", "--config", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "dead" in listed
    assert "AA11AA1111" in listed
    assert "HTTP 410" in listed
    assert not (tmp_path / "b" / "outbox.sqlite").exists()  # not made by listing
    assert main(["outbox", "list", "--local", "--config", str(path)]) == 1
    assert "there is no outbox at" in capsys.readouterr().err  # b never ran
    assert main(["outbox", "retry", "--all", "--config", str(path)]) == 0
    assert a.counts() == {(HOOK.label, PENDING): 1}
    a_database.close()


def test_a_dead_nodes_pending_deliveries_are_delivered_by_the_others(
    tmp_path: Path,
    postgres_server: PostgresServer,
    demo_video: DemoManifest,
    server_factory: Callable[..., RtspServer],
) -> None:
    """The receiver is down while two nodes read a camera each, so their deliveries wait in
    the shared outbox. One node is killed with SIGKILL; once the receiver is back, the
    survivor delivers every event the dead node logged."""
    cameras = rtsp_cameras(server_factory, demo_video.path, 2)
    receiver = Receiver(free_port()).start()
    receiver.behaviour.status = 503
    url = postgres_server.new_database()
    retries = {"retry_initial_s": 0.5, "retry_max_s": 2.0}
    try:
        with cluster_nodes(tmp_path, url, cameras, receiver.url, ["n1", "n2"], **retries) as ns:
            wait_for(lambda: sorted(holders(ns).values()) == ["n1", "n2"], 90)

            def waiting(node: str) -> int:  # the node's deliveries pending in the database
                with psycopg.connect(url) as connection:
                    row = connection.execute(
                        "SELECT count(*) FROM outbox_deliveries d JOIN outbox_events e "
                        "ON e.id = d.event WHERE e.node = %s AND d.state = 'pending'",
                        (node,),
                    ).fetchone()
                return int(row[0]) if row else 0

            wait_for(lambda: waiting("n1") >= 2, 120)
            ns["n1"][0].kill()
            wait_for(lambda: set(holders({"n2": ns["n2"]})) == {c["name"] for c in cameras}, 30)
            receiver.behaviour.status = 200

            with psycopg.connect(url) as connection:
                rows = connection.execute(
                    "SELECT key FROM outbox_events WHERE node = 'n1'"
                ).fetchall()
            forwarded = {key for (key,) in rows}
            wait_for(lambda: forwarded <= set(receiver.delivered), LEASE_S + 30)
            with psycopg.connect(url) as connection:
                unsent = connection.execute(
                    "SELECT count(*) FROM outbox_deliveries d JOIN outbox_events e "
                    "ON e.id = d.event WHERE e.node = 'n1' AND d.state <> 'delivered'"
                ).fetchone()
            assert unsent == (0,)
            # Every event n1 logged had reached the shared outbox, bar one it may have
            # committed in the instant it was killed (that one waits in its file).
            lines = (tmp_path / "n1" / "events.jsonl").read_text().splitlines()
            records = [json.loads(line) for line in lines]
            logged = {f"{r['event_id']}:final" for r in records if r.get("phase") == "final"}
            assert len(forwarded) >= 2
            assert len(logged - forwarded) <= 1
            # A request n1 had in flight when it died may come twice: same Idempotency-Key.
            keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
            assert {k for k in keys if k in forwarded} == forwarded
    finally:
        receiver.stop()


def test_unreadable_rows_are_dead_lettered_in_the_file_and_the_shared_outbox(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node's file holds three events, the first with a payload that is not JSON: the
    forwarder moves it to the file's dead letters and forwards the others. In the shared
    outbox the second is then damaged too: every node's sender moves it to the dead
    letters and delivers the third; ``streamer outbox list`` shows both."""
    url = postgres_server.new_database()
    with closing(PostgresDatabase(url)) as database, closing(node_file(tmp_path, "a")) as file:
        check_unreadable_rows(tmp_path, url, database, file, capsys)


def check_unreadable_rows(
    tmp_path: Path,
    url: str,
    database: PostgresDatabase,
    file: Outbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shared = ClusterOutbox(database, "a", OutboxConfig())
    events = [make_event(plate) for plate in ("AA11AA1111", "BB22BB2222", "CC33CC3333")]
    for event in events:
        file.add(event, logged=True)
    with sqlite3.connect(tmp_path / "a" / "outbox.sqlite") as connection:
        connection.execute("UPDATE events SET payload = 'x' WHERE key = ?", (events[0].key,))
    connection.close()
    receiver = Receiver(free_port()).start()

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            hook = WebhookConfig(url=receiver.url, name=HOOK.label, retry_initial_s=0.2)
            sender = WebhookSender(hook, shared, session)
            forwarder = Forwarder(file, shared, [sender])
            forwarding = asyncio.create_task(forwarder.run())
            await asyncio.wait_for(forwarder.settle(), 30)
            with database.connect() as db:
                db.execute(
                    "UPDATE outbox_events SET payload = '[]' WHERE key = ?", (events[1].key,)
                )
            sending = asyncio.create_task(sender.run())
            await asyncio.wait_for(sender.settle(), 30)
            for task in (forwarding, sending):
                task.cancel()

    try:
        asyncio.run(run())
    finally:
        receiver.stop()
    assert set(receiver.delivered) == {events[2].key}
    assert [d.key for d in file.list(DEAD)] == [events[0].key]
    assert [d.key for d in shared.list(DEAD)] == [events[1].key]
    config = make_config(
        tmp_path / "a", cluster={"database": url, "node": "a"}, webhooks=[{"url": HOOK.url}]
    )
    path = write_yaml(config, tmp_path / "a.yaml")
    for local, event, reason in [(False, events[1], "an event"), (True, events[0], "JSON")]:
        assert (
            main(["outbox", "list", "--state", "dead", *["--local"] * local, "--config", str(path)])
            == 0
        )
        (line,) = capsys.readouterr().out.splitlines()
        assert event.key in line
        assert f"payload is not {reason}" in line
