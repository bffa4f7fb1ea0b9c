"""Plate text: normalisation and regional format checks.

Plate numbers are compared in a normalised form: upper case, letters and digits only
(``"ka-01 ab 1234"`` → ``"KA01AB1234"``). Formats are regular expressions over that form;
the presets cover common regions and a config may add its own.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import lru_cache

#: Poland: the vehicle's characters after a district of two letters and after one of three,
#: in the patterns issued ("9" a digit, "A" a letter: not B, D, I, O or Z, which look like
#: digits).
_PL_SERIALS = {
    "[A-Z]{2}": ("99999", "9999A", "999AA", "9A999", "9AA99"),
    "[A-Z]{3}": ("A999", "99AA", "9A99", "99A9", "9AA9", "AA99", "99999", "9999A", "999AA"),
}

#: Named formats over normalised text. A config may use these names or its own regexes.
PRESETS: dict[str, str] = {
    # India (RTO): state, district, optional series, number, e.g. KA01AB1234, DL3CAB1234;
    # and the Bharat series, e.g. 22BH1234AA.
    "in_rto": r"[A-Z]{2}[0-9]{1,2}[A-Z]{0,3}[0-9]{4}|[0-9]{2}BH[0-9]{4}[A-Z]{1,2}",
    # Generic EU style: letters, digits, optional letters (most national formats fit).
    "eu": r"[A-Z]{1,3}[0-9]{1,4}[A-Z]{0,3}|[A-Z]{1,3}[A-Z]{1,2}[0-9]{1,4}",
    # Netherlands sidecodes: six characters in three groups of letters/digits.
    "nl": r"(?=[A-Z0-9]{6}$)(?:[A-Z]{1,3}[0-9]{1,3}[A-Z]{1,3}|[0-9]{1,3}[A-Z]{1,3}[0-9]{1,3}"
    r"|[A-Z]{2}[0-9]{2}[0-9]{2}|[0-9]{2}[0-9]{2}[A-Z]{2}|[0-9]{2}[A-Z]{2}[0-9]{2}"
    r"|[A-Z]{2}[0-9]{2}[A-Z]{2}|[A-Z]{2}[A-Z]{2}[0-9]{2}|[0-9]{2}[A-Z]{2}[A-Z]{2})",
    # Brazil: old ABC1234 and Mercosur ABC1D23.
    "br": r"[A-Z]{3}[0-9][A-Z0-9][0-9]{2}",
    # United States: 2 to 8 letters and digits with at least one digit.
    "us": r"(?=.*[0-9])[A-Z0-9]{2,8}",
    # Ukraine: region letters, four digits, series letters, e.g. AA1234BB.
    "ua": r"[A-Z]{2}[0-9]{4}[A-Z]{2}",
    # Vietnam: province digits, series letter(s) with optional digit, 4-5 digits.
    "vn": r"[0-9]{2}[A-Z]{1,2}[0-9]?[0-9]{4,5}",
    # Germany: district (1-3 letters) and 1-2 letters, 1-4 digits, at most eight together,
    # then E (electric) or H (historic), e.g. B MW 1234 → BMW1234, M AB 123E → MAB123E.
    "de": r"[A-Z]{2,4}[0-9]{1,4}[EH]?|[A-Z]{5}[0-9]{1,3}[EH]?",
    # France (SIV, since 2009): letters without I, O, U, e.g. AB-123-CD → AB123CD.
    "fr": r"[A-HJ-NP-TV-Z]{2}[0-9]{3}[A-HJ-NP-TV-Z]{2}",
    # Italy (since 1994): letters without I, O, Q, U, e.g. AB 123 CD → AB123CD.
    "it": r"[A-HJ-NPR-TV-Z]{2}[0-9]{3}[A-HJ-NPR-TV-Z]{2}",
    # Italy, motorcycles: a square plate on two lines, two letters and five digits, read as
    # one string, e.g. AB 12345 → AB12345.
    "it_moto": r"[A-Z]{2}[0-9]{5}",
    # Spain (since 2000): four digits, three consonants (no vowels, Ñ or Q), e.g. 1234 BCD.
    "es": r"[0-9]{4}[BCDFGHJKLMNPRSTVWXYZ]{3}",
    # Poland (since 2000): a district of 2-3 letters, then the vehicle's characters in one
    # of the patterns issued, e.g. WA 12345, KR 1AC23, KRA 12AC.
    "pl": "|".join(
        district + "".join("[0-9]" if kind == "9" else "[ACE-HJ-NP-Y]" for kind in serial)
        for district, serials in _PL_SERIALS.items()
        for serial in serials
    ),
    # Great Britain (since 2001): area, age, three letters, e.g. AB12 CDE → AB12CDE.
    "gb": r"[A-Z]{2}[0-9]{2}[A-Z]{3}",
    # Great Britain, older plates still seen: prefix (1983-2001) A123 BCD and suffix
    # (1963-1983) ABC 123D; the dateless ones are too varied for a format.
    "gb_old": r"[A-Z][0-9]{1,3}[A-Z]{3}|[A-Z]{3}[0-9]{1,3}[A-Z]",
    # US states, standard-issue passenger plates only (vanity plates need "us" too).
    # California (since 1980): digit, three letters, three digits, e.g. 7ABC123.
    "us_ca": r"[0-9][A-Z]{3}[0-9]{3}",
    # New York: three letters, four digits, e.g. ABC-1234.
    "us_ny": r"[A-Z]{3}[0-9]{4}",
    # Texas: three letters, four digits, e.g. ABC-1234.
    "us_tx": r"[A-Z]{3}[0-9]{4}",
    # Florida: six characters, e.g. ABC D12, 123 ABC, A12 3BC, 123 4AB.
    "us_fl": r"[A-Z]{4}[0-9]{2}|[0-9]{3}[A-Z]{3}|[A-Z][0-9]{3}[A-Z]{2}|[0-9]{4}[A-Z]{2}",
    # Pennsylvania: three letters, four digits, e.g. ABC-1234.
    "us_pa": r"[A-Z]{3}[0-9]{4}",
    # Ohio: three letters, four digits, e.g. ABC 1234.
    "us_oh": r"[A-Z]{3}[0-9]{4}",
    # Georgia: three letters, four digits, e.g. ABC 1234.
    "us_ga": r"[A-Z]{3}[0-9]{4}",
    # Virginia: three letters, four digits, e.g. ABC-1234.
    "us_va": r"[A-Z]{3}[0-9]{4}",
    # North Carolina: three letters, four digits, e.g. ABC-1234.
    "us_nc": r"[A-Z]{3}[0-9]{4}",
    # Arizona: three letters, four digits, e.g. ABC1234.
    "us_az": r"[A-Z]{3}[0-9]{4}",
    # Illinois: two letters, five digits, e.g. AB 12345.
    "us_il": r"[A-Z]{2}[0-9]{5}",
}


def normalise(text: str) -> str:
    """Upper-case ``text`` and drop everything but ASCII letters and digits."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


@lru_cache(maxsize=256)
def compile_format(entry: str) -> re.Pattern[str]:
    """Compile a preset name or a regular expression to a full-match pattern.

    Raises:
        ValueError: naming the entry when it is neither a preset nor a valid regex.
    """
    expression = PRESETS.get(entry, entry)
    try:
        return re.compile(f"(?:{expression})")
    except (re.error, OverflowError, RecursionError) as error:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(
            f"{entry!r} is neither a preset ({known}) nor a valid regex: {error}"
        ) from None


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


def confusable_form(plate: str) -> str:
    """``plate`` with every confusable letter replaced by its look-alike digit, so that
    plates differing only by O/0, I/1, B/8 … compare equal."""
    return "".join(LETTER_TO_DIGIT.get(char, char) for char in plate)


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
