"""Plate text: normalisation and regional format checks.

Plate numbers are compared in a normalised form: upper case, letters and digits only
(``"ka-01 ab 1234"`` → ``"KA01AB1234"``). Formats are regular expressions over that form;
the presets cover common regions and a config may add its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

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


def matches_format(plate: str, formats: Sequence[str]) -> bool:
    """Whether normalised ``plate`` fully matches any of ``formats``."""
    return any(compile_format(entry).fullmatch(plate) for entry in formats)


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

_TOKEN = re.compile(r"\[A-Z\]|\[0-9\]|\[A-Z0-9\]|[A-Z0-9]")
_COUNT = re.compile(r"\{(\d+)(?:,(\d+))?\}|\?")


#: Longest plate a format template is expanded to, and most templates per format: a
#: format such as ``[A-Z]{0,4294967294}`` is too rich to expand, not a reason to run out
#: of memory.
MAX_TEMPLATE_LENGTH = 32
MAX_TEMPLATES = 10_000


def format_templates(expression: str) -> list[list[str]] | None:
    """Per alternative of a format, its tokens expanded to fixed-length class strings
    ("L", "D", "X" for either, or a literal character); ``None`` when too rich to expand."""
    alternatives = []
    for alternative in expression.split("|"):
        parts: list[tuple[str, int, int]] = []
        position = 0
        while position < len(alternative):
            token = _TOKEN.match(alternative, position)
            if token is None:
                return None
            kind = {"[A-Z]": "L", "[0-9]": "D", "[A-Z0-9]": "X"}.get(token.group(), token.group())
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
        alternatives.append(expansions)
    return alternatives


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
        templates = format_templates(PRESETS.get(entry, entry))
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


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
