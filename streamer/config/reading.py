"""Settings of plate reading: the OCR engine, plate formats, merging repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from streamer.config.backtracking import MAX_TEXT
from streamer.config.base import Section
from streamer.config.formats import compile_format


def _known_format(entry: str) -> str:
    compile_format(entry)
    return entry


#: A plate format: a preset's name, or a regex that compiles and cannot run away.
PlateFormat = Annotated[str, AfterValidator(_known_format)]


class ReaderConfig(Section):
    """OCR of a finished track's best crops."""

    engine: Literal["paddle", "plate", "fused", "tesseract"] = Field(
        "fused",
        description="OCR engine: 'paddle' (PP-OCRv4, a generic text recogniser, on OpenVINO); "
        "'plate' (the project's own recogniser, trained on plates: several times faster, "
        "reads two-line plates in order); 'fused' (the plate recogniser, and PP-OCRv4 too "
        "only where it is unsure, decided per character by confidence and fit to "
        "plates.formats); or 'tesseract' (Debian's Tesseract), which reads far fewer plates "
        "exactly. The model and accuracy page compares them.",
    )
    crops: int = Field(
        3,
        ge=1,
        le=50,
        description="How many of the best crops are read; the reads vote on the plate text.",
    )
    tessdata: Path | None = Field(
        None, description="Tesseract language data folder. Empty: found automatically."
    )
    min_confidence: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Reads whose OCR confidence (0..1) is below this are discarded.",
    )


class PlatesConfig(Section):
    """What counts as a plate number."""

    formats: list[PlateFormat] = Field(
        default_factory=lambda: ["in_rto"],
        description="Plate formats: preset names (see streamer.config.formats.PRESETS) or regular "
        "expressions on the normalised text. A read matching one has format_valid: true.",
    )
    require_valid_format: bool = Field(
        False, description="Drop reads that match no configured format instead of flagging them."
    )
    min_length: int = Field(4, ge=1, le=MAX_TEXT, description="Shortest plate text accepted.")
    max_length: int = Field(10, ge=1, le=MAX_TEXT, description="Longest plate text accepted.")

    @model_validator(mode="after")
    def _lengths_ordered(self) -> PlatesConfig:
        if self.min_length > self.max_length:
            raise ValueError(
                f"min_length ({self.min_length}) must not exceed max_length ({self.max_length})"
            )
        return self


class DedupConfig(Section):
    """Merging repeats of one plate on one camera."""

    window_s: float = Field(
        60.0,
        ge=0.0,
        le=86_400,
        description="A plate seen again on the same camera within this many seconds of its "
        "last sighting is merged into the first event instead of giving a new one.",
    )


class EventsConfig(Section):
    """When a vehicle is reported: early, while it is still in view, and finally when its
    track ends (both with the same event_id)."""

    early: bool = Field(
        True,
        description='Emit an early event ("phase": "early") as soon as the reads of a '
        "track agree, while the vehicle is still in view; its final event follows with the "
        "same event_id when the track ends. Off: one event per vehicle, when it has left.",
    )
    early_reads: int = Field(
        2,
        ge=1,
        le=20,
        description="Reads of the track's best crops that must give the same plate before "
        "the early event. 1 alerts sooner; 2 rarely reports a plate the final vote changes.",
    )
    early_confidence: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="...and the confidence of their vote must be at least this (it falls "
        "with any disagreement between the reads).",
    )
    max_event_delay_s: float = Field(
        3.0,
        gt=0,
        le=3600,
        description="A vehicle in view this long is reported early with its best read so "
        "far, even when the reads do not agree yet, so an alert never waits for it to leave.",
    )
    unreadable: bool = Field(
        True,
        description="Report vehicles whose plate cannot be read (plate_number null, reason "
        "'unreadable': a plate box no read agrees on; 'no plate': a vehicle with no plate box "
        "at all), as soon as they have been in view max_event_delay_s. Off: such vehicles "
        "give no event, as before.",
    )
