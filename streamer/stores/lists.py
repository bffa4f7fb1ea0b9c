"""Named plate lists (residents, staff, banned …), looked up for every event beside dues.

The lists are declared in the config; their entries live in a table of the dues database
file, each with an optional note and expiry. An expired entry is kept (``streamer lists
show`` marks it) but matches nothing. Matching is exact, as for dues: a plate one OCR slip
away from exactly one entry of a list is reported under ``possible_lists``, never as on
the list. A list with a ``file`` in the config is that file: it is loaded at every start
and cannot be changed with the CLI or the API.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, Protocol

from streamer.events import NO_LISTS, ListMatch
from streamer.reading.plates import normalise, one_slip
from streamer.stores.database import Database, SqlStore
from streamer.stores.records import StoreError, note_text, plate_key, read_csv


class ListError(StoreError):
    """A list is unknown or cannot be changed, or an entry is invalid."""


class Lists(Protocol):
    """Anything that says which lists a plate is on."""

    def lookup(self, plate: str) -> ListMatch:
        """The lists ``plate`` is on, and those it may be on."""
        ...


class NoLists:
    """No lists declared: every plate is on none."""

    def lookup(self, plate: str) -> ListMatch:
        """:data:`NO_LISTS`."""
        return NO_LISTS


@dataclass(frozen=True)
class ListEntry:
    """One plate on one list."""

    list: str
    plate: str
    note: str
    expires_at: float | None
    updated_at: str

    @property
    def expired(self) -> bool:
        """Whether the entry has expired (it then matches nothing)."""
        return self.expires_at is not None and self.expires_at <= time.time()

    def to_json(self) -> dict[str, Any]:
        """The entry as the API shows it; ``expires`` in ISO 8601, UTC."""
        expires = self.expires_at
        return {
            "list": self.list,
            "plate_number": self.plate,
            "note": self.note,
            "expires": None if expires is None else _iso(expires),
            "expired": self.expired,
            "updated_at": self.updated_at,
        }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def expiry(value: object) -> float | None:
    """When an entry expires, as Unix time, from ``YYYY-MM-DD`` (the end of that day, local
    time) or an ISO 8601 date and time (local time without an offset); empty: never.

    Raises:
        ListError: for anything else.
    """
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day + timedelta(days=1), clock()).timestamp()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        raise ListError(
            f"expires: {text[:40]!r} is not a date (YYYY-MM-DD) or a date and time (ISO 8601)"
        ) from None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS list_entries (
    list TEXT NOT NULL,
    plate TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    expires_at REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (list, plate)
)
"""

#: One checked entry: plate, note, expiry.
Row = tuple[str, str, float | None]


def _row(values: dict[str, str]) -> Row:
    return (
        plate_key(values.get("plate", "")),
        note_text(values.get("note", ""), "note"),
        expiry(values.get("expires", "")),
    )


class SqlLists(SqlStore):
    """The declared lists, kept in an SQLite file (the dues database), created on first use.

    Example:
        >>> lists = SqlLists(Path("/tmp/dues.sqlite"), {"residents": None})
        >>> lists.add("residents", "KA01AB1234", note="flat 4")
        >>> lists.lookup("KA01AB1234").lists
        ('residents',)
    """

    SCHEMA = _SCHEMA
    ERROR = ListError

    def __init__(self, database: Database | Path, declared: Mapping[str, Path | None]) -> None:
        super().__init__(database)
        #: Each list's name, and the file that is the list (``None``: managed by hand).
        self.declared = dict(declared)

    def load_files(self) -> dict[str, int]:
        """Replace every list that has a file with the file's entries, each list in one
        transaction; returns the entries per list.

        Raises:
            ListError: naming the file, the line and what is wrong, before any list changed.
        """
        loaded = {
            name: read_csv(file, ("plate",), _row, ListError)
            for name, file in self.declared.items()
            if file is not None
        }
        for name, rows in loaded.items():
            self._write(name, rows, replace=True)
        return {name: len(rows) for name, rows in loaded.items()}

    def lookup(self, plate: str) -> ListMatch:
        """The declared lists with an entry for ``plate`` that has not expired; and, for
        each other list, its one entry one OCR slip away (one edit, or confusable
        characters), if exactly one is."""
        plate = normalise(plate)
        if not self.declared or not plate:
            return NO_LISTS
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT list, plate FROM list_entries WHERE length(plate) BETWEEN ? AND ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (len(plate) - 1, len(plate) + 1, time.time()),
            ).fetchall()
        rows = [(str(name), str(known)) for name, known in rows if name in self.declared]
        on = sorted({name for name, known in rows if known == plate})
        near: dict[str, set[str]] = {}
        for name, known in rows:
            if name not in on and one_slip(known, plate):
                near.setdefault(name, set()).add(known)
        possible = tuple(
            (name, next(iter(plates))) for name, plates in sorted(near.items()) if len(plates) == 1
        )
        return ListMatch(tuple(on), possible)

    def add(self, name: str, plate: str, note: object = "", expires: object = None) -> ListEntry:
        """Put ``plate`` on list ``name`` (or replace its note and expiry).

        Raises:
            ListError: for an unknown or file-managed list, or an invalid entry.
        """
        self._changeable(name)
        try:
            row = (plate_key(plate), note_text(note, "note"), expiry(expires))
        except StoreError as error:
            raise ListError(str(error)) from None
        self._write(name, [row], replace=False)
        return next(entry for entry in self.entries(name) if entry.plate == row[0])

    def remove(self, name: str, plate: str) -> bool:
        """Take ``plate`` off list ``name``; ``False`` when it was not on it.

        Raises:
            ListError: for an unknown or file-managed list.
        """
        self._changeable(name)
        with self._connect() as connection:
            cursor = connection.execute(
                "DELETE FROM list_entries WHERE list = ? AND plate = ?", (name, normalise(plate))
            )
        return cursor.rowcount > 0

    def import_csv(self, name: str, path: Path) -> int:
        """Add or update the entries of a CSV with a header ``plate[,note][,expires]``, all
        or none; returns the count.

        Raises:
            ListError: for an unknown or file-managed list, or naming the file's bad line.
        """
        self._changeable(name)
        rows = read_csv(path, ("plate",), _row, ListError)
        self._write(name, rows, replace=False)
        return len(rows)

    def entries(self, name: str) -> list[ListEntry]:
        """Every entry of list ``name``, expired ones too, ordered by plate.

        Raises:
            ListError: for an unknown list.
        """
        self._known(name)
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT plate, note, expires_at, updated_at FROM list_entries WHERE list = ? "
                "ORDER BY plate",
                (name,),
            ).fetchall()
        return [ListEntry(name, str(p), str(n), e, str(u)) for p, n, e, u in rows]

    def counts(self) -> dict[str, int]:
        """Entries per declared list that have not expired."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT list, count(*) FROM list_entries "
                "WHERE expires_at IS NULL OR expires_at > ? GROUP BY list",
                (time.time(),),
            ).fetchall()
        found = {str(name): int(count) for name, count in rows}
        return {name: found.get(name, 0) for name in self.declared}

    def _known(self, name: str) -> None:
        if name not in self.declared:
            declared = ", ".join(sorted(self.declared)) or "none"
            raise ListError(f"unknown list {name!r} (lists declared under lists: {declared})")

    def _changeable(self, name: str) -> None:
        self._known(name)
        file = self.declared[name]
        if file is not None:
            raise ListError(f"list {name} is the file {file}: edit it (it is read at each start)")

    def _write(self, name: str, rows: list[Row], replace: bool) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as connection:
            if replace:
                connection.execute("DELETE FROM list_entries WHERE list = ?", (name,))
            connection.executemany(
                "INSERT INTO list_entries (list, plate, note, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(list, plate) DO UPDATE SET "
                "note = excluded.note, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                [(name, plate, note, expires, now) for plate, note, expires in rows],
            )
