"""Regional plate formats: the presets, several formats at one site, and which one matched;
formats that would backtrack for minutes are refused."""

from __future__ import annotations

import time

import pytest

from streamer.config import ConfigError, parse_config
from streamer.config.formats import PRESETS, compile_format
from streamer.reading.plates import matches_format

#: Per preset, plates it accepts and plates it refuses (normalised text).
EXAMPLES: dict[str, tuple[list[str], list[str]]] = {
    "de": (
        ["BMW1234", "MAB123E", "HHAB1234", "BA1", "KXY99H", "SAB1234E"],
        ["BMW12345", "ABCDE1234", "1234AB", "MAB123X", "B1"],
    ),
    "fr": (["AB123CD", "GH852KL", "EZ001AA"], ["AB1234", "AI123CD", "AB123CU", "A1234BC"]),
    "it": (["AB123CD", "GM456XY", "ZA123BC"], ["AB1234C", "AO123CD", "AB123CQ"]),
    "it_moto": (["AB12345", "XY98765", "CZ00123"], ["AB1234", "A123456", "AB123CD"]),
    "es": (["1234BCD", "0000BBB", "9876LZX"], ["1234ABC", "1234BCQ", "123BCD", "M1234BC"]),
    "pl": (
        ["WA12345", "KR1AC23", "KRA12AC", "SK1234A", "WPI1234A"],
        # KR 1AB23: B is not issued after the district (it looks like 8), nor D, I, O, Z
        ["WA1234", "WA12D45", "KR1AB23", "WA1A2B3", "WAX12345A", "1WA2345"],
    ),
    "gb": (["AB12CDE", "LD68XYZ", "YX21ABC"], ["AB123CDE", "1AB2CDE", "AB12CD", "A123BCD"]),
    "gb_old": (["A123BCD", "P5XYZ", "ABC123D", "XYZ9A"], ["AB12CDE", "A1234BCD", "ABCD123E"]),
    "us_ca": (["7ABC123", "1XYZ999", "8KLM042"], ["ABC1234", "7AB1234", "7ABC12"]),
    "us_fl": (["ABCD12", "123ABC", "A123BC", "1234AB"], ["ABC1234", "12ABCD", "AB1234"]),
    "us_il": (["AB12345", "CY98765", "ZZ00001"], ["ABC1234", "A123456", "AB1234"]),
    **{
        state: (["ABC1234", "HJK9081", "XYZ0001"], ["7ABC123", "AB12345", "ABC123"])
        for state in ("us_ny", "us_tx", "us_pa", "us_oh", "us_ga", "us_va", "us_nc", "us_az")
    },
}


@pytest.mark.parametrize("preset", sorted(EXAMPLES))
def test_preset_accepts_its_plates_and_refuses_others(preset: str) -> None:
    accepted, refused = EXAMPLES[preset]
    assert len(accepted) >= 3
    assert len(refused) >= 2
    for plate in accepted:
        assert matches_format(plate, [preset]), plate
    for plate in refused:
        assert not matches_format(plate, [preset]), plate


#: Classic shapes of runaway backtracking ("ReDoS"), each refused when the config loads.
RUNAWAY = [
    "((A+)+)+B",  # 146 s on 20 characters before it was refused
    "(A+)+B",
    "(A*)*B",
    "(A|A)+B",
    "(A|AB)*C",
    "(A|A?)+B",
    "([A-Z]+)*[0-9]",
    "(\\w+\\d?)+$",
    "(.*A){12}",
    "(?=(A+)+B)[A-Z]+",
    "KA(?:[0-9]+)+AB",
    "A*A*A*A*A*B",
]
#: Formats a site may well write, with the repetition they need, all accepted.
LEGITIMATE = [
    "[A-Z]{2}[0-9]{2}[A-Z]{1,3}[0-9]{4}",
    "(?:[A-Z]{2}|[0-9]{2})[0-9]{4}",
    "(?:[A-Z][0-9]?){3}",
    "(?:AB|AC)+[0-9]{3}",
    "(?=.*[0-9])[A-Z0-9]{2,8}",
    "[A-Z]*[0-9]*",
    "(?:[A-Z]{1,3}){1,3}[0-9]{2}",
]


@pytest.mark.parametrize("pattern", RUNAWAY)
def test_runaway_formats_are_refused_quickly(pattern: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        parse_config({"plates": {"formats": ["in_rto", pattern]}})
    assert time.perf_counter() - started < 0.1
    (line,) = str(error.value).splitlines()
    assert line.startswith(f"plates.formats.1: {pattern!r} can take minutes"), line


@pytest.mark.parametrize("pattern", LEGITIMATE + sorted(PRESETS))
def test_legitimate_formats_and_every_preset_are_accepted_and_fast(pattern: str) -> None:
    config = parse_config({"plates": {"formats": [pattern]}})
    compiled = compile_format(config.plates.formats[0])
    for text in ("A" * 20, "A" * 19 + "!", "1" * 20, "AB" * 10, "KA01AB1234" * 2):
        started = time.perf_counter()
        compiled.fullmatch(text)
        assert time.perf_counter() - started < 0.01, text
