"""The dues store, on SQLite and on PostgreSQL: the seed's lookup shape, changes, CSV
import."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.stores.database import Database
from streamer.stores.dues import DuesError, SqlDues


@pytest.fixture
def dues(store_database: Database) -> SqlDues:
    return SqlDues(store_database)


def test_unknown_plate_is_not_found(dues: SqlDues) -> None:
    assert dues.lookup("KA01AB1234").to_json() == {
        "found": False,
        "dues_pending": False,
        "amount": 0.0,
        "message": "No record found",
    }


@pytest.mark.parametrize(
    ("amount", "message", "expected"),
    [
        (
            500.0,
            "Parking fine",
            {"found": True, "dues_pending": True, "amount": 500.0, "message": "Parking fine"},
        ),
        (
            0.0,
            "",
            {"found": True, "dues_pending": False, "amount": 0.0, "message": "No dues pending"},
        ),
    ],
)
def test_lookup_shape(
    dues: SqlDues, amount: float, message: str, expected: dict[str, object]
) -> None:
    dues.set("ka 01 ab 1234", amount, message)
    assert dues.lookup("KA01AB1234").to_json() == expected


def test_set_clear_and_records(dues: SqlDues) -> None:
    dues.set("TN09BC5678", 100)
    dues.set("TN09BC5678", 250, "Toll")
    assert [(r.plate, r.amount, r.message) for r in dues.records()] == [
        ("TN09BC5678", 250.0, "Toll")
    ]
    assert dues.clear("tn-09-bc-5678")
    assert not dues.clear("TN09BC5678")
    assert not dues.lookup("TN09BC5678").found


@pytest.mark.parametrize(("plate", "amount"), [("--", 10.0), ("KA01AB1234", -1.0)])
def test_rejects_bad_changes(dues: SqlDues, plate: str, amount: float) -> None:
    with pytest.raises(DuesError):
        dues.set(plate, amount)


def test_import_csv(dues: SqlDues, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("plate,amount,message\nKA01AB1234,500,Fine\nMH12DE1433,0,\n")
    assert dues.import_csv(good) == 2
    assert dues.lookup("KA01AB1234").dues_pending
    assert dues.lookup("MH12DE1433").found


def test_import_csv_bad_row_changes_nothing(dues: SqlDues, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("plate,amount\nKA01AB1234,500\nMH12DE1433,lots\n")
    with pytest.raises(DuesError, match=r"bad\.csv:3: amount 'lots' is not a number"):
        dues.import_csv(bad)
    assert dues.records() == []


def test_unopenable_database_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(DuesError, match=r"dues\.database: cannot open"):
        SqlDues(tmp_path / "dir.sqlite")


@pytest.mark.parametrize(
    ("read", "possible"),
    [
        ("KA01A81234", "KA01AB1234"),  # a confusable character (B read as 8)
        ("KA01AB1235", "KA01AB1234"),  # one substitution
        ("KA01AB234", "KA01AB1234"),  # one character dropped
        ("KA01XY9999", None),  # not close
    ],
)
def test_near_match_is_possible_never_pending(
    dues: SqlDues, read: str, possible: str | None
) -> None:
    dues.set("KA01AB1234", 500.0, "Fine")
    result = dues.lookup(read)
    assert result.found is False
    assert result.dues_pending is False
    assert result.possible_match == possible
    assert ("possible_match" in result.to_json()) is (possible is not None)


def test_two_near_matches_name_neither(dues: SqlDues) -> None:
    dues.set("KA01AB1234", 500.0)
    dues.set("KA01AB1236", 300.0)
    assert dues.lookup("KA01AB1235").possible_match is None


@pytest.mark.parametrize("amount", [float("inf"), float("-inf"), float("nan"), "1e400", "inf"])
def test_amounts_are_finite(dues: SqlDues, amount: object) -> None:
    with pytest.raises(DuesError, match=r"finite|not a number|negative"):
        dues.set("KA01AB1234", amount)  # type: ignore[arg-type]
    assert dues.records() == []


FOREIGN = r":2: plate .*only A-Z and 0-9"


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "dues.csv"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"plate,amount\n" + b"KA01AB1234,10\n" * 10_000 + b"MH12CD5678,nan\n", r":10002: amount"),
        (b"plate,amount\nKA01AB1234,1e400\n", r":2: amount must be a finite number"),
        (b"plate,amount\nKA01AB1234,10,x\n", r":2: 3 columns, the header has 2"),
        (b"plate,amount,message\nKA01AB1234,10,caf\xe9\n", r":2: not UTF-8 \(byte 0xe9\)"),
        (b"plate,amount,message\nKA01AB1234,10," + b"x" * 200_000 + b"\n", r":2: field larger"),
        # Cyrillic letters that look like Latin ones: KA01AB1234
        (
            "plate,amount\n\u041a\u041001\u0410\u04121234,10\n".encode(),
            r":2: plate .*only A-Z and 0-9",
        ),
        ("plate,amount\nKA01\u0967\u0968,10\n".encode(), r":2: plate .*only A-Z and 0-9"),
        # Letters that upper-case to ASCII ones, and an accent: never rewritten.
        ("plate,amount\n\ufb01\u00df1234,10\n".encode(), r":2: plate .*only A-Z and 0-9"),
        ("plate,amount\nKA01A\u0301B1234,10\n".encode(), r":2: plate .*only A-Z and 0-9"),
        # An open quote swallows the next lines into one value.
        (
            b'plate,amount,message\nKA01AB1234,100,"Toll\nMH12XY7395,200,Fine\n',
            r":2: a value runs over several lines",
        ),
        (b"plate,amount\n" + b"K" * 17 + b",10\n", r":2: plate .*longer than 16"),
        # A NUL or a tab inside a plate is damage: dropping it would key another plate.
        (b"plate,amount\nKA01AB1234,1\nKA01\x00AB1234,10\n", r":3: plate 'KA01\\x00AB.*control"),
        (b"plate,amount\nKA01\tAB1234,10\n", r":2: plate 'KA01\\tAB1234': control characters"),
    ],
    ids=[
        "nan-after-10000",
        "overflow",
        "extra-column",
        "latin-1",
        "huge-field",
        "cyrillic",
        "devanagari-digits",
        "ligature-and-sharp-s",
        "combining-accent",
        "open-quote",
        "too-long",
        "nul-in-plate",
        "tab-in-plate",
    ],
)
def test_a_bad_csv_is_one_line_numbered_error_and_imports_nothing(
    dues: SqlDues, tmp_path: Path, content: bytes, error: str
) -> None:
    with pytest.raises(DuesError, match=error):
        dues.import_csv(write(tmp_path, content))
    assert dues.records() == []


def test_a_csv_saved_by_a_spreadsheet_imports(dues: SqlDues, tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffPlate,Amount,Message\r\nka-01-ab-1234,12.5,Fine\r\n".encode())
    assert dues.import_csv(path) == 1
    assert dues.lookup("KA01AB1234").amount == 12.5


@pytest.mark.parametrize("message", ["\ud800", "two\nlines", "x" * 1001])
def test_a_message_is_one_line_of_text(dues: SqlDues, message: str) -> None:
    with pytest.raises(DuesError, match="message:"):
        dues.set("KA01AB1234", 10, message)
    assert dues.records() == []


def test_separators_from_a_spreadsheet_are_dropped(dues: SqlDues) -> None:
    dues.set("KA\u00a001\u2013AB\u20131234", 10)  # a no-break space and en dashes
    assert dues.lookup("KA01AB1234").found


def test_a_plate_on_several_lines_counts_once_and_the_last_line_wins(
    dues: SqlDues, tmp_path: Path
) -> None:
    path = write(tmp_path, b"plate,amount\nKA01AB1234,10\nMH12XY7395,5\nka-01 ab 1234,20\n")
    assert dues.import_csv(path) == 2
    assert dues.lookup("KA01AB1234").amount == 20.0
