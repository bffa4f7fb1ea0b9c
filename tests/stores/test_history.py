"""Recent events: one record per vehicle, its final event in the place of its early one."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from streamer.events import Phase
from streamer.stores.history import EventHistory

from support.factories import make_event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_final_event_takes_the_place_of_its_early_one(tmp_path: Path) -> None:
    history = EventHistory(10, tmp_path)
    first = make_event("KA01AB1234", phase=Phase.EARLY)
    second = make_event("MH12CD5678", phase=Phase.EARLY)
    history.send(first)
    history.send(second)
    history.send(
        replace(
            first, plate_number="KA01AB1284", phase=Phase.FINAL, previous_plate_number="KA01AB1234"
        )
    )
    page, total = history.query(None, None, None, 10, 0)
    assert total == 2
    assert [(e["plate_number"], e["phase"]) for e in page] == [
        ("MH12CD5678", "early"),  # newest first
        ("KA01AB1284", "final"),
    ]
    assert page[1]["previous_plate_number"] == "KA01AB1234"


def test_loaded_from_the_log_one_record_per_vehicle(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    early = make_event("KA01AB1234", phase=Phase.EARLY)
    lines = [early.to_json(), replace(early, phase=Phase.FINAL).to_json()]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    history = EventHistory(10, tmp_path)
    history.load(log)
    page, total = history.query(None, None, None, 10, 0)
    assert total == 1
    assert page[0]["phase"] == "final"
