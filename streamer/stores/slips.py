"""Keys that find the known plates one OCR slip from a read without scanning them all.

A read is one slip from a known plate (:func:`~streamer.reading.plates.one_slip`) when it
has one character more, fewer or different, or only look-alike characters (O/0, B/8 …).
In :func:`~streamer.reading.plates.confusable_form` the look-alikes vanish, so the two are
then at most one edit apart. Cut a plate of length M into :data:`PIECES` pieces: one edit
falls in one piece, and the plate with that piece masked is the same in both, its head
aligned from the start and its tail from the end (an insertion or a deletion shifts what
follows it). So a store keeps, for each plate, one key per piece: the plate with that
piece masked, tagged with M and the piece. A lookup computes the same keys from the read
for M = L - 1, L and L + 1 (L the read's length), fetches the plates that share one
through an index, and checks each with ``one_slip``: every plate one slip away shares at
least one key, and a plate shares one only if much of it matches.

Example:
    >>> plate_keys("KA01AB1234")
    ['10.0.|01A81234', '10.1.KA|81234', '10.2.KA01A|234', '10.3.KA01A81|']
    >>> set(plate_keys("KA01AB1234")) & set(read_keys("KA01AB234"))
    {'10.2.KA01A|234'}
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from operator import itemgetter

from streamer.reading.plates import confusable_form, one_slip
from streamer.stores.database import Connection
from streamer.stores.records import MAX_PLATE_LENGTH

#: Pieces a plate is cut into: each key masks one, so more pieces make longer keys (fewer
#: plates share one) and more of them (a larger table).
PIECES = 4


@cache
def _pieces(length: int) -> tuple[tuple[int, int, int], ...]:
    """Each piece of a plate of ``length`` characters: its number, where it starts and
    where it ends; empty pieces (of a plate shorter than :data:`PIECES`) are left out, since
    no edit falls in one."""
    cuts = [piece * length // PIECES for piece in range(PIECES + 1)]
    pieces = [(cuts[piece], cuts[piece + 1]) for piece in range(PIECES)]
    return tuple((number, start, end) for number, (start, end) in enumerate(pieces) if end > start)


def plate_keys(plate: str) -> list[str]:
    """The keys a store keeps for a known ``plate`` (normalised)."""
    form = confusable_form(plate)
    return [
        f"{len(form)}.{piece}.{form[:start]}|{form[end:]}"
        for piece, start, end in _pieces(len(form))
    ]


def read_keys(read: str) -> list[str]:
    """The keys of every plate of length L - 1, L or L + 1 that ``read`` (normalised, L
    characters) may be one slip from: a known plate within one edit shares one."""
    form = confusable_form(read)
    size = len(form)
    keys = set()
    for length in (size - 1, size, size + 1):
        if not 1 <= length <= MAX_PLATE_LENGTH:
            continue
        for piece, start, end in _pieces(length):
            tail = length - end
            if start + tail <= size:  # else no edit in this piece leads from one to the other
                keys.add(f"{length}.{piece}.{form[:start]}|{form[size - tail :]}")
    return sorted(keys)


def add_keys(connection: Connection, table: str, plates: Iterable[str], *scope: str) -> None:
    """Put the keys of ``plates`` in ``table``, whose columns are those of the ``scope``
    (a list's name), then ``key`` and ``plate``; keys already there are left as they are."""
    columns = ", ".join((*SCOPES[table], "key", "plate"))
    rows = [(*scope, key, plate) for plate in plates for key in plate_keys(plate)]
    rows.sort(key=itemgetter(len(scope)))  # a large import then fills the index in order
    connection.executemany(
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * (len(scope) + 2))}) "
        "ON CONFLICT DO NOTHING",
        rows,
    )


def remove_keys(connection: Connection, table: str, plates: Iterable[str], *scope: str) -> None:
    """Take the keys of ``plates`` out of ``table`` (see :func:`add_keys`)."""
    where = "".join(f"{column} = ? AND " for column in SCOPES[table])
    connection.executemany(
        f"DELETE FROM {table} WHERE {where}key = ? AND plate = ?",
        [(*scope, key, plate) for plate in plates for key in plate_keys(plate)],
    )


#: The tables of keys, and the columns before ``key`` in each.
SCOPES = {"dues_keys": (), "list_keys": ("list",)}


def slips(read: str, candidates: Iterable[str]) -> list[str]:
    """The ``candidates`` (sharing a key with ``read``) that are one slip from it, sorted;
    ``read`` itself is not one. A plate in a numbered series shares keys with many of
    the series: a check in linear time sets most of them aside before ``one_slip``."""
    form = confusable_form(read)
    return sorted(
        {
            known
            for known in candidates
            if known != read
            and _within_one_edit(confusable_form(known), form)
            and one_slip(known, read)
        }
    )


def _within_one_edit(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are at most one insertion, deletion or substitution apart
    (``one_slip`` implies it of their confusable forms)."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return False
    same = 0
    while same < len(a) and a[same] == b[same]:
        same += 1
    skip = same + 1 if len(a) == len(b) else same
    return a[skip:] == b[same + 1 :]
