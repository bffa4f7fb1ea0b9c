"""Dues: outstanding fines or fees per plate, looked up for every event.

The embedded backend is an SQLite file. Lookups answer in the seed service's shape
``{"found", "dues_pending", "amount", "message"}``; a plate with no row gives
``found: false``. Every call opens its own short connection, so lookups are safe from
any thread and see changes made by ``streamer dues`` while the daemon runs.
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
import unicodedata
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from streamer.reading.plates import confusable_form, edit_distance, normalise


@dataclass(frozen=True)
class DuesResult:
    """The answer for one plate, in the seed's ``/check_dues`` shape."""

    found: bool
    dues_pending: bool
    amount: float
    message: str
    possible_match: str | None = None

    def to_json(self) -> dict[str, object]:
        """The seed's JSON object: ``found``, ``dues_pending``, ``amount``, ``message``;
        plus ``possible_match`` when an unknown plate is one slip from a known one."""
        data = asdict(self)
        if self.possible_match is None:
            del data["possible_match"]
        return data


NOT_FOUND = DuesResult(found=False, dues_pending=False, amount=0.0, message="No record found")


@dataclass(frozen=True)
class DuesRecord:
    """One row of the dues database."""

    plate: str
    amount: float
    message: str
    updated_at: str


class Dues(Protocol):
    """Anything that answers whether a plate has dues outstanding."""

    def lookup(self, plate: str) -> DuesResult:
        """Dues for normalised ``plate``; ``found: false`` when unknown."""
        ...


class DuesStore(Dues, Protocol):
    """The dues database as the API and the CLI manage it."""

    def set(self, plate: str, amount: float, message: str = "") -> None:
        """Create or replace the dues of ``plate``."""
        ...

    def clear(self, plate: str) -> bool:
        """Remove ``plate``'s row; ``False`` when there was none."""
        ...

    def records(self) -> list[DuesRecord]:
        """Every row, ordered by plate."""
        ...

    def import_csv(self, path: Path) -> int:
        """Upsert rows from a CSV file, all or nothing; returns the count."""
        ...


class DuesError(RuntimeError):
    """The dues database cannot be opened or a change to it is invalid."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dues (
    plate TEXT PRIMARY KEY,
    amount REAL NOT NULL CHECK (amount >= 0),
    message TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
)
"""


class SqliteDues:
    """Dues kept in an SQLite file, created on first use.

    Example:
        >>> dues = SqliteDues(Path("/tmp/dues.sqlite"))
        >>> dues.set("KA01AB1234", 500.0, "Parking fine")
        >>> dues.lookup("ka-01-ab-1234").dues_pending
        True
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as connection:
                connection.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise DuesError(f"dues.database: cannot open {path}: {error}") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as connection, connection:
            yield connection

    def lookup(self, plate: str) -> DuesResult:
        """Dues for ``plate`` (normalised before the lookup)."""
        with self._connect() as connection:
            row = connection.execute(
                "SELECT amount, message FROM dues WHERE plate = ?", (normalise(plate),)
            ).fetchone()
        if row is None:
            return self._near(normalise(plate)) or NOT_FOUND
        amount, message = float(row[0]), str(row[1])
        if amount > 0:
            return DuesResult(True, True, amount, message or "Dues pending")
        return DuesResult(True, False, 0.0, message or "No dues pending")

    def _near(self, plate: str) -> DuesResult | None:
        """A known plate one OCR slip away from ``plate`` (one edit, or confusable
        characters), reported as a possible match: never as dues pending."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT plate FROM dues WHERE length(plate) BETWEEN ? AND ?",
                (len(plate) - 1, len(plate) + 1),
            ).fetchall()
        folded = confusable_form(plate)
        near = sorted(
            str(known)
            for (known,) in rows
            if confusable_form(str(known)) == folded or edit_distance(known, plate) == 1
        )
        if len(near) != 1:  # none, or too many to name one
            return None
        return DuesResult(
            False, False, 0.0, f"No record for {plate}; possible match {near[0]}", near[0]
        )

    def set(self, plate: str, amount: float, message: str = "") -> None:
        """Create or replace the dues of ``plate``.

        Raises:
            DuesError: for a plate with no letters or digits or with ones outside A-Z and
                0-9, or an amount that is negative or not a finite number.
        """
        self._upsert([(dues_key(plate), dues_amount(amount), dues_message(message))])

    def _upsert(self, rows: list[tuple[str, float, str]]) -> None:
        """Write checked rows in one transaction: all of them, or none."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as connection:
            connection.executemany(
                "INSERT INTO dues (plate, amount, message, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(plate) DO UPDATE SET amount = excluded.amount, "
                "message = excluded.message, updated_at = excluded.updated_at",
                [(plate, amount, message, now) for plate, amount, message in rows],
            )

    def clear(self, plate: str) -> bool:
        """Remove ``plate``'s row; ``False`` when there was none."""
        with self._connect() as connection:
            cursor = connection.execute("DELETE FROM dues WHERE plate = ?", (normalise(plate),))
        return cursor.rowcount > 0

    def records(self) -> list[DuesRecord]:
        """Every row, ordered by plate."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT plate, amount, message, updated_at FROM dues ORDER BY plate"
            ).fetchall()
        return [DuesRecord(str(p), float(a), str(m), str(u)) for p, a, m, u in rows]

    def import_csv(self, path: Path) -> int:
        """Upsert rows from a CSV with a header ``plate,amount[,message]`` (UTF-8, with or
        without the byte-order mark spreadsheets write); returns the count.

        The whole file is checked first and written in one transaction, so a bad row
        changes nothing.

        Raises:
            DuesError: naming the file, the line and the rule it breaks.
        """
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DuesError(f"{path}: cannot read ({error.strerror})") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            raise DuesError(f"{path}:{line}: not UTF-8 (byte 0x{data[error.start]:02x})") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        rows: list[tuple[str, float, str]] = []
        try:
            header = [name.strip().lower() for name in next(reader, [])]
            if not {"plate", "amount"} <= set(header):
                raise DuesError(f"{path}:1: header must name plate and amount columns")
            start = reader.line_num + 1  # the line a record starts on
            for values in reader:
                if any(value.strip() for value in values):
                    rows.append(_row(path, start, header, values))
                start = reader.line_num + 1
        except csv.Error as error:
            raise DuesError(f"{path}:{reader.line_num}: {error}") from None
        self._upsert(rows)
        return len(rows)


def _row(path: Path, line: int, header: list[str], values: list[str]) -> tuple[str, float, str]:
    """One CSV row as (plate, amount, message), checked.

    Raises:
        DuesError: naming the file, the line and the rule it breaks.
    """
    if len(values) > len(header):
        raise DuesError(f"{path}:{line}: {len(values)} columns, the header has {len(header)}")
    if any("\n" in value or "\r" in value for value in values):
        # csv reads a quote left open as one value running to the next quote, lines on.
        raise DuesError(f"{path}:{line}: a value runs over several lines (a quote left open?)")
    row = dict(zip(header, (value.strip() for value in values), strict=False))
    try:
        return (
            dues_key(row.get("plate", "")),
            dues_amount(row.get("amount", "")),
            dues_message(row.get("message", "")),
        )
    except DuesError as error:
        raise DuesError(f"{path}:{line}: {error}") from None


def dues_key(plate: str) -> str:
    """``plate`` as the dues database keys it: :func:`~streamer.reading.plates.normalise`d.

    Raises:
        DuesError: when it has no letters or digits, or has ones outside A-Z and 0-9 (a
            Cyrillic or Devanagari plate would otherwise be silently rewritten).
    """
    # Checked before upper-casing, which turns some letters into ASCII ones ('ß' → 'SS');
    # separators (spaces, dashes, dots, in any script) are dropped.
    foreign = "".join(sorted({c for c in plate if not c.isascii() and not _separator(c)}))
    shown = repr(plate) if len(plate) <= 40 else f"{plate[:37]!r}..."
    if foreign:
        raise DuesError(f"plate {shown}: only A-Z and 0-9 are plate characters ({foreign!r})")
    key = normalise(plate)
    if not key:
        raise DuesError(f"plate {shown} has no letters or digits")
    if len(key) > MAX_PLATE_LENGTH:
        raise DuesError(f"plate {shown}: longer than {MAX_PLATE_LENGTH} letters and digits")
    return key


#: The most letters and digits a plate has (the longest formats have about 10).
MAX_PLATE_LENGTH = 16
#: The longest message kept with a plate's dues.
MAX_MESSAGE_LENGTH = 1000


def _separator(char: str) -> bool:
    """Spaces and punctuation (a no-break space or an en dash pasted from a spreadsheet)."""
    return unicodedata.category(char)[0] in "ZP"


def dues_message(message: str) -> str:
    """``message`` as kept with dues: one line of text, at most :data:`MAX_MESSAGE_LENGTH`.

    Raises:
        DuesError: saying what is wrong with it.
    """
    if len(message) > MAX_MESSAGE_LENGTH:
        raise DuesError(f"message: longer than {MAX_MESSAGE_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in message):
        raise DuesError("message: control characters or broken text (one line of text)")
    return message


def dues_amount(value: object) -> float:
    """``value`` as an amount of dues: a finite number, not negative.

    Raises:
        DuesError: saying what is wrong with it.
    """
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    try:
        amount = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an integer too large for a float
        amount = math.inf
    except (TypeError, ValueError):
        raise DuesError(f"amount {shown} is not a number") from None
    if not math.isfinite(amount):
        raise DuesError(f"amount must be a finite number (got {shown})")
    if amount < 0:
        raise DuesError(f"amount must not be negative (got {shown})")
    return amount
