"""Plate normalisation and regional formats."""

from __future__ import annotations

import time

import pytest

from streamer.config.formats import PRESETS, compile_format
from streamer.reading.plates import fix_confusions, matches_format, normalise


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
