"""Plate formats: the presets a config may name, and how an entry (a preset's name or a
regular expression over the normalised plate) becomes a pattern. The reading of plates
against them is :mod:`streamer.reading.plates`."""

from __future__ import annotations

import re
from functools import lru_cache

from streamer.config.backtracking import MAX_TEXT, backtracking

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


@lru_cache(maxsize=256)
def compile_format(entry: str) -> re.Pattern[str]:
    """Compile a preset name or a regular expression to a full-match pattern.

    Raises:
        ValueError: naming the entry when it is neither a preset nor a valid regex, or is
            a regex that can backtrack for too long on a plate's text
            (:mod:`streamer.config.backtracking`).
    """
    expression = PRESETS.get(entry, entry)
    try:
        pattern = re.compile(f"(?:{expression})")
        risk = backtracking(pattern.pattern)
    except (re.error, OverflowError, RecursionError) as error:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(
            f"{entry!r} is neither a preset ({known}) nor a valid regex: {error}"
        ) from None
    if risk is not None:
        raise ValueError(
            f"{entry!r} can take minutes on a {MAX_TEXT}-character text ({risk}); "
            "write it so that each character can match in one way only"
        )
    return pattern
