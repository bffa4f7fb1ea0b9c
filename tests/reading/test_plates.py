"""Plate normalisation and regional formats."""

from __future__ import annotations

import time

import pytest

from streamer.config.formats import PRESETS, compile_format
from streamer.reading.plates import (
    fix_confusions,
    format_templates,
    matched_format,
    matches_format,
    normalise,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ka-01 ab 1234", "KA01AB1234"), ("34A-368.37", "34A36837"), (" \n", ""), ("ÄB 12", "B12")],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("plate", "preset", "valid"),
    [
        ("KA01AB1234", "in_rto", True),
        ("DL3CAB1234", "in_rto", True),
        ("MH12DE1433", "in_rto", True),
        ("22BH1234AA", "in_rto", True),
        ("KA01AB12345", "in_rto", False),
        ("K01AB1234", "in_rto", False),
        ("AA1234BB", "ua", True),
        ("AA12345B", "ua", False),
        ("ABC1D23", "br", True),
        ("ABC1234", "br", True),
        ("34A36837", "vn", True),
        ("89C20339", "vn", True),
        ("XX999X", "nl", True),
        ("7ABC123", "us", True),
        ("ABCDEFG", "us", False),
    ],
)
def test_presets(plate: str, preset: str, valid: bool) -> None:
    assert matches_format(plate, [preset]) is valid


def test_custom_regex_and_unknown_entries() -> None:
    assert matches_format("AB123", [r"[A-Z]{2}[0-9]{3}"])
    assert not matches_format("AB1234", [r"[A-Z]{2}[0-9]{3}"])
    with pytest.raises(ValueError, match="neither a preset"):
        compile_format("(")
    assert set(PRESETS) >= {"in_rto", "eu", "us", "nl", "br"}


@pytest.mark.parametrize(
    ("read", "formats", "fixed"),
    [
        ("KAO1AB1Z34", ["in_rto"], "KA01AB1234"),  # O->0 and Z->2 where digits must be
        ("MH12DEI433", ["in_rto"], "MH12DE1433"),
        ("AA1234B8", ["ua"], "AA1234BB"),  # 8->B where a letter must be
        ("A8C1D23", ["br"], "ABC1D23"),
        ("KA01AB1234", ["in_rto"], "KA01AB1234"),  # valid already: untouched
        ("XYZ", ["in_rto"], "XYZ"),  # no format fits: untouched
        ("5AOJ230", ["us"], "5AOJ230"),  # the US format fixes no position
        ("8HC20339", ["vn"], "8HC20339"),  # H is not confusable with a digit
    ],
)
def test_fix_confusions(read: str, formats: list[str], fixed: str) -> None:
    assert fix_confusions(read, formats) == fixed


@pytest.mark.parametrize("entry", ["[A-Z]{1000000000}", "[A-Z]{0,4294967294}", "[0-9]{2,40}"])
def test_formats_too_rich_to_expand_cost_no_time_or_memory(entry: str) -> None:
    started = time.perf_counter()
    assert len(fix_confusions("KAO1", [entry])) == 4
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("preset", sorted(set(PRESETS) - {"nl", "us"}))
def test_presets_expand_to_templates_so_confusions_can_be_fixed(preset: str) -> None:
    assert format_templates(PRESETS[preset])


def test_a_class_narrower_than_a_to_z_expands_as_letters_or_digits() -> None:
    assert format_templates("[BCD]{2}[0-9]") == [["LLD"]]
    assert format_templates("[0-4]E?|[A-C0-9]") == [["D", "DE"], ["X"]]
    assert format_templates("[Z-A]") is None  # not a valid class


@pytest.mark.parametrize(
    ("read", "formats", "fixed"),
    [
        ("8MW1234", ["de"], "BMW1234"),  # 8->B where a German district letter must be
        ("MAB12ZE", ["de"], "MAB122E"),
        ("AB1Z3CD", ["fr"], "AB123CD"),
        ("1Z34BCD", ["es"], "1234BCD"),
        ("12348CD", ["es"], "1234BCD"),  # 8->B: a consonant
        ("1234BC0", ["es"], "1234BC0"),  # 0->O gives a vowel, which Spain does not use
        ("A812CDE", ["gb"], "AB12CDE"),
        ("AB1Z345", ["it_moto"], "AB12345"),
        ("7A8C123", ["us_ca"], "7ABC123"),
        ("ABCDI2", ["us_fl"], "ABCD12"),
        # the letter/digit border of a German plate moves: BMW 1234 or BMWI Z34 alike
        ("BMW1Z34", ["de"], "BMW1Z34"),
    ],
)
def test_fix_confusions_in_the_new_presets(read: str, formats: list[str], fixed: str) -> None:
    assert fix_confusions(read, formats) == fixed


@pytest.mark.parametrize(
    ("read", "fixed"),
    [
        ("8MW1234", "BMW1234"),  # only a German plate fits with one swap
        ("AB1Z3CD", "AB123CD"),  # French and Italian alike: one plate, so it is fixed
        ("12348CD", "1234BCD"),  # only a Spanish plate fits
        ("A812CDE", "AB12CDE"),  # only a British plate fits
        ("KRA1ZAC", "KRA12AC"),
        ("6M456XY", "GM456XY"),
    ],
)
def test_at_a_border_site_an_unambiguous_read_is_fixed(read: str, fixed: str) -> None:
    assert not matches_format(read, BORDER)
    assert fix_confusions(read, BORDER) == fixed


@pytest.mark.parametrize(
    ("read", "readings"),
    [
        ("8B12BCD", {"es": "8812BCD", "gb": "BB12BCD"}),  # Spanish or British, one swap each
        ("1Z34BCD", {"es": "1234BCD", "gb": "IZ34BCD"}),
        ("MAB12ZE", {"de": "MAB122E", "fr": "MA812ZE"}),  # German E plate or French
        ("WA1Z345", {"pl": "WA12345", "it_moto": "WA12345", "de": "WAIZ345"}),
    ],
)
def test_at_a_border_site_an_ambiguous_read_is_left_alone(
    read: str, readings: dict[str, str]
) -> None:
    assert not matches_format(read, BORDER)
    assert fix_confusions(read, BORDER) == read
    for preset, fixed in readings.items():  # each format alone would fix it its own way
        assert fix_confusions(read, [preset]) == fixed


def test_one_format_can_be_ambiguous_too() -> None:
    # the letters of a German plate may run on: B MW 1234 and B MWI Z34 are one swap away
    assert fix_confusions("BMW1Z34", ["de"]) == "BMW1Z34"
    assert fix_confusions("BMW12Z4", ["de"]) == "BMW1224"


def test_with_every_preset_configured_a_fix_still_needs_one_best_plate() -> None:
    everything = [name for name in PRESETS if name != "us"]  # "us" accepts nearly anything
    assert fix_confusions("8B12BCD", everything) == "8B12BCD"
    assert fix_confusions("6M456XY", everything) == "GM456XY"
    assert fix_confusions("8B12BCD", [*everything, "us"]) == "8B12BCD"  # valid as it is


def test_matched_format_names_the_first_configured_format_that_fits() -> None:
    assert matched_format("MAB123E", ["fr", "de"]) == "de"
    assert matched_format("AB123CD", ["it", "fr"]) == "it"  # the same text in both
    assert matched_format("AB123CD", ["fr", "it"]) == "fr"
    assert matched_format("7ABC123", ["us_ca", "us"]) == "us_ca"
    assert matched_format("7ABC123", ["us", "us_ca"]) == "us"
    assert matched_format("XY123", ["fr", r"[A-Z]{2}[0-9]{3}"]) == r"[A-Z]{2}[0-9]{3}"
    assert matched_format("XYZ", ["de", "fr"]) is None
    assert matched_format("XYZ", []) is None


#: A site at a border: the neighbours' formats side by side.
BORDER = ["de", "fr", "it", "it_moto", "es", "pl", "gb", "nl"]
