"""Synthetic plates and the training data: formats, determinism, rows folded as drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer.reading.plates import PRESETS, matches_format
from streamer.reading.recogniser import row_split
from streamer.training.data import held_out, synthetic, synthetic_sample
from streamer.training.designs import DESIGNS, render_plate
from streamer.training.draw import FONT_PACKAGES
from streamer.training.scene import photograph, rephotograph
from streamer.training.texts import REGIONS, fill, label_of

#: The regions whose numbers are also numbers of another preset.
ALSO = {"gb": ["gb", "gb_old"]}


@pytest.mark.parametrize("region", sorted(set(REGIONS) & set(PRESETS)))
def test_every_pattern_gives_numbers_of_its_preset(region: str) -> None:
    rng = np.random.default_rng(1)
    spec = REGIONS[region]
    formats = ALSO.get(region, [region])
    for pattern in spec.patterns:
        for _ in range(10):
            assert matches_format(label_of(fill(pattern, rng, spec.letters)), formats), pattern
    for top, bottom in spec.rows:
        label = label_of(fill(top, rng, spec.letters) + fill(bottom, rng, spec.letters))
        assert matches_format(label, formats), (top, bottom)


def test_a_sample_is_the_same_whenever_it_is_drawn() -> None:
    first = synthetic_sample(5, 17)
    again = synthetic_sample(5, 17)
    assert first[1:] == again[1:]
    assert np.array_equal(first[0], again[0])
    assert not np.array_equal(first[0], synthetic_sample(5, 18)[0])


def test_worker_processes_make_the_same_set() -> None:
    alone, shared = synthetic(3, 24, workers=1, chunk=10), synthetic(3, 24, workers=2, chunk=10)
    assert alone.labels == shared.labels
    assert np.array_equal(alone.images, shared.images)


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_each_design_draws_a_plate_and_a_crop(design: str) -> None:
    rng = np.random.default_rng(4)
    plate = render_plate(rng, design)
    assert len(plate.label) >= 2
    assert plate.two_rows == ("two_rows" in design)
    crop = photograph(plate, rng)
    assert crop.dtype == np.uint8
    assert crop.ndim == 3
    assert min(crop.shape[:2]) >= 4


def test_rows_are_found_on_most_drawn_plates() -> None:
    """The folding finds the two rows of clean two-row plates and leaves one-row plates."""
    rng = np.random.default_rng(9)
    right = 0
    for index in range(40):
        plate = render_plate(rng, "vn_two_rows" if index % 2 else "us")
        image = (plate.image * 255).astype(np.uint8)
        grey = image.mean(axis=2).astype(np.uint8)
        right += (row_split(grey) is not None) == plate.two_rows
    assert right >= 36


def test_a_real_crop_photographed_again_keeps_its_size_about() -> None:
    rng = np.random.default_rng(2)
    crop = np.full((60, 200, 3), 200, np.uint8)
    again = rephotograph(crop, rng)
    assert again.ndim == 3
    assert 40 <= again.shape[1] <= 240


def test_a_tenth_of_the_brazilian_crops_is_held_out() -> None:
    names = [f"camera-{index:05d}.jpg" for index in range(2000)]
    share = sum(map(held_out, names)) / len(names)
    assert 0.08 <= share <= 0.12
    assert held_out(names[0]) == held_out(names[0])


def test_the_test_set_up_installs_every_plate_font_package() -> None:
    """`make setup-test` installs the Debian packages the renderer draws plates in."""
    bootstrap = (Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh").read_text()
    assert all(package in bootstrap for package in FONT_PACKAGES.split())
