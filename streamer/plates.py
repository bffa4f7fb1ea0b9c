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
    except re.error as error:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(
            f"{entry!r} is neither a preset ({known}) nor a valid regex: {error}"
        ) from None


def matches_format(plate: str, formats: Sequence[str]) -> bool:
    """Whether normalised ``plate`` fully matches any of ``formats``."""
    return any(compile_format(entry).fullmatch(plate) for entry in formats)
