"""Reading a track's plate: each of its best crops is read, and the reads vote.

The :class:`PlateReader` of a camera reads the best crops of a finished track with the
shared :class:`~streamer.reading.ocr.OcrEngine`, normalises and checks the text, and lets the reads
vote, so one bad frame does not decide the plate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamer.config import PlatesConfig, ReaderConfig
from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.plates import (
    edit_distance,
    fix_confusions,
    matched_format,
    matches_format,
    normalise,
)
from streamer.vision.track import PlateCrop

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlateRead:
    """The agreed plate text of a track.

    Attributes:
        text: normalised plate number.
        confidence: OCR confidence 0..1, scaled by how much the reads agreed.
        format_valid: whether ``text`` matches one of the configured formats.
        format: the first configured format ``text`` matches (a preset's name, or the regex
            itself), ``None`` when it matches none.
        crop: the best crop that read ``text`` (evidence and bbox come from it).
        votes: each crop's normalised read, best crop first ("" where nothing was read).
    """

    text: str
    confidence: float
    format_valid: bool
    format: str | None
    crop: PlateCrop
    votes: tuple[str, ...]


def vote(reads: Sequence[TextRead], formats: Sequence[str]) -> tuple[str, float] | None:
    """Agree on one plate from several normalised reads of the same vehicle.

    1. Reads within a quarter of their length in edit distance of each other form a group;
       the group with the most weight wins (weight: confidence, doubled for a read that
       matches a configured format), so one stray read does not decide.
    2. Within it, the reads of the most common length vote character by character,
       weighted likewise, so three reads that each got a different character wrong still
       agree on the right plate.

    The confidence is the voters' mean confidence times the winning group's share of all
    weight times the mean agreement per character: any disagreement lowers it.
    """
    usable = [read for read in reads if read.text]
    if not usable:
        return None

    def weight(read: TextRead) -> float:
        bonus = 2.0 if matches_format(read.text, formats) else 1.0
        return bonus * max(read.confidence, 0.01)

    groups: list[list[TextRead]] = []
    for read in sorted(usable, key=weight, reverse=True):
        for group in groups:
            if edit_distance(read.text, group[0].text) <= max(1, len(group[0].text) // 4):
                group.append(read)
                break
        else:
            groups.append([read])
    group = max(groups, key=lambda g: sum(weight(r) for r in g))
    share = sum(weight(r) for r in group) / sum(weight(r) for r in usable)

    by_length: dict[int, float] = defaultdict(float)
    for read in group:
        by_length[len(read.text)] += weight(read)
    length = max(by_length, key=lambda n: by_length[n])
    voters = [read for read in group if len(read.text) == length]
    characters, agreement = [], []
    for position in range(length):
        tally: dict[str, float] = defaultdict(float)
        for read in voters:
            tally[read.text[position]] += weight(read)
        best = max(tally, key=lambda c: tally[c])
        characters.append(best)
        agreement.append(tally[best] / sum(tally.values()))
    mean = sum(read.confidence for read in voters) / len(voters)
    return "".join(characters), round(mean * share * sum(agreement) / length, 3)


def zeros_for_letter_o(plate: str, formats: Sequence[str]) -> str:
    """``plate`` with each letter O read as the digit 0, when that makes a plate matching
    no format match one; else ``plate`` unchanged.

    Many plate fonts draw O and 0 alike, and some formats only say that a digit is needed
    somewhere (the ``us`` preset), so :func:`~streamer.reading.plates.fix_confusions`,
    which swaps by position, cannot decide it.

    Example:
        >>> zeros_for_letter_o("COUGAR", ["us"])
        'C0UGAR'
    """
    if "O" not in plate or matches_format(plate, formats):
        return plate
    zeros = plate.replace("O", "0")
    return zeros if matches_format(zeros, formats) else plate


class PlateReader:
    """Reads a finished track's plate for one camera's reader and plate settings."""

    def __init__(self, engine: OcrEngine, reader: ReaderConfig, plates: PlatesConfig) -> None:
        self.engine = engine
        self.reader = reader
        self.plates = plates

    def read_crop(self, crop: np.ndarray) -> TextRead:
        """One crop's normalised read; empty when too short, too long or too unsure."""
        raw = self.engine.read(crop)
        text = normalise(raw.text)
        # Bounded before any format sees it: OCR may return a page of garbage, and a
        # format's cost grows with the text (the swaps below keep its length).
        if (
            raw.confidence < self.reader.min_confidence
            or not self.plates.min_length <= len(text) <= self.plates.max_length
        ):
            return TextRead("", raw.confidence)
        text = fix_confusions(text, self.plates.formats)
        return TextRead(zeros_for_letter_o(text, self.plates.formats), raw.confidence)

    def read(self, crops: Sequence[PlateCrop]) -> PlateRead | None:
        """The agreed plate of the best ``reader.crops`` crops, or ``None`` if unreadable."""
        chosen = list(crops[: self.reader.crops])
        return self.agree(chosen, [self.read_crop(crop.image) for crop in chosen])

    def agree(self, chosen: Sequence[PlateCrop], reads: Sequence[TextRead]) -> PlateRead | None:
        """The plate that the reads of ``chosen`` crops (one each, in order) agree on, or
        ``None`` if there is none."""
        agreed = vote(reads, self.plates.formats)
        if agreed is None:
            return None
        text, confidence = agreed
        matched = matched_format(text, self.plates.formats)
        valid = matched is not None
        if self.plates.require_valid_format and not valid:
            return None
        # The vote is per character, so the agreed text may be no single read's: the
        # evidence crop is the one whose read is closest to it (best crop on a tie).
        best = min(
            zip(chosen, reads, strict=True), key=lambda pair: edit_distance(pair[1].text, text)
        )[0]
        return PlateRead(text, confidence, valid, matched, best, tuple(read.text for read in reads))
