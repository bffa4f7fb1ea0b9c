"""Dues: outstanding fines or fees per plate, looked up for every event.

The embedded backend is an SQLite file. Lookups answer in the seed service's shape
``{"found", "dues_pending", "amount", "message"}``; a plate with no row gives
``found: false``. Every call opens its own short connection, so lookups are safe from
any thread and see changes made by ``streamer dues`` while the daemon runs. A plate with no
row may be one OCR slip from a known one: found through the keys of
:mod:`streamer.stores.slips` in ``dues_keys``, never by a scan.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from streamer.events import NOT_FOUND, DuesResult
from streamer.reading.plates import normalise
from streamer.stores.database import Database, SqlStore
from streamer.stores.records import (
    StoreError,
    by_plate,
    note_text,
    one_per_plate,
    plate_key,
    read_csv,
)
from streamer.stores.slips import add_keys, read_keys, remove_keys, slips

logger = logging.getLogger(__name__)


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


class DuesError(StoreError):
    """The dues database cannot be opened or a change to it is invalid."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dues (
    plate TEXT PRIMARY KEY,
    amount REAL NOT NULL CHECK (amount >= 0),
    message TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dues_keys (
    key TEXT NOT NULL,
    plate TEXT NOT NULL,
    PRIMARY KEY (key, plate)
) WITHOUT ROWID
"""


class SqlDues(SqlStore):
    """Dues kept in an SQLite file, created on first use.

    Example:
        >>> dues = SqlDues(Path("/tmp/dues.sqlite"))
        >>> dues.set("KA01AB1234", 500.0, "Parking fine")
        >>> dues.lookup("ka-01-ab-1234").dues_pending
        True
    """

    SCHEMA = _SCHEMA
    ERROR = DuesError

    def __init__(self, database: Database | Path) -> None:
        super().__init__(database)
        self._index_old_plates()

    def _index_old_plates(self) -> None:
        """Key the plates of a database written before ``dues_keys`` existed."""
        with self._connect() as connection:
            if connection.execute("SELECT 1 FROM dues_keys LIMIT 1").fetchone() is not None:
                return
            rows = connection.execute("SELECT plate FROM dues").fetchall()
            plates = [str(plate) for (plate,) in rows]
            add_keys(connection, "dues_keys", plates)
        if plates:
            logger.info("dues: %d plates indexed for one-slip lookups", len(plates))

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
        keys = read_keys(plate)
        if not keys:  # longer than any plate
            return None
        with self._connect() as connection:
            rows = connection.execute(
                f"SELECT DISTINCT plate FROM dues_keys WHERE key IN ({', '.join('?' * len(keys))})",
                keys,
            ).fetchall()
        near = slips(plate, (str(known) for (known,) in rows))
        if len(near) != 1:  # none, or too many to name one
            return None
        return DuesResult(
            False, False, 0.0, f"No record for {plate}; possible match {near[0]}", near[0]
        )

    def set(self, plate: str, amount: float, message: str = "") -> None:
        """Create or replace the dues of ``plate``.

        Raises:
            DuesError: for a plate with no letters or digits or with ones outside A-Z and
                0-9, a message that is not one line of text, or an amount that is negative
                or not a finite number.
        """
        try:
            row = (plate_key(plate), dues_amount(amount), note_text(message))
        except StoreError as error:
            raise DuesError(str(error)) from None
        self._upsert([row])

    def _upsert(self, rows: list[tuple[str, float, str]]) -> None:
        """Write checked rows in one transaction: all of them, or none."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as connection:
            connection.executemany(
                "INSERT INTO dues (plate, amount, message, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(plate) DO UPDATE SET amount = excluded.amount, "
                "message = excluded.message, updated_at = excluded.updated_at",
                [(plate, amount, message, now) for plate, amount, message in by_plate(rows)],
            )
            add_keys(connection, "dues_keys", [plate for plate, _, _ in rows])

    def clear(self, plate: str) -> bool:
        """Remove ``plate``'s row; ``False`` when there was none."""
        plate = normalise(plate)
        with self._connect() as connection:
            cursor = connection.execute("DELETE FROM dues WHERE plate = ?", (plate,))
            remove_keys(connection, "dues_keys", [plate])
        return cursor.rowcount > 0

    def records(self) -> list[DuesRecord]:
        """Every row, ordered by plate."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT plate, amount, message, updated_at FROM dues ORDER BY plate"
            ).fetchall()
        return [DuesRecord(str(p), float(a), str(m), str(u)) for p, a, m, u in rows]

    def import_csv(self, path: Path) -> int:
        """Upsert rows from a CSV with a header ``plate,amount[,message]``; returns the
        plates (a plate on several lines counts once: the last line wins). The whole file
        is checked first and written in one transaction, so a bad row changes nothing.

        Raises:
            DuesError: naming the file, the line and the rule it breaks.
        """
        rows = one_per_plate(read_csv(path, ("plate", "amount"), _row, DuesError))
        self._upsert(rows)
        self._wrote_many(len(rows), "dues", "dues_keys")
        return len(rows)


def _row(values: dict[str, str]) -> tuple[str, float, str]:
    """One CSV row as (plate, amount, message), checked."""
    return (
        plate_key(values.get("plate", "")),
        dues_amount(values.get("amount", "")),
        note_text(values.get("message", "")),
    )


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
