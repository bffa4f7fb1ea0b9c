"""Hostile dues and list CSVs: each imports whole or not at all, naming the bad line, and
counts each plate once."""

from __future__ import annotations

import math
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamer.stores.dues import DuesError, SqlDues
from streamer.stores.lists import ListError, SqlLists

from support.fuzz import FOREIGN_RULE, SEED, Tally, bounded, mutate, shorten
from support.probes import FOREIGN_PLATES

# --- dues CSVs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvCase:
    """A dues CSV and what its import must do.

    Attributes:
        description: what is wrong with it.
        data: its bytes.
        refuse: when set, the import must fail, for this reason.
        bad_line: the line its error must name, when one line is bad.
        rows: the records a successful import must count, when known.
    """

    description: str
    data: bytes
    refuse: str = ""
    bad_line: int | None = None
    rows: int | None = None


AMOUNT_RULE = "the README: an amount that is not a finite, non-negative number is refused"
BAD_AMOUNTS = ["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1", "-0.01"]
BAD_AMOUNTS += ["abc", "0x10", "1e", "--1", "", '"1,5"', "9" * 400, "-" + "9" * 400]
GOOD_AMOUNTS = ["0", "0.0", "1e308", " 12 ", "+5", "1500.50", "1e-400"]
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def plate_text(rng: random.Random) -> str:
    """A valid Indian plate."""
    state, series = (
        "".join(rng.choices(LETTERS, k=2)),
        "".join(rng.choices(LETTERS, k=rng.randint(1, 2))),
    )
    return f"{state}{rng.randint(1, 99):02d}{series}{rng.randint(0, 9999):04d}"


def csv_case(rng: random.Random, number: int) -> CsvCase:
    """One generated dues CSV with one defect, or (one in seven) random damage."""
    count = rng.randint(1, 25)
    rows = [
        [
            plate_text(rng),
            f"{rng.randint(0, 5000)}.{rng.randint(0, 99):02d}",
            rng.choice(["", "Toll", "Fine"]),
        ]
        for _ in range(count)
    ]
    header = rng.choice(
        [
            ["plate", "amount", "message"],
            ["Plate ", " AMOUNT", "message"],
            ["amount", "plate", "message"],
        ]
    )
    order = [["plate", "amount", "message"].index(name.strip().lower()) for name in header]

    def encode(table: list[list[str]], ending: str = "\n") -> bytes:
        lines = [",".join(header)]
        lines += [",".join([row[i] for i in order if i < len(row)] + row[3:]) for row in table]
        return (ending.join(lines) + ending).encode("utf-8", "surrogateescape")

    bad = rng.randrange(count)
    line = bad + 2
    kind = rng.randrange(14)
    if kind == 0:
        rows[bad].append("extra")
        return CsvCase(
            f"extra column on line {line}",
            encode(rows),
            "the README: an extra column is refused",
            line,
        )
    if kind == 1:
        rows[bad][1] = rng.choice(BAD_AMOUNTS)
        return CsvCase(
            f"amount {shorten(rows[bad][1], 30)} on line {line}", encode(rows), AMOUNT_RULE, line
        )
    if kind == 2:
        rows[bad][1] = rng.choice(GOOD_AMOUNTS)
        return CsvCase(f"amount {rows[bad][1]!r} on line {line}", encode(rows), rows=count)
    if kind == 3:
        rows[bad][0] = rng.choice([*FOREIGN_PLATES, "\U0001f697", "---", "", "  "])
        rule = (
            FOREIGN_RULE if rows[bad][0] in FOREIGN_PLATES else "a plate with no letters or digits"
        )
        return CsvCase(f"plate {rows[bad][0]!r} on line {line}", encode(rows), rule, line)
    if kind == 4:
        rows[bad][2] = "Caf\udce9 fine"  # encoded as the Latin-1 byte 0xE9
        return CsvCase(
            f"Latin-1 byte in the message on line {line}",
            encode(rows),
            "the README: a byte that is not UTF-8 is refused",
            line,
        )
    if kind == 5:
        column = rng.randrange(3)
        rows[bad][column] = rows[bad][column][:2] + "\x00" + rows[bad][column][2:]
        return CsvCase(
            f"NUL in {['plate', 'amount', 'message'][column]} on line {line}",
            encode(rows),
            CONTROL_RULE,
            line,
        )
    if kind == 6:
        rows[bad][2] = "m" * rng.choice([131_073, 500_000])
        return CsvCase(
            f"message of {len(rows[bad][2])} characters on line {line}",
            encode(rows),
            "",
            line,
            count,
        )
    if kind == 7:
        column = rng.choice([0, 2])
        rows[bad][column] = '"' + rows[bad][column]
        name = ["plate", "amount", "message"][column]
        return CsvCase(
            f"unbalanced quote opening the {name} on line {line}", encode(rows), rows=count
        )
    if kind == 8:
        del rows[bad][1:]
        return CsvCase(
            f"a row of one column on line {line}", encode(rows), "a row without an amount", line
        )
    if kind == 9:
        return CsvCase("byte-order mark", b"\xef\xbb\xbf" + encode(rows), rows=count)
    if kind == 10:
        ending = rng.choice(["\r\n", "\r"])
        return CsvCase(f"{ending!r} line endings", encode(rows, ending), rows=count)
    if kind == 11:
        plate = rows[bad][0]
        rows[bad][0] = f"{plate[:2].lower()}-{plate[2:4]} {plate[4:]}"
        rows.append(list(rows[bad]))
        return CsvCase(  # each plate counts once (the last line wins)
            f"lower-case, punctuated, repeated plate on line {line}", encode(rows), rows=count
        )
    if kind == 12:
        no_header = "no header row"
        name, data, rule, at, expected = rng.choice(
            [
                ("empty file", b"", no_header, 1, None),
                ("header only", encode([]), "", None, 0),
                ("no header", encode(rows).split(b"\n", 1)[1], no_header, 1, None),
                ("header without amount", b"plate,message\nKA01AB1234,x\n", no_header, 1, None),
                ("semicolons", encode(rows).replace(b",", b";"), no_header, 1, None),
                ("UTF-16", encode(rows).decode().encode("utf-16"), "not UTF-8", 1, None),
                (
                    "10,000 rows",
                    encode([[plate_text(rng), "5", ""] for _ in range(10_000)]),
                    "",
                    None,
                    10_000,
                ),
            ]
        )
        return CsvCase(name, data, rule, at, expected)
    data, steps = mutate(rng, encode(rows), rng.randint(1, 4))
    return CsvCase(f"mutated ({steps})", data)


def check_refusal(
    case: CsvCase, csv_path: Path, message: str, changed: bool, tally: Tally, name: str
) -> None:
    """A refused CSV import changed nothing, and its error names the line that broke it."""
    if changed:
        tally.fail(name, "the failed import changed what was stored")
    match = re.match(rf"{re.escape(str(csv_path))}:(\d+): ", message)
    if match is None:
        tally.fail(name, f"its error names no line: {shorten(message)}")
    elif case.bad_line is not None and int(match.group(1)) != case.bad_line:
        tally.fail(
            name,
            f"its error names line {match.group(1)}, not {case.bad_line}: {shorten(message)}",
        )


def check_import(case: CsvCase, folder: Path, seed_db: Path, tally: Tally, name: str) -> None:
    """Import one CSV into a copy of ``seed_db`` and check what happened against ``case``."""
    database, csv_path = folder / "dues.sqlite", folder / "dues.csv"
    shutil.copyfile(seed_db, database)
    csv_path.write_bytes(case.data)
    dues = SqlDues(database)
    before = dues.records()
    if case.bad_line is not None:
        lines = case.data.splitlines()
        shown = lines[case.bad_line - 1] if case.bad_line <= len(lines) else b""
        name += f" [line {case.bad_line}: {shorten(shown, 70)}]"
    try:
        with bounded(10.0, 512.0):
            imported = dues.import_csv(csv_path)
    except DuesError as error:
        tally.count("DuesError")
        check_refusal(case, csv_path, str(error), dues.records() != before, tally, name)
        return
    except Exception as error:
        tally.count(type(error).__name__)
        tally.fail(name, f"import_csv raised {type(error).__name__}: {shorten(str(error))}")
        return
    tally.count("imported")
    if case.refuse:
        tally.fail(name, f"imported {imported} rows; {case.refuse}")
    elif case.rows is not None and imported != case.rows:
        tally.fail(name, f"imported {imported} rows, not the {case.rows} it holds")
    for record in dues.records():
        if not re.fullmatch("[A-Z0-9]+", record.plate) or not (
            math.isfinite(record.amount) and record.amount >= 0
        ):
            tally.fail(
                name, f"stored plate {shorten(record.plate, 40)} with amount {record.amount}"
            )
            break


def test_hostile_dues_csvs_import_whole_or_not_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-csv")
    tally = Tally("dues CSV", minimum=300)
    seed_db = tmp_path / "seed.sqlite"
    seeded = SqlDues(seed_db)
    for number in range(5):
        seeded.set(plate_text(rng), 100.0 * number, "seeded")
    cases = [csv_case(rng, number) for number in range(320)]
    for number, case in enumerate(cases):
        if tally.over_budget(number, len(cases)):
            break
        check_import(case, tmp_path, seed_db, tally, f"CSV #{number} ({case.description})")
    tally.report(capsys)
    tally.verdict()


# --- list CSVs -----------------------------------------------------------------------------

#: Expiries a list CSV may hold, and expiries it may not (refused, naming the line).
GOOD_EXPIRIES = ["", "2030-06-15", "9999-12-31", "2020-01-01", "2030-06-15T08:00:00Z"]
GOOD_EXPIRIES += ["2030-06-15T08:00+05:30", "0001-01-02", " 2030-06-15 "]
BAD_EXPIRIES = ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00", "soon", "2030-02-30"]
BAD_EXPIRIES += ["10000-01-01", "0000-01-01", "2030-01-01T25:00", "2030-01-01T00:00+25:00"]
BAD_EXPIRIES += ["x" * 5000, "2030\x00-01-01", "NaN", "1e400"]
EXPIRY_RULE = "an expiry that is not a date, or outside the years 1 to 9999 in UTC, is refused"
CONTROL_RULE = "a control character inside a plate or a note is refused"


def list_csv_case(rng: random.Random) -> CsvCase:
    """One generated list CSV with one defect, or (one in seven) random damage; ``rows``
    counts plates, each once."""
    count = rng.randint(1, 25)
    rows = [
        [plate_text(rng), rng.choice(["", "flat 4", "stolen"]), rng.choice(GOOD_EXPIRIES)]
        for _ in range(count)
    ]
    unique = len({row[0] for row in rows})
    header = rng.choice([["plate", "note", "expires"], [" Plate", "NOTE", "expires "]])

    def encode(table: list[list[str]], ending: str = "\n") -> bytes:
        lines = [",".join(header)] + [",".join(row) for row in table]
        return (ending.join(lines) + ending).encode("utf-8", "surrogateescape")

    bad = rng.randrange(count)
    line = bad + 2
    kind = rng.randrange(12)
    if kind == 0:
        rows[bad][2] = rng.choice(BAD_EXPIRIES)
        return CsvCase(
            f"expiry {shorten(rows[bad][2], 40)} on line {line}", encode(rows), EXPIRY_RULE, line
        )
    if kind == 1:
        column = rng.randrange(2)
        char = rng.choice(["\x00", "\t", "\x7f", "\x1b"])
        rows[bad][column] = rows[bad][column][:2] + char + rows[bad][column][2:]
        name = ["plate", "note"][column]
        return CsvCase(f"{char!r} in the {name} on line {line}", encode(rows), CONTROL_RULE, line)
    if kind == 2:
        rows[bad][0] = rng.choice([*FOREIGN_PLATES, "---", "K" * 17])
        return CsvCase(f"plate {rows[bad][0]!r} on line {line}", encode(rows), FOREIGN_RULE, line)
    if kind == 3:
        rows[bad][1] = "n" * rng.choice([1001, 131_073])
        rule = "a note is at most 1000 characters"
        return CsvCase(
            f"note of {len(rows[bad][1])} characters on line {line}", encode(rows), rule, line
        )
    if kind == 4:
        rows[bad].append("extra")
        return CsvCase(
            f"extra column on line {line}", encode(rows), "an extra column is refused", line
        )
    if kind == 5:
        rows[bad][1] = "Caf\udce9"
        return CsvCase(f"Latin-1 note on line {line}", encode(rows), "not UTF-8 is refused", line)
    if kind == 6:
        plate = rows[bad][0]
        rows.append([f"{plate[:2].lower()}-{plate[2:4]} {plate[4:]}", "again", ""])
        return CsvCase(f"plate of line {line} again, spelled otherwise", encode(rows), rows=unique)
    if kind == 7:
        return CsvCase("byte-order mark", b"\xef\xbb\xbf" + encode(rows), rows=unique)
    if kind == 8:
        ending = rng.choice(["\r\n", "\r"])
        return CsvCase(f"{ending!r} line endings", encode(rows, ending), rows=unique)
    if kind == 9:
        header = ["plate"]
        return CsvCase("plates only", encode([[row[0]] for row in rows]), rows=unique)
    if kind == 10:
        name, data, rule, at = rng.choice(
            [
                ("empty file", b"", "no header row", 1),
                ("no plate column", b"note,expires\nx,\n", "no header row", 1),
                ("UTF-16", encode(rows).decode().encode("utf-16"), "not UTF-8", 1),
            ]
        )
        return CsvCase(name, data, rule, at)
    data, steps = mutate(rng, encode(rows), rng.randint(1, 4))
    return CsvCase(f"mutated ({steps})", data)


def check_list_import(case: CsvCase, folder: Path, seed_db: Path, tally: Tally, name: str) -> None:
    """Import one list CSV into a copy of ``seed_db`` (with ``streamer lists import``, or as
    a list's file at a start) and check what happened against ``case``."""
    database, csv_path = folder / "dues.sqlite", folder / "list.csv"
    shutil.copyfile(seed_db, database)
    csv_path.write_bytes(case.data)
    as_file = tally.inputs % 2 == 1
    lists = SqlLists(database, {"banned": csv_path if as_file else None})
    before = lists.entries("banned")
    try:
        with bounded(10.0, 512.0):
            imported = (
                lists.load_files()["banned"] if as_file else lists.import_csv("banned", csv_path)
            )
    except ListError as error:
        tally.count("ListError")
        changed = lists.entries("banned") != before
        check_refusal(case, csv_path, str(error), changed, tally, name)
        return
    except Exception as error:
        tally.count(type(error).__name__)
        tally.fail(name, f"the import raised {type(error).__name__}: {shorten(str(error))}")
        return
    tally.count("loaded as a file" if as_file else "imported")
    if case.refuse:
        tally.fail(name, f"imported {imported} plates; {case.refuse}")
    elif case.rows is not None and imported != case.rows:
        tally.fail(name, f"counted {imported} plates, not the {case.rows} it holds")
    try:
        shown = [entry.to_json() for entry in lists.entries("banned")]
    except Exception as error:
        tally.fail(name, f"the list cannot be shown: {type(error).__name__}: {error}")
        return
    if any(not re.fullmatch("[A-Z0-9]{1,16}", entry["plate_number"]) for entry in shown):
        tally.fail(name, f"stored a plate outside A-Z and 0-9: {shorten(shown)}")


def test_hostile_list_csvs_import_whole_or_not_at_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}-list-csv")
    tally = Tally("list CSV", minimum=300)
    seed_db = tmp_path / "seed.sqlite"
    SqlLists(seed_db, {"banned": None}).add("banned", plate_text(rng), "seeded")
    cases = [list_csv_case(rng) for _ in range(320)]
    for number, case in enumerate(cases):
        if tally.over_budget(number, len(cases)):
            break
        check_list_import(
            case, tmp_path, seed_db, tally, f"list CSV #{number} ({case.description})"
        )
    tally.report(capsys)
    tally.verdict()
