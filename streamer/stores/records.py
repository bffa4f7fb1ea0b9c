"""What the plate stores (dues, lists) share: the checked form of a plate and of a note,
the error they raise, and the reading of their CSV files with line numbers."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Collection
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from streamer.files import read_regular
from streamer.reading.plates import normalise

#: The most letters and digits a plate has (the longest formats have about 10).
MAX_PLATE_LENGTH = 16
#: The longest message or note kept with a plate.
MAX_NOTE_LENGTH = 1000
#: The largest CSV file read (a list of 1 million plates with notes is about 30 MB).
MAX_CSV_BYTES = 256_000_000

T = TypeVar("T")
#: A checked CSV record whose first value is its plate.
R = TypeVar("R", bound=tuple[Any, ...])


class StoreError(RuntimeError):
    """A store cannot be opened, or a change to it (a plate, a note, a CSV line) is
    invalid; the message is one line saying which and why."""


def plate_key(plate: str) -> str:
    """``plate`` as the stores key it: :func:`~streamer.reading.plates.normalise`d.

    Raises:
        StoreError: when it has no letters or digits, or has ones outside A-Z and 0-9 (a
            Cyrillic or Devanagari plate would otherwise be silently rewritten).
    """
    if _KEYED.fullmatch(plate):  # most lines of a large list: nothing to change
        return plate
    # Checked before upper-casing, which turns some letters into ASCII ones ('ß' → 'SS');
    # separators (spaces, dashes, dots, in any script) are dropped.
    foreign = "".join(sorted({c for c in plate if not c.isascii() and not _separator(c)}))
    shown = repr(plate) if len(plate) <= 40 else f"{plate[:37]!r}..."
    if foreign:
        raise StoreError(f"plate {shown}: only A-Z and 0-9 are plate characters ({foreign!r})")
    if any(unicodedata.category(c) == "Cc" for c in plate):
        # A NUL or a tab is damage, not a separator: dropping it would store another plate.
        raise StoreError(f"plate {shown}: control characters are not plate characters")
    key = normalise(plate)
    if not key:
        raise StoreError(f"plate {shown} has no letters or digits")
    if len(key) > MAX_PLATE_LENGTH:
        raise StoreError(f"plate {shown}: longer than {MAX_PLATE_LENGTH} letters and digits")
    return key


_KEYED = re.compile(f"[A-Z0-9]{{1,{MAX_PLATE_LENGTH}}}")


def one_per_plate(records: list[R]) -> list[R]:
    """``records`` with each plate (its first value) once: where a file names a plate on
    several lines, the last line wins, as it would if they were written one by one."""
    return list({record[0]: record for record in records}.values())


def by_plate(records: list[R]) -> list[R]:
    """``records`` in the order of their plates: a large import then fills the table's
    index in order, rather than all over it."""
    return sorted(records, key=itemgetter(0))


def _separator(char: str) -> bool:
    """Spaces and punctuation (a no-break space or an en dash pasted from a spreadsheet)."""
    return unicodedata.category(char)[0] in "ZP"


def note_text(text: object, name: str = "message") -> str:
    """``text`` as kept beside a plate (a dues message, a list note): one line of text, at
    most :data:`MAX_NOTE_LENGTH` characters.

    Raises:
        StoreError: saying what is wrong with it, under ``name``.
    """
    if not isinstance(text, str):
        raise StoreError(f"{name}: expected a string (got {type(text).__name__})")
    if len(text) > MAX_NOTE_LENGTH:
        raise StoreError(f"{name}: longer than {MAX_NOTE_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise StoreError(f"{name}: control characters or broken text (one line of text)")
    return text


def read_csv(
    path: Path,
    required: Collection[str],
    row: Callable[[dict[str, str]], T],
    error: type[StoreError] = StoreError,
) -> list[T]:
    """Every record of a CSV file whose header names at least the ``required`` columns,
    each made by ``row`` from its stripped values by column name. UTF-8, with or without
    the byte-order mark spreadsheets write; blank lines are skipped. Only a regular file of
    at most :data:`MAX_CSV_BYTES` is read (not a FIFO or a device).

    Raises:
        StoreError: (as ``error``) naming the file, the line and the rule it breaks; a
            :class:`StoreError` from ``row`` is given the file and line.
    """
    try:
        data = read_regular(path, MAX_CSV_BYTES)
    except OSError as failure:
        raise error(f"{path}: cannot read ({failure.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as failure:
        line = data.count(b"\n", 0, failure.start) + 1
        raise error(f"{path}:{line}: not UTF-8 (byte 0x{data[failure.start]:02x})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[T] = []
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if not set(required) <= set(header):
            raise error(f"{path}:1: header must name the columns {', '.join(required)}")
        start = reader.line_num + 1  # the line a record starts on
        for values in reader:
            if any(value.strip() for value in values):
                records.append(_record(path, start, header, values, row, error))
            start = reader.line_num + 1
    except csv.Error as failure:
        raise error(f"{path}:{reader.line_num}: {failure}") from None
    return records


def _record(
    path: Path,
    line: int,
    header: list[str],
    values: list[str],
    row: Callable[[dict[str, str]], T],
    error: type[StoreError],
) -> T:
    if len(values) > len(header):
        raise error(f"{path}:{line}: {len(values)} columns, the header has {len(header)}")
    if any("\n" in value or "\r" in value for value in values):
        # csv reads a quote left open as one value running to the next quote, lines on.
        raise error(f"{path}:{line}: a value runs over several lines (a quote left open?)")
    try:
        return row(dict(zip(header, (value.strip() for value in values), strict=False)))
    except StoreError as failure:
        raise error(f"{path}:{line}: {failure}") from None
