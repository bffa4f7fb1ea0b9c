"""The one-slip keys: every known plate one OCR slip from a read shares a key with it, so
the stores find through an index what a scan of every entry finds, even among a million."""

from __future__ import annotations

import random
import statistics
import string
import time
from pathlib import Path

import pytest

from streamer.cluster.database import PostgresDatabase
from streamer.events import NOT_FOUND, DuesResult, ListMatch
from streamer.reading.plates import (
    DIGIT_TO_LETTER,
    LETTER_TO_DIGIT,
    confusable_form,
    normalise,
    one_slip,
)
from streamer.stores.database import Database
from streamer.stores.dues import SqlDues
from streamer.stores.lists import SqlLists
from streamer.stores.records import MAX_PLATE_LENGTH
from streamer.stores.slips import plate_keys, read_keys, slips

from support.postgres import PostgresServer

CHARACTERS = string.ascii_uppercase + string.digits
LOOK_ALIKES = "".join(LETTER_TO_DIGIT) + "".join(DIGIT_TO_LETTER)


@pytest.mark.parametrize(
    ("known", "read", "slip"),
    [
        ("KA01AB1234", "KA01AB1234", True),  # the same plate
        ("KA01AB1234", "XA01AB1234", True),  # changed: first, middle, last character
        ("KA01AB1234", "KA01XB1234", True),
        ("KA01AB1234", "KA01AB123X", True),
        ("KA01AB1234", "A01AB1234", True),  # missed: first, at each cut, last
        ("KA01AB1234", "KA1AB1234", True),
        ("KA01AB1234", "KA01B1234", True),
        ("KA01AB1234", "KA01AB234", True),
        ("KA01AB1234", "KA01AB123", True),
        ("KA01AB1234", "XKA01AB1234", True),  # added: before, at each cut, after
        ("KA01AB1234", "KA0X1AB1234", True),
        ("KA01AB1234", "KA01ABX1234", True),
        ("KA01AB1234", "KA01AB1234X", True),
        ("KA01AB1234", "KAO1A81234", True),  # only look-alikes apart, twice
        ("OOOOOOOO", "00000000", True),  # nothing but look-alikes
        ("B8B8B8", "8B8B8B", True),
        ("KA01AB1234", "KAO1A8123", False),  # look-alikes and a miss: two slips
        ("A", "B", True),  # one character
        ("A", "AB", True),
        ("AB", "B", True),
        ("AB", "BA", False),  # swapped: two edits
        ("KA01AB1234", "KA01AB12", False),  # two missed
        ("KA01AB1234", "KA01XB123X", False),  # two changed
        ("KA01AB1234", "AK01AB1234", False),
        ("Z" * MAX_PLATE_LENGTH, "Z" * (MAX_PLATE_LENGTH + 1), True),  # longer than any plate
        ("Z" * MAX_PLATE_LENGTH, "Z" * (MAX_PLATE_LENGTH - 1), True),
    ],
)
def test_a_plate_one_slip_from_a_read_shares_a_key_with_it(
    known: str, read: str, slip: bool
) -> None:
    assert one_slip(known, read) is slip
    shared = set(plate_keys(known)) & set(read_keys(read))
    if slip:
        assert shared
    assert slips(read, [known]) == ([known] if slip and known != read else [])


def random_slip(rng: random.Random, plate: str) -> str:
    """``plate`` with one OCR slip (or two, one time in six: then no key need be shared)."""
    for _ in range(1 + (rng.randrange(6) == 0)):
        at = rng.randrange(len(plate) + 1)
        kind = rng.randrange(4)
        if kind == 0 and at < len(plate):
            plate = plate[:at] + rng.choice(CHARACTERS) + plate[at + 1 :]
        elif kind == 1 and len(plate) > 1:
            plate = plate[:at] + plate[at + 1 :]
        elif kind == 2:
            plate = plate[:at] + rng.choice(CHARACTERS) + plate[at:]
        else:
            swaps = {**LETTER_TO_DIGIT, **DIGIT_TO_LETTER}
            plate = "".join(swaps.get(c, c) if rng.random() < 0.5 else c for c in plate)
    return plate


def random_plate(rng: random.Random) -> str:
    """A plate of 1 to 16 characters, one time in three made of look-alikes only."""
    alphabet = LOOK_ALIKES if rng.randrange(3) == 0 else CHARACTERS
    return "".join(rng.choices(alphabet, k=rng.randint(1, MAX_PLATE_LENGTH)))


def test_every_plate_within_one_slip_of_a_random_read_shares_a_key() -> None:
    rng = random.Random(30)
    checked = 0
    for _ in range(20_000):
        known = random_plate(rng)
        read = random_slip(rng, known)
        if one_slip(known, read):
            checked += 1
            assert set(plate_keys(known)) & set(read_keys(read)), (known, read)
    assert checked > 15_000


def corpus(rng: random.Random) -> list[str]:
    """A few thousand plates, adversarial ones among them: a numbered series, clusters of
    look-alikes, plates of one or two characters and of the longest length."""
    plates = {
        f"{rng.choice(['KA', 'MH', 'DL'])}{rng.randint(1, 99):02d}"
        f"{''.join(rng.choices('ABCDEFGHJKLMNPRSTUVWXYZ', k=2))}{rng.randint(0, 9999):04d}"
        for _ in range(1500)
    }
    plates |= {f"MH12FL{number:04d}" for number in range(0, 1000, 3)}
    plates |= {"KA01AB1234", "KAO1AB1234", "KA0IAB1234", "KA01A81234", "KA01AB123", "KA01AB12345"}
    plates |= {"A", "B", "O", "0", "8", "AB", "A8", "OO", "00", "0O", "ABC"}
    plates |= {random_plate(rng) for _ in range(1000)}
    plates |= {"Z" * MAX_PLATE_LENGTH, "Z" * (MAX_PLATE_LENGTH - 1) + "2"}
    return sorted(plates)


class Scan:
    """What a scan of every entry with ``one_slip`` finds, answered fast enough for
    thousands of reads: by ``one_slip``'s definition, the entries equal to the read in
    confusable form, and those one insertion, deletion or substitution from it (found by
    trying each such change of the read, not by scanning)."""

    def __init__(self, plates: set[str]) -> None:
        self.plates = plates
        self.forms: dict[str, set[str]] = {}
        for plate in plates:
            self.forms.setdefault(confusable_form(plate), set()).add(plate)

    def near(self, read: str) -> set[str]:
        """Every entry one slip from ``read`` (``read`` itself too, when it is one)."""
        edits = {read[:at] + read[at + 1 :] for at in range(len(read))}
        for at in range(len(read) + 1):
            for char in CHARACTERS:
                edits.add(read[:at] + char + read[at:])
                edits.add(read[:at] + char + read[at + 1 :])
        edits.discard(read)
        return (edits & self.plates) | self.forms.get(confusable_form(read), set())


def test_the_scan_is_one_slip_over_every_entry() -> None:
    rng = random.Random(31)
    plates = set(corpus(rng)[:800])
    scan = Scan(plates)
    for read in [random_slip(rng, rng.choice(sorted(plates))) for _ in range(40)] + ["A", "0"]:
        assert scan.near(read) == {known for known in plates if one_slip(known, read)}


def scanned_lists(scans: dict[str, Scan], read: str) -> ListMatch:
    """What a scan of every list's entries that have not expired finds for ``read``."""
    plate = normalise(read)
    on = tuple(sorted(name for name, scan in scans.items() if plate in scan.plates))
    possible = []
    for name in sorted(set(scans) - set(on)):
        near = scans[name].near(plate)
        if len(near) == 1:
            possible.append((name, near.pop()))
    return ListMatch(on, tuple(possible))


def scanned_dues(amounts: dict[str, float], scan: Scan, read: str) -> DuesResult:
    """What a scan of every plate with dues finds for ``read``."""
    plate = normalise(read)
    if plate in amounts:
        amount = amounts[plate]
        return DuesResult(True, amount > 0, amount, "Dues pending" if amount else "No dues pending")
    near = sorted(scan.near(plate))
    if len(near) != 1:
        return NOT_FOUND
    message = f"No record for {plate}; possible match {near[0]}"
    return DuesResult(False, False, 0.0, message, near[0])


def test_lookups_through_the_keys_find_what_a_scan_finds(
    store_database: Database, tmp_path: Path
) -> None:
    rng = random.Random(2030)
    plates = corpus(rng)
    staff = rng.sample(plates, len(plates) // 3)
    expired = set(rng.sample(staff, 100))
    lists = SqlLists(store_database, {"stolen": None, "staff": None})
    csv = tmp_path / "lists.csv"
    csv.write_text("plate\n" + "".join(f"{plate}\n" for plate in plates))
    lists.import_csv("stolen", csv)
    csv.write_text(
        "plate,expires\n"
        + "".join(f"{plate},{'2020-01-01' if plate in expired else ''}\n" for plate in staff)
    )
    lists.import_csv("staff", csv)
    lists.remove("stolen", plates[0])  # its keys go with it
    dues = SqlDues(store_database)
    csv.write_text("plate,amount\n" + "".join(f"{plate},{len(plate) % 3}\n" for plate in plates))
    dues.import_csv(csv)
    dues.clear(plates[1])
    scans = {"stolen": Scan(set(plates[1:])), "staff": Scan(set(staff) - expired)}
    amounts = {plate: float(len(plate) % 3) for plate in plates if plate != plates[1]}
    dues_scan = Scan(set(amounts))
    reads = [random_slip(rng, rng.choice(plates)) for _ in range(1000)]
    reads += rng.sample(plates, 150) + [random_plate(rng) for _ in range(150)] + plates[:2]
    wrong, possible = [], 0
    for read in reads:
        found, expected = lists.lookup(read), scanned_lists(scans, read)
        if found != expected:
            wrong.append(f"lists {read}: {found} != {expected}")
        possible += bool(found.possible)
        found_dues, expected_dues = dues.lookup(read), scanned_dues(amounts, dues_scan, read)
        if found_dues != expected_dues:
            wrong.append(f"dues {read}: {found_dues} != {expected_dues}")
    assert not wrong, "\n".join(wrong[:20])
    assert possible > 300  # the reads one slip from an entry found it


def test_a_lookup_among_a_million_entries_is_fast(tmp_path: Path) -> None:
    rng = random.Random(1_000_000)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    plates = {f"MH12FL{number:04d}" for number in range(10_000)}  # one numbered series
    while len(plates) < 1_000_000:
        plates.add(
            f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(1, 99):02d}"
            f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(0, 9999):04d}"
        )
    csv = tmp_path / "stolen.csv"
    csv.write_text("plate\n" + "\n".join(plates) + "\n")
    lists = SqlLists(tmp_path / "dues.sqlite", {"stolen": None})
    assert lists.import_csv("stolen", csv) == 1_000_000
    listed = sorted(plates)
    reads = {
        "on the list": rng.sample(listed, 7),
        "one slip away": [random_slip(rng, plate) for plate in rng.sample(listed, 7)],
        "in the series, one slip away": ["MH12FL123", "MH12FI1234", "MH12FL12345"],
        "on no list": ["TN09CK2046X", "XX00XX0000", "Q"],
    }
    for kind, texts in reads.items():
        took = []
        for text in texts:
            started = time.perf_counter()
            lists.lookup(text)
            took.append(time.perf_counter() - started)
        assert statistics.median(took) < 0.05, f"{kind}: {statistics.median(took):.3f} s"
    assert lists.lookup("MH12FL1234").lists == ("stolen",)


def test_a_bulk_import_leaves_postgresql_planning_with_its_size(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL only: SQLite plans these lookups by their keys without statistics."""
    store_database = PostgresDatabase(postgres_server.new_database())
    csv = tmp_path / "list.csv"
    csv.write_text("plate\n" + "".join(f"MH12FL{number:04d}\n" for number in range(2000)))
    SqlLists(store_database, {"fleet": None}).import_csv("fleet", csv)
    with store_database.connect() as connection:
        analysed = connection.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
        ).fetchall()
    assert {name for (name,) in analysed} >= {"list_entries", "list_keys"}
    store_database.close()
