"""Regional plate formats: the presets, several formats at one site, and which one matched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamer.config import CameraConfig
from streamer.config.formats import PRESETS
from streamer.events import PlateEvent
from streamer.reading.ocr import TextRead
from streamer.reading.plates import fix_confusions, format_templates, matched_format, matches_format
from streamer.reporter import TrackReporter
from streamer.sources.frame import Frame
from streamer.stores.checks import PlateChecks
from streamer.stores.dues import SqlDues
from streamer.vision.track import FinishedTrack, PlateCrop

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

#: A site at a border: the neighbours' formats side by side.
BORDER = ["de", "fr", "it", "it_moto", "es", "pl", "gb", "nl"]


@pytest.mark.parametrize("preset", sorted(EXAMPLES))
def test_preset_accepts_its_plates_and_refuses_others(preset: str) -> None:
    accepted, refused = EXAMPLES[preset]
    assert len(accepted) >= 3
    assert len(refused) >= 2
    for plate in accepted:
        assert matches_format(plate, [preset]), plate
    for plate in refused:
        assert not matches_format(plate, [preset]), plate


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


class OneTextEngine:
    """Reads the same text from every crop."""

    name = "one-text"

    def __init__(self, text: str) -> None:
        self.text = text

    def read(self, image: np.ndarray) -> TextRead:
        return TextRead(self.text, 0.95)


@pytest.mark.parametrize(
    ("text", "formats", "expected"),
    [("MAB123E", ["fr", "de"], "de"), ("AB123CD", ["it", "fr"], "it"), ("3479", ["de"], None)],
)
def test_the_event_of_a_vehicle_names_the_format_its_plate_matched(
    tmp_path: Path, text: str, formats: list[str], expected: str | None
) -> None:
    camera = CameraConfig.model_validate(
        {"name": "gate", "source": "x.mp4", "plates": {"formats": formats}}
    )
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    frame = Frame("gate", 0, np.zeros((72, 128, 3), np.uint8), moment, 1.0)
    crops = tuple(
        PlateCrop(np.zeros((20, 80, 3), np.uint8), (10, 10, 90, 30), 0.8, quality, frame)
        for quality in (0.9, 0.8, 0.7)
    )
    dues = SqlDues(tmp_path / "dues.sqlite")
    reporter = TrackReporter(camera, OneTextEngine(text), PlateChecks(dues), None)
    event = reporter.report(FinishedTrack("gate", 1, moment, moment, 12, crops))
    assert isinstance(event, PlateEvent)
    assert (event.plate_number, event.format_valid, event.format) == (
        text,
        expected is not None,
        expected,
    )
    assert event.to_json()["format"] == expected
    assert PlateEvent.from_json(event.to_json()).format == expected
