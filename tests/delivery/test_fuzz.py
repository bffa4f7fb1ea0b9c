"""Damaged outbox files and full disks: ``streamer outbox list``, ``outbox retry --all``
and ``run`` each answer in one line or work, with no traceback, and no event goes missing
from the events log.

Outbox files: a real outbox with pending, delivered and dead deliveries (and events a
crash kept out of the log) is damaged at random: truncated, bytes flipped or zeroed, a
payload that is not JSON or not an event, a newer or a wrong schema version, extra or
dropped tables, damaged values, a garbage WAL. Disk faults: the events log, the outbox and
the evidence, any of them, on a real 1 MB tmpfs that fills during a run of a real clip
(at its first frame or after an event) and is freed during the run or only after it.

    STREAMER_FUZZ_SEED=7 .venv/bin/python -m pytest tests/delivery/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from streamer.cli import main
from streamer.config import Config
from streamer.delivery.eventlog import OutboxSink
from streamer.delivery.jsonlines import JsonLinesSink, key_of, records
from streamer.delivery.outbox import Outbox, OutboxError
from streamer.delivery.outbox_file import SCHEMA_VERSION
from streamer.events import CameraStatus, Event, Phase, PlateEvent
from streamer.node import ServiceOptions, StartupError
from streamer.reading.ocr import OcrEngine
from streamer.service import Service
from streamer.sources.demo import DemoManifest
from streamer.sources.frame import Frame
from streamer.vision.detect import YoloDetector

from support.daemon import make_config, without_cameras, write_yaml
from support.disks import fill, tmpfs
from support.factories import T0, make_event
from support.fuzz import SEED, OverrunError, Tally, bounded, log_problems, mutate, shorten
from support.receiver import Receiver
from support.rtsp import free_port

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def plate(rng: random.Random) -> str:
    return (
        f"{''.join(rng.choices(LETTERS, k=2))}{rng.randint(1, 99):02d}AB{rng.randint(0, 9999):04d}"
    )


def logged_keys(log: Path) -> list[str]:
    """The keys of the events in the events log, in order (each line once)."""
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return []
    return [key for record in records(data) if (key := key_of(record))]


# --- outbox files ----------------------------------------------------------------------------


def make_base(folder: Path, rng: random.Random) -> Config:
    """A daemon's files as a run left them: an outbox with deliveries in every state, two
    early events whose final one never came, two events a crash kept out of the log."""
    config = without_cameras(
        make_config(
            folder,
            webhooks=[{"url": "http://127.0.0.1:9/hook", "name": "hook", "include_status": True}],
            outbox={"database": str(folder / "outbox.sqlite"), "drain_timeout_s": 0},
        )
    )
    outbox = Outbox(config.outbox, config.delivery_targets)
    log = JsonLinesSink(config.events_log)
    events: list[Event] = []
    for number in range(30):
        final = make_event(plate(rng), dues=rng.random() < 0.3)
        events += [replace(final, phase=Phase.EARLY), final] if number % 5 else [final]
    events.insert(7, CameraStatus("gate", "offline", "gone", T0))
    events += [replace(make_event(plate(rng)), phase=Phase.EARLY) for _ in range(2)]
    for number, event in enumerate(events):
        outbox.add(event)
        if number not in (11, 23):
            log.send(event)
            outbox.logged([event.key])
    log.close()
    for delivery in outbox.list(limit=1000):
        if delivery.id % 3 == 0:
            outbox.delivered(delivery.id)
        elif delivery.id % 7 == 0:
            outbox.dead(delivery.id, "HTTP 410")
    outbox.close()
    write_yaml(config, folder / "streamer.yaml")
    return config


def sql(path: Path, *statements: str, values: tuple[object, ...] = ()) -> None:
    """Run ``statements`` on the file as a hand with the sqlite3 shell would (the last
    one with ``values``)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys=OFF")
        for number, statement in enumerate(statements, 1):
            connection.execute(statement, values if number == len(statements) else ())
    finally:
        connection.close()


PAYLOADS = ["{not json", "", "\x00", "[1, 2]", "{}", '{"type": "plate"}', "9" * 5000]
VALUES = [("state", "'pXnding'"), ("attempts", "'x'"), ("next_at", "'soon'")]
VALUES += [("target", "X'FF'"), ("last_error", "CAST(X'FF00' AS TEXT)"), ("updated_at", "1e400")]
PAYLOADS += ["[" * 100_000, '{"type": "plate", "camera": 1}', "null"]


def damage(rng: random.Random, path: Path) -> str:
    """Damage the outbox file at ``path`` one way; returns how."""
    kind = rng.randrange(12)
    data = path.read_bytes()
    if kind == 0:
        at = rng.randrange(len(data))
        path.write_bytes(data[:at])
        return f"truncated at {at} of {len(data)}"
    if kind == 1:
        changed, steps = mutate(rng, data, rng.randint(1, 4))
        path.write_bytes(changed)
        return f"mutated ({steps})"
    if kind == 2:
        flipped = bytearray(data)
        spots = [rng.randrange(4096, len(data)) for _ in range(rng.randint(1, 8))]
        for at in spots:
            flipped[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
        return f"bits flipped past the first page at {spots}"
    if kind == 3:
        row = rng.randint(1, 40)
        if rng.random() < 0.2:
            sql(path, f"UPDATE events SET payload = CAST(X'C3FF28' AS TEXT) WHERE id = {row}")
            return f"payload of event {row} not UTF-8"
        payload = rng.choice(PAYLOADS)
        sql(path, f"UPDATE events SET payload = ? WHERE id = {row}", values=(payload,))
        return f"payload of event {row} set to {shorten(payload, 40)}"
    if kind == 4:
        version = SCHEMA_VERSION + rng.randint(1, 1000)
        sql(path, f"PRAGMA user_version = {version}")
        return f"newer schema version {version}"
    if kind == 5:
        version = rng.choice([0, 1, -1, -(2**31)])
        sql(path, f"PRAGMA user_version = {version}")
        return f"wrong schema version {version}"
    if kind == 6:
        table = rng.choice(["junk", "events_v1", "outbox_v3", "sqlite_stat1"])
        statement = "ANALYZE" if table == "sqlite_stat1" else f"CREATE TABLE {table} (a, b TEXT)"
        sql(path, statement, "CREATE VIEW IF NOT EXISTS everything AS SELECT * FROM events")
        return f"extra table {table} and a view"
    if kind == 7:
        column, value = rng.choice(VALUES)
        sql(path, f"UPDATE deliveries SET {column} = {value} WHERE id % 4 = 1")
        return f"deliveries.{column} set to {value} in some rows"
    if kind == 8:
        table = rng.choice(["deliveries", "events"])
        sql(path, f"DROP TABLE {table}")
        return f"table {table} dropped"
    if kind == 9:
        Path(f"{path}-wal").write_bytes(rng.randbytes(rng.randint(32, 40_000)))
        return "a garbage WAL beside it"
    if kind == 10:
        path.write_bytes(rng.randbytes(len(data)) if rng.random() < 0.5 else b"hello\n" * 99)
        return "not a database at all"
    path.write_bytes(b"")
    return "emptied"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``streamer ARGS`` in this process: its exit status and output."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str | None:
    """Why ``err`` is not the one line a failing command prints, or ``None``."""
    lines = err.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith("streamer: "):
        return f"not one line: {shorten(err, 300)}"
    return None


def check_outbox_file(
    rng: random.Random,
    base: Path,
    folder: Path,
    tally: Tally,
    name: str,
    options: ServiceOptions,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Damage a copy of the base files, then list, retry and run on them."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, folder)
    config = without_cameras(
        make_config(
            folder,
            webhooks=[{"url": "http://127.0.0.1:9/hook", "name": "hook", "include_status": True}],
            outbox={"database": str(folder / "outbox.sqlite"), "drain_timeout_s": 0},
        )
    )
    path = str(write_yaml(config, folder / "streamer.yaml"))
    name += f" ({damage(rng, config.outbox.database)})"
    before = logged_keys(config.events_log)
    caplog.clear()
    answers = []
    for command in (["outbox", "list", "--limit", "1000"], ["outbox", "retry", "--all"]):
        try:
            with bounded(20.0, 512.0):
                code, _, err = cli(capsys, *command, "--config", path)
        except (Exception, OverrunError) as error:
            tally.fail(name, f"{' '.join(command)} raised {type(error).__name__}: {error}")
            continue
        answers.append("works" if code == 0 else "refused")
        if code != 0 and (problem := one_line(err)):
            tally.fail(name, f"{' '.join(command)}: {problem}")
    try:
        with bounded(30.0, 1024.0):
            asyncio.run(Service(config, options).run())
    except StartupError as error:
        answers.append("refused")
        if "\n" in str(error):
            tally.fail(name, f"run: not one line: {shorten(str(error), 300)}")
    except (Exception, OverrunError) as error:
        answers.append("failed")
        tally.fail(name, f"run raised {type(error).__name__}: {shorten(str(error), 300)}")
    else:
        answers.append("works")
        check_events_log(config, before, tally, name)
    for problem in log_problems(caplog.records):
        tally.fail(name, problem)
    tally.count("list {}, retry {}, run {}".format(*answers) if len(answers) == 3 else "raised")


def check_events_log(config: Config, before: list[str], tally: Tally, name: str) -> None:
    """After a run that worked: the log kept what it had, holds nothing twice, and takes
    new events through the outbox as it is."""
    after = logged_keys(config.events_log)
    if missing := set(before) - set(after):
        tally.fail(name, f"{len(missing)} events left the events log")
    if len(after) != len(set(after)):
        tally.fail(name, f"{len(after) - len(set(after))} events logged twice")
    new = [make_event("KA01AB1234"), CameraStatus("gate", "online", None, T0)]
    try:
        with (
            contextlib.closing(Outbox(config.outbox, config.delivery_targets)) as outbox,
            contextlib.closing(JsonLinesSink(config.events_log)) as log,
        ):
            sink = OutboxSink(outbox, log)
            sink.recover()
            for event in new:
                sink.send(event)
    except OutboxError:
        return  # damaged where only a write finds it: refused in one line (an outage)
    except Exception as error:
        tally.fail(name, f"sending events raised {type(error).__name__}: {error}")
        return
    if missing := {e.key for e in new} - set(logged_keys(config.events_log)):
        tally.fail(name, f"{len(missing)} events sent after the run are not in the events log")


@pytest.mark.timeout(600)  # a fuzz budget and daemon runs; minutes under load
def test_damaged_outbox_files_are_answered_in_one_line_or_work(
    tmp_path: Path,
    detector: YoloDetector,
    engine: OcrEngine,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = random.Random(f"{SEED}-outbox")
    tally = Tally("outbox file", minimum=60)
    base = tmp_path / "base"
    make_base(base, rng)
    options = ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    caplog.set_level(logging.INFO)
    planned = 100
    for number in range(planned):
        if tally.over_budget(number, planned):
            break
        check_outbox_file(
            rng, base, tmp_path / "case", tally, f"outbox #{number}", options, capsys, caplog
        )
    tally.report(capsys)
    tally.verdict()


# --- disk faults ------------------------------------------------------------------------------

PARTS = ("events log", "outbox", "evidence")


@dataclass(frozen=True)
class DiskCase:
    """Which files share the small disk, after which event it fills (0: the first frame)
    and after which it is freed (``None``: only after the run)."""

    parts: tuple[str, ...]
    fill_after: int
    free_after: int | None

    def __str__(self) -> str:
        fills = "at the first frame" if self.fill_after == 0 else f"after event {self.fill_after}"
        frees = "after the run" if self.free_after is None else f"after event {self.free_after}"
        return f"{' + '.join(self.parts)} on a disk full {fills}, freed {frees}"


def disk_case(rng: random.Random, events: int) -> DiskCase:
    """A case for a clip that gives ``events`` events. The events log and the outbox full
    together are freed before the last event: full to the end, the events kept in
    memory have nowhere to go when the daemon stops (it says how many were lost)."""
    parts = tuple(sorted(rng.sample(PARTS, rng.randint(1, 3))))
    fill_after = rng.randint(0, 2)
    free_after: int | None = fill_after + rng.randint(1, 3)
    if {"events log", "outbox"} <= set(parts):
        free_after = min(free_after, events)
    elif rng.random() < 0.5:
        free_after = None
    return DiskCase(parts, fill_after, free_after)


class Watcher:
    """A sink after the events log: notes every event, and fills or frees the disk after
    the events the case says."""

    def __init__(self, case: DiskCase, disk: Path) -> None:
        self.case = case
        self.disk = disk
        self.events: list[Event] = []
        self.filler: Path | None = None

    def frame(self, frame: Frame) -> None:
        if self.case.fill_after == 0 and self.filler is None:
            self.filler = fill(self.disk)

    def send(self, event: Event) -> None:
        self.events.append(event)
        if len(self.events) == self.case.fill_after:
            self.filler = fill(self.disk)
        if len(self.events) == self.case.free_after:
            self.free()

    def free(self) -> None:
        if self.filler is not None:
            self.filler.unlink(missing_ok=True)


def check_disk_fault(
    case: DiskCase,
    folder: Path,
    clip: DemoManifest,
    options: ServiceOptions,
    tally: Tally,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver(free_port()).start()
    caplog.clear()
    try:
        with tmpfs(folder / "disk", "1m") as disk:

            def where(part: str, name: str) -> str:
                return str((disk if part in case.parts else folder) / name)

            config = make_config(
                folder,
                cameras=[{"name": "gate", "source": str(clip.path)}],
                webhooks=[
                    {"url": receiver.url, "include_status": True, "retry_initial_s": 0.2}
                    | {"retry_max_s": 1.0}
                ],
                events_log=where("events log", "events.jsonl"),
                outbox={"database": where("outbox", "outbox.sqlite"), "drain_timeout_s": 5},
                recordings={"directory": where("evidence", "evidence")},
            )
            watcher = Watcher(case, disk)
            run = replace(options, on_frame=watcher.frame, extra_sinks=[watcher])
            with bounded(120.0, 1024.0):
                asyncio.run(Service(config, run).run())
                watcher.free()
                if case.free_after is None or case.free_after > len(watcher.events):
                    asyncio.run(Service(without_cameras(config), options).run())
            outcome = check_files(config, watcher.events, receiver, tally, name)
    except (Exception, OverrunError) as error:
        outcome = type(error).__name__
        tally.fail(name, f"raised {type(error).__name__}: {shorten(str(error), 300)}")
    finally:
        receiver.stop()
    for problem in log_problems(caplog.records):
        tally.fail(name, problem)
    tally.count(outcome)


def check_files(
    config: Config, emitted: list[Event], receiver: Receiver, tally: Tally, name: str
) -> str:
    """Every event the pipeline emitted is in the log once and was delivered; every image
    an event names is there."""
    keys = logged_keys(config.events_log)
    expected = {event.key for event in emitted}
    if not expected:
        tally.fail(name, "the clip gave no event")
    if missing := expected - set(keys):
        tally.fail(name, f"{len(missing)} of {len(expected)} events missing from the events log")
    if len(keys) != len(set(keys)):
        tally.fail(name, f"{len(keys) - len(set(keys))} events logged twice")
    if undelivered := expected - set(receiver.delivered):
        tally.fail(name, f"{len(undelivered)} of {len(expected)} events not delivered")
    named = 0
    for record in records(config.events_log.read_bytes()):
        for field in ("crop_path", "snapshot_path"):
            if record.get(field):
                named += 1
                if not Path(record[field]).is_file():
                    tally.fail(name, f"{record['phase']} event names {field} that is gone")
    plates = sum(isinstance(event, PlateEvent) for event in emitted)
    return f"{len(expected)} events, {named} of {2 * plates} images named"


@pytest.mark.timeout(600)  # a fuzz budget and daemon runs; minutes under load
def test_full_disks_lose_no_event_and_no_delivery(
    tmp_path: Path,
    short_clip: DemoManifest,
    detector: YoloDetector,
    engine: OcrEngine,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = random.Random(f"{SEED}-disks")
    tally = Tally("disk fault", minimum=6)
    options = ServiceOptions(install_signal_handlers=False, detector=detector, engine=engine)
    caplog.set_level(logging.INFO)
    cases = [disk_case(rng, 2 * len(short_clip.vehicles)) for _ in range(10)]
    for number, case in enumerate(cases):
        if tally.over_budget(number, len(cases)):
            break
        folder = tmp_path / f"case-{number}"
        check_disk_fault(
            case, folder, short_clip, options, tally, f"disk #{number} ({case})", caplog
        )
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    tally.report(capsys)
    tally.verdict()
