"""From tracks to events: the early rule, the final event, merging repeats, restarts.

The OCR engine is a fake that reads what each crop was made to say, so the rules are
tested on their own; the real engines read real crops in tests/test_read.py.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from streamer.config import CameraConfig, DedupConfig, RecordingsConfig
from streamer.delivery.recordings import EvidenceWriter
from streamer.events import NOT_FOUND, DuesResult, Phase, PlateEvent
from streamer.reading.ocr import TextRead
from streamer.reporter import Deduplicator, Skipped, TrackReporter, finals_of
from streamer.sources.frame import Frame
from streamer.stores.checks import PlateChecks
from streamer.stores.dues import SqlDues
from streamer.stores.records import StoreError
from streamer.vision.track import FinishedTrack, OpenTrack, PlateCrop

from support.disks import fill, tmpfs

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


class ScriptedEngine:
    """Reads the text a crop was made with (see :func:`crop`), counting its reads."""

    name = "scripted"

    def __init__(self) -> None:
        self.texts: dict[int, tuple[str, float]] = {}
        self.reads = 0

    def read(self, image: np.ndarray) -> TextRead:
        self.reads += 1
        return TextRead(*self.texts[id(image)])


def crop(
    engine: ScriptedEngine,
    text: str,
    quality: float,
    confidence: float = 0.95,
    bbox: tuple[int, int, int, int] = (10, 10, 90, 30),
) -> PlateCrop:
    """A crop that the engine reads as ``text``; ``quality`` orders it among the best."""
    image = np.zeros((20, 80, 3), np.uint8)
    engine.texts[id(image)] = (text, confidence)
    frame = Frame("gate", 0, np.zeros((720, 1280, 3), np.uint8), T0, 1.0)
    return PlateCrop(image, bbox, 0.8, quality, frame)


def open_track(*crops: PlateCrop, overdue: bool = False, track_id: int = 1) -> OpenTrack:
    best = tuple(sorted(crops, key=lambda c: -c.quality))
    return OpenTrack("gate", track_id, T0, T0 + timedelta(seconds=1), 5, best, overdue=overdue)


def finished(*crops: PlateCrop, track_id: int = 1) -> FinishedTrack:
    best = tuple(sorted(crops, key=lambda c: -c.quality))
    return FinishedTrack("gate", track_id, T0, T0 + timedelta(seconds=3), 12, best)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def dues(tmp_path: Path) -> SqlDues:
    store = SqlDues(tmp_path / "dues.sqlite")
    store.set("KA01AB1234", 500.0, "Parking fine")
    return store


def reporter(engine: ScriptedEngine, dues: SqlDues, **events: object) -> TrackReporter:
    camera = CameraConfig.model_validate({"name": "gate", "source": "x.mp4", "events": events})
    return TrackReporter(camera, engine, PlateChecks(dues), None)


def test_early_event_once_two_reads_agree_then_final_with_the_same_id(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues)
    first = crop(engine, "KA01AB1234", 0.5)
    assert report.progress(open_track(first)) is None  # one read is not enough
    second = crop(engine, "KA01AB1234", 0.6)
    early = report.progress(open_track(first, second))
    assert isinstance(early, PlateEvent)
    assert (early.plate_number, early.phase) == ("KA01AB1234", Phase.EARLY)
    assert early.dues_result.dues_pending
    assert engine.reads == 2  # each crop read once
    final = report.report(finished(first, second, crop(engine, "KA01AB1234", 0.7)))
    assert isinstance(final, PlateEvent)
    assert (final.event_id, final.phase, final.frames) == (early.event_id, Phase.FINAL, 12)
    assert final.previous_plate_number is None
    assert engine.reads == 3  # only the new crop was read for the final vote


def test_reads_that_disagree_wait_until_the_vehicle_is_overdue(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues, max_event_delay_s=3)
    crops = [crop(engine, "KA01AB1234", 0.7), crop(engine, "KA01AB1284", 0.6)]
    assert report.progress(open_track(*crops)) is None
    early = report.progress(open_track(*crops, overdue=True))
    assert isinstance(early, PlateEvent)
    assert early.phase == Phase.EARLY
    assert early.plate_number in {"KA01AB1234", "KA01AB1284"}


def test_a_final_read_that_differs_names_the_early_one(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues, early_confidence=0.5)
    wrong = [crop(engine, "KA01AB1284", 0.3), crop(engine, "KA01AB1284", 0.2)]
    early = report.progress(open_track(*wrong))
    assert isinstance(early, PlateEvent)
    assert not early.dues_result.found  # the misread plate has no record
    better = [crop(engine, "KA01AB1234", q) for q in (0.9, 0.8, 0.7)]
    final = report.report(finished(*wrong, *better))
    assert isinstance(final, PlateEvent)
    assert final.event_id == early.event_id
    assert (final.plate_number, final.previous_plate_number) == ("KA01AB1234", "KA01AB1284")
    assert final.dues_result.dues_pending  # looked up again for the corrected plate


def test_a_vehicle_read_early_keeps_its_plate_when_the_final_crops_read_nothing(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues)
    read = [crop(engine, "KA01AB1234", 0.3), crop(engine, "KA01AB1234", 0.2)]
    early = report.progress(open_track(*read))
    assert isinstance(early, PlateEvent)
    blank = [crop(engine, "", q) for q in (0.9, 0.8, 0.7)]
    final = report.report(finished(*read, *blank))
    assert isinstance(final, PlateEvent)
    assert (final.event_id, final.plate_number, final.phase) == (
        early.event_id,
        "KA01AB1234",
        Phase.FINAL,
    )


def test_a_repeat_is_merged_early_and_gives_no_final(engine: ScriptedEngine, dues: SqlDues) -> None:
    report = reporter(engine, dues)
    first = [crop(engine, "KA01AB1234", q) for q in (0.5, 0.4)]
    assert isinstance(report.progress(open_track(*first, track_id=1)), PlateEvent)
    assert isinstance(report.report(finished(*first, track_id=1)), PlateEvent)
    again = [crop(engine, "KA01AB1234", q) for q in (0.5, 0.4)]
    assert report.progress(open_track(*again, track_id=2)) is Skipped.MERGED
    assert report.report(finished(*again, track_id=2)) is Skipped.MERGED


def test_without_early_events_a_track_gives_one_final_event(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues, early=False)
    event = report.report(finished(*(crop(engine, "KA01AB1234", q) for q in (0.5, 0.4))))
    assert isinstance(event, PlateEvent)
    assert event.phase == Phase.FINAL
    unread = report.report(finished(crop(engine, "", 0.5), track_id=2))
    assert isinstance(unread, PlateEvent)
    assert (unread.plate_number, unread.reason, unread.phase) == (None, "unreadable", Phase.FINAL)


def test_an_unread_plate_is_reported_once_overdue_and_its_final_keeps_the_id(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues)
    unread = [crop(engine, "", q) for q in (0.5, 0.4)]
    assert report.progress(open_track(*unread)) is None  # not overdue yet: it may be read
    early = report.progress(open_track(*unread, overdue=True))
    assert isinstance(early, PlateEvent)
    assert (early.plate_number, early.reason, early.phase) == (None, "unreadable", Phase.EARLY)
    assert (early.dues_result.dues_pending, early.lists.lists) == (False, ())
    final = report.report(finished(*unread))
    assert isinstance(final, PlateEvent)
    assert (final.event_id, final.plate_number, final.phase) == (early.event_id, None, Phase.FINAL)


def test_an_unread_plate_too_small_to_read_or_with_unreadable_off_gives_no_event(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    off = reporter(engine, dues, unreadable=False)
    assert off.report(finished(crop(engine, "", 0.5))) is Skipped.UNREADABLE
    small = crop(engine, "", 0.5, bbox=(10, 10, 50, 20))
    assert reporter(engine, dues).report(finished(small, track_id=2)) is Skipped.UNREADABLE


def test_finals_of_early_events_a_restart_left_open(dues: SqlDues) -> None:
    early = PlateEvent(
        "gate", "KA01AB1234", 0.9, 0.8, (1, 2, 3, 4), T0, T0, 1.0, 4, True,
        dues.lookup("KA01AB1235"), phase=Phase.EARLY,
    )  # fmt: skip
    (final,) = finals_of([early.to_json(), {"event_id": "broken"}], PlateChecks(dues))
    assert (final.event_id, final.phase, final.plate_number) == (
        early.event_id,
        Phase.FINAL,
        "KA01AB1234",
    )
    assert final.dues_result.dues_pending  # looked up again
    assert PlateEvent.from_json(final.to_json()) == final


@pytest.mark.parametrize(("gap_s", "new_event"), [(5, False), (59, False), (61, True)])
def test_repeat_within_window_is_merged(gap_s: float, new_event: bool) -> None:
    dedup = Deduplicator(DedupConfig(window_s=60))
    assert dedup.admit("KA01AB1234", T0, T0 + timedelta(seconds=3))
    again = T0 + timedelta(seconds=3 + gap_s)
    assert dedup.admit("KA01AB1234", again, again + timedelta(seconds=1)) is new_event
    assert dedup.admit("MH12DE1433", again, again)  # another plate is unaffected


def test_a_short_track_gets_a_final_event_only_after_an_early_one(
    engine: ScriptedEngine, dues: SqlDues
) -> None:
    report = reporter(engine, dues)
    reads = [crop(engine, "KA01AB1234", q) for q in (0.5, 0.4)]
    short = FinishedTrack("gate", 1, T0, T0 + timedelta(seconds=1), 2, tuple(reads))
    assert report.report(short) is Skipped.SHORT  # no early event: noise, as before
    early = report.progress(open_track(*reads, track_id=2))
    assert isinstance(early, PlateEvent)
    final = report.report(replace(short, track_id=2))
    assert isinstance(final, PlateEvent)
    assert (final.event_id, final.phase) == (early.event_id, Phase.FINAL)


class Unreachable:
    """Dues whose database is away, until ``back``."""

    def __init__(self) -> None:
        self.back = False

    def lookup(self, plate: str) -> DuesResult:
        if not self.back:
            raise StoreError("cluster.database: postgresql://streamer:***@db/streamer: gone")
        return NOT_FOUND


def test_an_outage_of_the_dues_is_logged_once_and_its_end_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dues = Unreachable()
    checks = PlateChecks(dues)
    with caplog.at_level(logging.INFO, logger="streamer.stores.checks"):
        for plate in ("KA01AB1234", "KA01AB1234", "MH12XY7395"):
            result = checks.check(plate)
            assert result.dues_result.message.startswith("Dues not checked: cluster.database")
        dues.back = True
        assert checks.check("KA01AB1234").dues_result == NOT_FOUND
        checks.check("KA01AB1234")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 2
    assert lines[0].startswith("KA01AB1234: dues and lists not checked")
    assert lines[1] == "dues and lists: checked again"


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


def test_a_final_event_whose_images_cannot_be_written_names_the_early_ones(
    tmp_path: Path, engine: ScriptedEngine, dues: SqlDues
) -> None:
    """The evidence disk (a 1 MB tmpfs) fills after a vehicle's early event: its final
    event names the early event's images, which are still there."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        camera = CameraConfig.model_validate({"name": "gate", "source": "x.mp4"})
        evidence = EvidenceWriter(RecordingsConfig(directory=disk))
        report = TrackReporter(camera, engine, PlateChecks(dues), evidence)
        crops = [crop(engine, "KA01AB1234", quality) for quality in (0.5, 0.6)]
        early = report.progress(open_track(*crops))
        assert isinstance(early, PlateEvent)
        assert early.crop_path is not None
        assert early.snapshot_path is not None
        fill(disk)
        best = crop(engine, "KA01AB1234", 0.7)  # its frame makes a larger JPEG than theirs
        noise = np.random.default_rng(1).integers(0, 255, best.frame.image.shape, np.uint8)
        best = replace(best, frame=replace(best.frame, image=noise))
        final = report.report(finished(*crops, best))
        assert isinstance(final, PlateEvent)
        assert (final.crop_path, final.snapshot_path) == (early.crop_path, early.snapshot_path)
        assert Path(early.crop_path).stat().st_size > 0
        assert Path(early.snapshot_path).stat().st_size > 0
