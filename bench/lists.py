"""What a plate list of a million entries costs: the import, the file it takes, and a
lookup (exact and one OCR slip away), on SQLite and on PostgreSQL; and the same for a
dues database of a million plates.

The list is ``--entries`` random Indian plates (``KA01AB1234``) plus a fleet of 10,000
numbered in one series (``MH12FL0000`` … ``MH12FL9999``), the worst case for the one-slip
keys: every one of them shares the series with the others. It is imported from a CSV
with ``SqlLists.import_csv`` (parse, check, key and write, in one transaction), then the
same file is loaded as a list ``file`` twice (as at a start: the first load writes it,
the second finds nothing changed). Lookups are timed one by one, as the daemon makes
them (each in its own transaction): plates on the list, plates one slip from one on it
(a character changed, missed or added, or a look-alike), plates of the fleet misread, and
plates on no list. The same plates are then imported as dues (``SqlDues.import_csv``) and
looked up the same ways. PostgreSQL is Debian's, started in a scratch folder with ``fsync=off``
(as the tests run it).

    .venv/bin/python bench/lists.py [--entries 1000000] [--lookups 300] [--out docs/PERFORMANCE.md]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import psycopg

from streamer.cluster.database import PostgresDatabase
from streamer.stores.database import Database, SqliteDatabase
from streamer.stores.dues import SqlDues
from streamer.stores.lists import SqlLists
from streamer.stores.slips import PIECES
from streamer.vision.hardware import this_machine

from common import ROOT, tests_helper, write_section

LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
STATES = "AP AR AS BR CG GA GJ HR HP JH KA KL MP MH MN ML MZ NL OD PB RJ SK TN TS TR UP UK WB DL"
FLEET = [f"MH12FL{number:04d}" for number in range(10_000)]
LOOK_ALIKE = {"0": "O", "O": "0", "1": "I", "I": "1", "8": "B", "B": "8", "5": "S", "S": "5"}


def plate(rng: random.Random) -> str:
    """A random Indian plate."""
    series = "".join(rng.choices(LETTERS, k=rng.choice([1, 2, 2, 2])))
    return f"{rng.choice(STATES.split())}{rng.randint(1, 99):02d}{series}{rng.randint(0, 9999):04d}"


def slip(rng: random.Random, text: str) -> str:
    """``text`` with one OCR slip: a character changed, missed, added, or a look-alike."""
    at = rng.randrange(len(text))
    kind = rng.randrange(4)
    if kind == 0:
        return text[:at] + rng.choice(LETTERS + "0123456789") + text[at + 1 :]
    if kind == 1:
        return text[:at] + text[at + 1 :]
    if kind == 2:
        return text[:at] + rng.choice(LETTERS) + text[at:]
    return "".join(LOOK_ALIKE.get(char, char) for char in text)


def timed(call: Callable[[], object]) -> float:
    """Seconds ``call`` took."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(
    database: Database,
    size: Callable[[], int],
    csv: Path,
    plates: list[str],
    lookups: int,
    rng: random.Random,
) -> dict[str, object]:
    """Import, load and look up; every figure of one backend (the size after the import)."""
    figures: dict[str, object] = {}
    store = SqlLists(database, {"stolen": None})
    figures["import"] = timed(lambda: store.import_csv("stolen", csv))
    figures["size"] = size()
    loaded = SqlLists(database, {"stolen": None, "fleet": csv})
    figures["first load"] = timed(loaded.load_files)
    figures["reload"] = timed(loaded.load_files)
    listed = set(plates)
    reads = {
        "on the list": [rng.choice(plates) for _ in range(lookups)],
        "one slip away": [slip(rng, rng.choice(plates)) for _ in range(lookups)],
        "fleet, one slip away": [slip(rng, rng.choice(FLEET)) for _ in range(lookups)],
        "on no list": [p for p in (plate(rng) for _ in range(lookups * 2)) if p not in listed],
    }
    for kind, texts in reads.items():
        times = sorted(timed(lambda text=text: store.lookup(text)) for text in texts[:lookups])
        figures[kind] = (statistics.median(times), times[int(len(times) * 0.95)])
    dues = SqlDues(database)
    csv.with_suffix(".dues").write_text("plate,amount\n" + "".join(f"{p},5\n" for p in plates))
    before = size()
    figures["dues import"] = timed(lambda: dues.import_csv(csv.with_suffix(".dues")))
    figures["dues size"] = size() - before
    for kind, texts in reads.items():
        times = sorted(timed(lambda text=text: dues.lookup(text)) for text in texts[:lookups])
        figures[f"dues {kind}"] = (statistics.median(times), times[int(len(times) * 0.95)])
    return figures


def sqlite_size(path: Path) -> int:
    """The SQLite file's bytes (with its write-ahead log, if any)."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def postgres_size(url: str) -> int:
    """The bytes of the lists' and the dues' tables and indexes."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT sum(pg_total_relation_size(name)) FROM unnest(ARRAY"
            "['list_entries', 'list_keys', 'dues', 'dues_keys']::regclass[]) AS name"
        ).fetchone()
    return int(row[0]) if row else 0


def table(results: dict[str, dict[str, object]], entries: int, lookups: int) -> str:
    """The section of docs/PERFORMANCE.md."""
    lines = [
        "## Plate lists",
        "",
        f"Measured by `bench/lists.py` on **{this_machine().describe()}**, "
        f"{date.today().isoformat()}: one list of {entries:,} random Indian plates and a "
        f"fleet of {len(FLEET):,} numbered in one series ({entries + len(FLEET):,} entries), "
        f"{lookups} lookups of each kind, one transaction each; one-slip keys of "
        f"{PIECES} pieces. *Import*: `streamer lists import` of the CSV (parse, check, key, "
        "write). *First load*: the same file as a second list's `file`, as at a start; "
        "*reload*: the next start, the file unchanged. PostgreSQL runs with `fsync=off`.",
        "",
        "| | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for row in ("import", "first load", "reload"):
        lines.append(f"| {row} s | " + " | ".join(f"{r[row]:.1f}" for r in results.values()) + " |")
    lines.append(
        "| size MB | " + " | ".join(f"{r['size'] / 2**20:.0f}" for r in results.values()) + " |"
    )
    for kind in ("on the list", "one slip away", "fleet, one slip away", "on no list"):
        cells = []
        for r in results.values():
            p50, p95 = r[kind]  # type: ignore[misc]
            cells.append(f"{p50 * 1000:.2f} / {p95 * 1000:.2f}")
        lines.append(f"| lookup, {kind}: p50 / p95 ms | " + " | ".join(cells) + " |")
    lines.append(
        "| dues: import s | "
        + " | ".join(f"{r['dues import']:.1f}" for r in results.values())
        + " |"
    )
    lines.append(
        "| dues: size MB | "
        + " | ".join(f"{r['dues size'] / 2**20:.0f}" for r in results.values())
        + " |"
    )
    for kind in ("on the list", "one slip away", "fleet, one slip away", "on no list"):
        cells = []
        for r in results.values():
            p50, p95 = r[f"dues {kind}"]  # type: ignore[misc]
            cells.append(f"{p50 * 1000:.2f} / {p95 * 1000:.2f}")
        known = kind.replace("on the list", "known").replace("on no list", "unknown")
        lines.append(f"| dues lookup, {known}: p50 / p95 ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    args = parser.parse_args()
    rng = random.Random(2026)
    plates = sorted({plate(rng) for _ in range(args.entries)} - set(FLEET))
    while len(plates) < args.entries:
        plates = sorted({*plates, plate(rng)} - set(FLEET))
    plates += FLEET
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lists-") as scratch:
        csv = Path(scratch) / "stolen.csv"
        csv.write_text("plate,note\n" + "".join(f"{p},stolen\n" for p in plates))
        if "sqlite" in args.backends:
            path = Path(scratch) / "dues.sqlite"
            database = SqliteDatabase(path)
            size = lambda: sqlite_size(path)  # noqa: E731
            results["SQLite"] = measure(database, size, csv, plates, args.lookups, rng)
            print("SQLite", results["SQLite"], flush=True)
        if "postgresql" in args.backends:
            postgres = tests_helper("postgres")
            if reason := postgres.postgres_missing():
                print(f"PostgreSQL skipped: {reason}", file=sys.stderr)
            else:
                with postgres.PostgresServer() as server:
                    url = server.new_database()
                    database = PostgresDatabase(url)
                    size = lambda: postgres_size(url)  # noqa: E731
                    results["PostgreSQL"] = measure(database, size, csv, plates, args.lookups, rng)
                    database.close()
                    print("PostgreSQL", results["PostgreSQL"], flush=True)
    text = table(results, args.entries, args.lookups)
    print(text)
    write_section(args.out, "lists", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
