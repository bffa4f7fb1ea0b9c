"""Plate text: normalisation and regional format checks.

Plate numbers are compared in a normalised form: upper case, letters and digits only
(``"ka-01 ab 1234"`` → ``"KA01AB1234"``). Formats are regular expressions over that form
(the presets, and how an entry compiles: :mod:`streamer.config.formats`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

from streamer.config.formats import PRESETS, compile_format


def normalise(text: str) -> str:
    """Upper-case ``text`` and drop everything but ASCII letters and digits."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def matched_format(plate: str, formats: Sequence[str]) -> str | None:
    """The first of ``formats`` that normalised ``plate`` fully matches, as configured (a
    preset's name, or the regex itself), or ``None`` when none does.

    Example:
        >>> matched_format("MAB123E", ["fr", "de"])
        'de'
    """
    return next((entry for entry in formats if compile_format(entry).fullmatch(plate)), None)


def matches_format(plate: str, formats: Sequence[str]) -> bool:
    """Whether normalised ``plate`` fully matches any of ``formats``."""
    return matched_format(plate, formats) is not None


#: Characters OCR confuses, as the digit a letter looks like and the letter a digit does.
LETTER_TO_DIGIT = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "I": "1",
    "L": "1",
    "Z": "2",
    "S": "5",
    "G": "6",
    "T": "7",
    "B": "8",
}
DIGIT_TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "7": "T", "8": "B"}

_TOKEN = re.compile(r"\[(?:[A-Z0-9](?:-[A-Z0-9])?)+\]|[A-Z0-9]")
_LETTERS = frozenset(string.ascii_uppercase)
_DIGITS = frozenset(string.digits)
_COUNT = re.compile(r"\{(\d+)(?:,(\d+))?\}|\?")


#: Longest plate a format template is expanded to, and most templates per format: a
#: format such as ``[A-Z]{0,4294967294}`` is too rich to expand, not a reason to run out
#: of memory.
MAX_TEMPLATE_LENGTH = 32
MAX_TEMPLATES = 10_000


@lru_cache(maxsize=1024)
def _kind(token: str) -> str | None:
    """A template character for a token: "L" for a class of letters only (``[A-Z]``,
    ``[A-HJ-NP-Z]``), "D" for digits only, "X" for both, or the literal character itself;
    ``None`` for a class that is not a valid regex."""
    if not token.startswith("["):
        return token
    try:
        members = {char for char in _LETTERS | _DIGITS if re.fullmatch(token, char)}
    except re.error:
        return None
    return "L" if members <= _LETTERS else "D" if members <= _DIGITS else "X"


def format_templates(expression: str) -> list[list[str]] | None:
    """Per alternative of a format, its tokens expanded to fixed-length class strings
    ("L", "D", "X" for either, or a literal character); ``None`` when too rich to expand.

    A class narrower than ``[A-Z]`` or ``[0-9]`` (``[BCDFG]``) counts as letters or digits:
    the templates say which kind of character goes where, the format says which ones."""
    templates = _templates(expression)
    return None if templates is None else [list(expansions) for expansions in templates]


@lru_cache(maxsize=256)
def _templates(expression: str) -> tuple[tuple[str, ...], ...] | None:
    """:func:`format_templates`, computed once per expression."""
    alternatives = []
    for alternative in expression.split("|"):
        parts: list[tuple[str, int, int]] = []
        position = 0
        while position < len(alternative):
            token = _TOKEN.match(alternative, position)
            if token is None:
                return None
            kind = _kind(token.group())
            if kind is None:
                return None
            position = token.end()
            low = high = 1
            count = _COUNT.match(alternative, position)
            if count is not None:
                position = count.end()
                if count.group() == "?":
                    low, high = 0, 1
                else:
                    low = int(count.group(1))
                    high = int(count.group(2)) if count.group(2) else low
            parts.append((kind, low, high))
        if sum(low for _, low, _ in parts) > MAX_TEMPLATE_LENGTH:
            return None
        expansions = [""]
        for kind, low, high in parts:
            high = min(high, MAX_TEMPLATE_LENGTH)
            expansions = [
                e + kind * n
                for e in expansions
                for n in range(low, high + 1)
                if len(e) + n <= MAX_TEMPLATE_LENGTH
            ]
            if len(expansions) > MAX_TEMPLATES:
                return None
        alternatives.append(tuple(expansions))
    return tuple(alternatives)


def fix_confusions(plate: str, formats: Sequence[str]) -> str:
    """Swap confusable characters (O/0, I/1, B/8, S/5, Z/2, G/6 …) where a format fixes
    whether a position holds a letter or a digit, and only when that gives one plate that
    matches a format with fewer swaps than any other. A plate that already matches, or one
    that could be fixed in two equally good ways, is returned unchanged.

    Example:
        >>> fix_confusions("KAO1AB1Z34", ["in_rto"])
        'KA01AB1234'
    """
    if matches_format(plate, formats):
        return plate
    candidates: dict[str, int] = {}
    for entry in formats:
        templates = _templates(PRESETS.get(entry, entry))
        if templates is None:
            continue
        for expansions in templates:
            for template in expansions:
                if len(template) != len(plate):
                    continue
                fixed = []
                for char, kind in zip(plate, template, strict=True):
                    if kind == "D" and not char.isdigit():
                        char = LETTER_TO_DIGIT.get(char, "")
                    elif kind == "L" and char.isdigit():
                        char = DIGIT_TO_LETTER.get(char, "")
                    elif kind not in {"L", "D", "X"} and char != kind:
                        char = (
                            kind
                            if LETTER_TO_DIGIT.get(kind) == char
                            or DIGIT_TO_LETTER.get(kind) == char
                            else ""
                        )
                    if not char:
                        break
                    fixed.append(char)
                else:
                    candidate = "".join(fixed)
                    if matches_format(candidate, formats):
                        candidates[candidate] = sum(
                            a != b for a, b in zip(candidate, plate, strict=True)
                        )
    if not candidates:
        return plate
    fewest = min(candidates.values())
    best = [candidate for candidate, swaps in candidates.items() if swaps == fewest]
    return best[0] if len(best) == 1 else plate


_CONFUSABLE = str.maketrans(LETTER_TO_DIGIT)


def confusable_form(plate: str) -> str:
    """``plate`` with every confusable letter replaced by its look-alike digit, so that
    plates differing only by O/0, I/1, B/8 … compare equal."""
    return plate.translate(_CONFUSABLE)


def one_slip(known: str, read: str) -> bool:
    """Whether ``read`` is one OCR slip from ``known``: one character more, less or
    different, or only look-alike characters apart (O/0, B/8 …). A store reports such a
    read as a possible match, never as a match."""
    return confusable_form(known) == confusable_form(read) or edit_distance(known, read) == 1


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
