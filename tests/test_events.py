"""Events: the JSON shape, and the events log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamer.delivery.jsonlines import JsonLinesSink
from streamer.events import NOT_FOUND, PlateEvent

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_event_json_has_the_documented_keys() -> None:
    event = PlateEvent(
        "gate-1",
        "KA01AB1234",
        0.91,
        0.8,
        (1, 2, 3, 4),
        T0,
        T0 + timedelta(seconds=2),
        12.5,
        40,
        True,
        NOT_FOUND,
    )
    data = event.to_json()
    assert set(data) >= {
        "event_id",
        "camera",
        "plate_number",
        "confidence",
        "detector_confidence",
        "bbox",
        "first_seen",
        "last_seen",
        "media_time_s",
        "frames",
        "format_valid",
        "dues_result",
        "crop_path",
        "snapshot_path",
    }
    assert data["first_seen"] == "2026-01-01T12:00:00.000Z"
    assert data["bbox"] == [1, 2, 3, 4]
    assert data["dues_result"] == {
        "found": False,
        "dues_pending": False,
        "amount": 0.0,
        "message": "No record found",
    }


def test_events_log_rotates_by_size(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    sink = JsonLinesSink(log, max_bytes=2000, backups=2)
    event = PlateEvent(
        "gate-1", "KA01AB1234", 0.91, 0.8, (1, 2, 3, 4), T0, T0, 1.0, 4, True, NOT_FOUND
    )
    for _ in range(20):
        sink.send(event)
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 2000
        for line in path.read_text().splitlines():
            assert json.loads(line)["plate_number"] == "KA01AB1234"


def test_event_json_names_the_format_and_reads_back_without_one() -> None:
    event = PlateEvent(
        "gate-1",
        "MAB123E",
        0.91,
        0.8,
        (1, 2, 3, 4),
        T0,
        T0,
        None,
        12,
        True,
        NOT_FOUND,
        format="de",
    )
    data = event.to_json()
    keys = list(data)
    assert keys[keys.index("format_valid") + 1] == "format"
    assert data["format"] == "de"
    assert PlateEvent.from_json(json.loads(json.dumps(data))) == event
    # a line written before formats were named has no "format"
    del data["format"]
    assert PlateEvent.from_json(data).format is None
    assert PlateEvent.from_json(data).to_json()["format"] is None
