"""Named plate lists (residents, staff, banned …), looked up for every event beside dues.

The lists are declared in the config; their entries live in a table of the dues database
file, each with an optional note and expiry. An expired entry is kept (``streamer lists
show`` marks it) but matches nothing. Matching is exact, as for dues: a plate one OCR slip
away from exactly one entry of a list is reported under ``possible_lists``, never as on
the list. A list with a ``file`` in the config is that file: it is loaded at every start
and cannot be changed with the CLI or the API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, Protocol

from streamer.events import NO_LISTS, ListMatch
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
    try:
        when = datetime.fromtimestamp(moment, UTC)
    except (ValueError, OverflowError, OSError):  # stored by a version that let it in
        when = datetime.max.replace(tzinfo=UTC) if moment > 0 else datetime.min.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


#: The date that means "never expires": the last one a date can name.
NEVER = "9999-12-31"


def expiry(value: object) -> float | None:
    """When an entry expires, as Unix time, from ``YYYY-MM-DD`` (the end of that day, local
    time) or an ISO 8601 date and time (local time without an offset); empty, or
    ``9999-12-31``: never.

    Raises:
        ListError: for anything else, or a moment outside the years 1 to 9999 in UTC.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ListError(f"expires: expected a date as text (got {type(value).__name__})")
    text = value.strip()
    if text == NEVER:
        return None
    shown = repr(text) if len(text) <= 40 else f"{text[:37]!r}..."
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            moment = datetime.combine(day + timedelta(days=1), clock()).timestamp()
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ListError(
            f"expires: {shown} is not a date (YYYY-MM-DD) or a date and time (ISO 8601)"
        ) from None
    try:
        datetime.fromtimestamp(moment, UTC)  # what the entry is shown as
    except (ValueError, OverflowError, OSError):
        raise ListError(
            f"expires: {shown} is outside the years 1 to 9999 in UTC "
            f"(leave it empty or give {NEVER} for never)"
        ) from None
    return moment


_SCHEMA = """
CREATE TABLE IF NOT EXISTS list_entries (
    list TEXT NOT NULL,
    plate TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    expires_at REAL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (list, plate)
);
CREATE TABLE IF NOT EXISTS list_keys (
    list TEXT NOT NULL,
    key TEXT NOT NULL,
    plate TEXT NOT NULL,
    PRIMARY KEY (list, key, plate)
) WITHOUT ROWID
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
        self._index_old_entries()

    def _index_old_entries(self) -> None:
        """Key the entries of a database written before ``list_keys`` existed."""
        with self._connect() as connection:
            if connection.execute("SELECT 1 FROM list_keys LIMIT 1").fetchone() is not None:
                return
            rows = connection.execute("SELECT list, plate FROM list_entries").fetchall()
            plates: dict[str, list[str]] = {}
            for name, plate in rows:
                plates.setdefault(str(name), []).append(str(plate))
            for name, listed in plates.items():
                add_keys(connection, "list_keys", listed, name)
        if rows:
            logger.info("lists: %d entries indexed for one-slip lookups", len(rows))

    def load_files(self) -> dict[str, int]:
        """Replace every list that has a file with the file's entries, each list in one
        transaction; returns the plates per list (a plate on several lines counts once:
        the last line wins).

        Raises:
            ListError: naming the file, the line and what is wrong, before any list changed.
        """
        loaded = {
            name: one_per_plate(read_csv(file, ("plate",), _row, ListError))
            for name, file in self.declared.items()
            if file is not None
        }
        for name, rows in loaded.items():
            self._replace(name, rows)
        return {name: len(rows) for name, rows in loaded.items()}

    def lookup(self, plate: str) -> ListMatch:
        """The declared lists with an entry for ``plate`` that has not expired; and, for
        each other list, its one entry one OCR slip away (one edit, or confusable
        characters), if exactly one is. Both come from indexes: no entry is scanned."""
        plate = normalise(plate)
        names, keys = sorted(self.declared), read_keys(plate)
        if not names or not plate or not keys:  # keys: none for a read longer than any plate
            return NO_LISTS
        names_in, live = f"IN ({_marks(names)})", "(e.expires_at IS NULL OR e.expires_at > ?)"
        now = time.time()
        with self._connect() as connection:  # one round trip: the exact match, and the keys'
            rows = connection.execute(
                f"SELECT e.list, e.plate FROM list_entries e WHERE e.list {names_in} "
                f"AND e.plate = ? AND {live} UNION "
                "SELECT k.list, k.plate FROM list_keys k JOIN list_entries e "
                f"ON e.list = k.list AND e.plate = k.plate WHERE k.list {names_in} "
                f"AND k.key IN ({_marks(keys)}) AND {live}",
                (*names, plate, now, *names, *keys, now),
            ).fetchall()
        lists = tuple(sorted(str(name) for name, known in rows if known == plate))
        candidates: dict[str, list[str]] = {}
        for name, known in rows:
            if name not in lists:
                candidates.setdefault(str(name), []).append(str(known))
        possible = []
        for name, plates in sorted(candidates.items()):
            found = slips(plate, plates)
            if len(found) == 1:  # none, or too many to name one
                possible.append((name, found[0]))
        return ListMatch(lists, tuple(possible))

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
        self._upsert(name, [row])
        with self._connect() as connection:
            found = connection.execute(
                "SELECT plate, note, expires_at, updated_at FROM list_entries "
                "WHERE list = ? AND plate = ?",
                (name, row[0]),
            ).fetchone()
        return _entry(name, found)

    def remove(self, name: str, plate: str) -> bool:
        """Take ``plate`` off list ``name``; ``False`` when it was not on it.

        Raises:
            ListError: for an unknown or file-managed list.
        """
        self._changeable(name)
        plate = normalise(plate)
        with self._connect() as connection:
            cursor = connection.execute(
                "DELETE FROM list_entries WHERE list = ? AND plate = ?", (name, plate)
            )
            remove_keys(connection, "list_keys", [plate], name)
        return cursor.rowcount > 0

    def import_csv(self, name: str, path: Path) -> int:
        """Add or update the entries of a CSV with a header ``plate[,note][,expires]``, all
        or none; returns the plates (a plate on several lines counts once: the last line
        wins).

        Raises:
            ListError: for an unknown or file-managed list, or naming the file's bad line.
        """
        self._changeable(name)
        rows = one_per_plate(read_csv(path, ("plate",), _row, ListError))
        self._upsert(name, rows)
        self._wrote_many(len(rows), "list_entries", "list_keys")
        return len(rows)

    def entries(self, name: str) -> list[ListEntry]:
        """Every entry of list ``name``, expired ones too, ordered by plate.

        Raises:
            ListError: for an unknown list.
        """
        return self.page(name, None, 0)[0]

    def page(self, name: str, limit: int | None, offset: int) -> tuple[list[ListEntry], int]:
        """``limit`` entries of list ``name`` (all when ``None``) after the first
        ``offset``, expired ones too, ordered by plate; and how many the list holds.

        Raises:
            ListError: for an unknown list.
        """
        self._known(name)
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT plate, note, expires_at, updated_at FROM list_entries WHERE list = ? "
                "ORDER BY plate" + page,
                (name,),
            ).fetchall()
            (total,) = connection.execute(
                "SELECT count(*) FROM list_entries WHERE list = ?", (name,)
            ).fetchone()
        return [_entry(name, row) for row in rows], int(total)

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

    def _upsert(self, name: str, rows: list[Row]) -> None:
        """Write checked entries and their keys in one transaction: all, or none."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as connection:
            connection.executemany(
                "INSERT INTO list_entries (list, plate, note, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(list, plate) DO UPDATE SET "
                "note = excluded.note, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                [(name, plate, note, expires, now) for plate, note, expires in by_plate(rows)],
            )
            add_keys(connection, "list_keys", [plate for plate, _, _ in rows], name)

    def _replace(self, name: str, rows: list[Row]) -> None:
        """Make list ``name`` hold ``rows`` and nothing else, in one transaction, writing
        only what changed: a file read again at each start is mostly the same."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        wanted = {plate: (note, expires) for plate, note, expires in rows}
        with self._connect() as connection:
            held = {
                str(plate): (str(note), expires)
                for plate, note, expires in connection.execute(
                    "SELECT plate, note, expires_at FROM list_entries WHERE list = ?", (name,)
                ).fetchall()
            }
            gone = sorted(held.keys() - wanted.keys())
            connection.executemany(
                "DELETE FROM list_entries WHERE list = ? AND plate = ?",
                [(name, plate) for plate in gone],
            )
            remove_keys(connection, "list_keys", gone, name)
            connection.executemany(
                "INSERT INTO list_entries (list, plate, note, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(list, plate) DO UPDATE SET "
                "note = excluded.note, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                [
                    (name, plate, note, expires, now)
                    for plate, (note, expires) in sorted(wanted.items())
                    if held.get(plate) != (note, expires)
                ],
            )
            new = [plate for plate in wanted if plate not in held]
            add_keys(connection, "list_keys", new, name)
        self._wrote_many(len(gone) + len(new), "list_entries", "list_keys")


def _entry(name: str, row: Any) -> ListEntry:
    plate, note, expires, updated = row
    return ListEntry(name, str(plate), str(note), expires, str(updated))


def _marks(values: list[str]) -> str:
    """As many ``?`` placeholders as ``values``."""
    return ", ".join("?" * len(values))
