"""Plate numbers to render: per region, the shapes its plates take, with their separators.

A pattern is a string: ``A`` a letter, ``9`` a digit, ``X`` either; ``-``, ``.``, ``·``
and spaces are separators drawn between the characters; ``|`` is an emblem (a seal, a
logo, a heart) drawn between them; ``\\`` makes the next character literal (``\\B\\H``
for India's Bharat series). Each pattern's letters come from its region's alphabet (no
I, O or U in France, …). The label is the characters alone (:func:`label_of`), as
:func:`streamer.reading.plates.normalise` gives it.

A share of each region's numbers are random strings of letters and digits in no format
at all (:func:`free_text`), so the network does not learn that a letter never stands
where a format puts a digit: it reads what is there, and the formats are checked after.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

LETTERS = string.ascii_uppercase
DIGITS = string.digits
SEPARATORS = " -.·|"


@dataclass(frozen=True)
class Region:
    """How one region's plates are numbered.

    Attributes:
        patterns: one-row patterns.
        rows: two-row patterns (top, bottom), for motorcycle and two-line plates.
        letters: the letters its numbers use.
    """

    patterns: tuple[str, ...]
    rows: tuple[tuple[str, str], ...] = ()
    letters: str = LETTERS


REGIONS: dict[str, Region] = {
    "in_rto": Region(
        (
            "AA 99 AA 9999",
            "AA99AA9999",
            "AA 99 A 9999",
            "AA-99-AA-9999",
            "AA 9 AAA 9999",
            "AA 99 AAA 9999",
            "99 \\B\\H 9999 AA",
        ),
        (("AA 99 AA", "9999"), ("AA99A", "9999")),
    ),
    "eu": Region(("AAA 999", "AA 9999", "A 999 AAA", "AAA 99 AA", "AA 999 A", "A 9999 AA")),
    "nl": Region(
        (
            "AA-99-AA",
            "99-AAA-9",
            "9-AAA-99",
            "AA-999-A",
            "A-999-AA",
            "AAA-99-A",
            "99-AA-AA",
            "AA-AA-99",
            "AA-99-99",
            "99-AA-99",
        ),
        letters="BDFGHJKLNPRSTVXZ",
    ),
    "br": Region(
        ("AAA-9999", "AAA·9999", "AAA9A99", "AAA 9A99"), (("AAA", "9999"), ("AAA", "9A99"))
    ),
    "us": Region(
        (
            "AAA 9999",
            "AAA-9999",
            "AAA·9999",
            "9AAA999",
            "999 AAA",
            "AAA 999",
            "AAA-999",
            "99A 999",
            "AA9 9AA",
            "AAA A99",
            "A99 9AA",
            "999 9AA",
            "9AA A99",
            "AA 99999",
            "999·AAA",
            "AA|9999",
            "999|AAA",
            "AAA|999",
            "9A 99999",
            "99999 A",
            "A 99999",
            "AAA9999",
            "9999AA",
        ),
        (("AA", "9999"), ("99", "AAA9"), ("AAA", "999")),
        # Most states leave I, O and Q out of their serial numbers: they read as 1 and 0.
        letters="ABCDEFGHJKLMNPRSTUVWXYZ",
    ),
    "ua": Region(("AA 9999 AA", "AA9999AA", "AA 9999AA"), letters="ABCEHIKMOPTX"),
    "vn": Region(
        ("99A-999.99", "99A-9999", "99A 999.99", "99AA-999.99", "99A9 999.99", "99A-99999"),
        (
            ("99-A9", "999.99"),
            ("99A9", "9999"),
            ("99A", "999.99"),
            ("99-AA", "999.99"),
            ("99A-9", "999.99"),
        ),
    ),
    "de": Region(
        ("A|AA 9999", "AA|A 999", "AAA|AA 99", "A|A 9999", "AA|AA 999", "A|AA 999E", "AA|A 99H"),
    ),
    "fr": Region(("AA-999-AA",), letters="ABCDEFGHJKLMNPQRSTVWXYZ"),
    "it": Region(("AA 999AA", "AA 999 AA"), letters="ABCDEFGHJKLMNPRSTVWXYZ"),
    "it_moto": Region((), (("AA", "99999"),), letters="ABCDEFGHJKLMNPRSTVWXYZ"),
    "es": Region(("9999 AAA", "9999-AAA"), letters="BCDFGHJKLMNPRSTVWXYZ"),
    "pl": Region(
        ("AA 99999", "AA 9999A", "AA 999AA", "AAA 9A99", "AAA 99AA", "AAA A999", "AA 9A999"),
        letters="ACEFGHJKLMNPRSTUVWXY",
    ),
    "gb": Region(("AA99 AAA", "A999 AAA", "AAA 999A")),
}


def _pick(rng: np.random.Generator, alphabet: str) -> str:
    return alphabet[int(rng.integers(len(alphabet)))]


def fill(pattern: str, rng: np.random.Generator, letters: str = LETTERS) -> str:
    """``pattern`` with each class filled in at random and its separators kept.

    Example:
        >>> fill("AA 99", np.random.default_rng(0))
        'NK 54'
    """
    out = []
    literal = False
    for char in pattern:
        if literal:
            out.append(char)
            literal = False
        elif char == "\\":
            literal = True
        elif char == "A":
            out.append(_pick(rng, letters))
        elif char == "9":
            out.append(_pick(rng, DIGITS))
        elif char == "X":
            out.append(_pick(rng, letters + DIGITS))
        else:
            out.append(char)
    return "".join(out)


def free_text(rng: np.random.Generator, shortest: int = 2, longest: int = 8) -> str:
    """Letters and digits in no format, now and then with a separator between them."""
    length = int(rng.integers(shortest, longest + 1))
    digit_share = float(rng.uniform(0.2, 0.8))
    chars = [
        _pick(rng, DIGITS) if rng.random() < digit_share else _pick(rng, LETTERS)
        for _ in range(length)
    ]
    if length >= 4 and rng.random() < 0.5:
        at = int(rng.integers(1, length))
        chars.insert(at, _pick(rng, " -·|."))
    return "".join(chars)


def label_of(text: str) -> str:
    """The characters of a rendered ``text`` without separators or emblems."""
    return "".join(char for char in text if char in LETTERS or char in DIGITS)


def plate_text(region: str, rng: np.random.Generator, free_share: float = 0.15) -> str:
    """A one-row number of ``region`` (a random string in no format, ``free_share`` of
    the time)."""
    spec = REGIONS[region]
    if not spec.patterns or rng.random() < free_share:
        return free_text(rng)
    return fill(spec.patterns[int(rng.integers(len(spec.patterns)))], rng, spec.letters)


def plate_rows(region: str, rng: np.random.Generator) -> tuple[str, str]:
    """A two-row number of ``region`` (top, bottom); a random split of letters and digits
    for a region without two-row plates."""
    spec = REGIONS.get(region, Region(()))
    if spec.rows and rng.random() < 0.85:
        top, bottom = spec.rows[int(rng.integers(len(spec.rows)))]
        return fill(top, rng, spec.letters), fill(bottom, rng, spec.letters)
    return free_text(rng, 2, 4), free_text(rng, 3, 5)
