"""Regional plate formats: the presets, several formats at one site, and which one matched."""

from __future__ import annotations

import pytest

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
