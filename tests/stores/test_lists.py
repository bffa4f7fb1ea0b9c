"""Plate lists: the store (on SQLite and on PostgreSQL), the CLI, the HTTP API."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from streamer.config import ConfigError, parse_config
from streamer.events import ListMatch
from streamer.node import ServiceOptions, StartupError
from streamer.service import Service
from streamer.stores.database import Database
from streamer.stores.lists import NEVER, ListError, SqlLists, expiry

from support.daemon import make_config

DECLARED: dict[str, Path | None] = {"residents": None, "staff": None, "banned": None}


@pytest.fixture
def lists(store_database: Database) -> SqlLists:
    store = SqlLists(store_database, DECLARED)
    store.add("residents", "KA01AB1234", "flat 4")
    store.add("staff", "ka-01-ab-1234")
    store.add("banned", "MH12XY7395", "stolen, report to police")
    return store


def test_a_plate_is_on_every_list_that_has_it_exactly(lists: SqlLists) -> None:
    assert lists.lookup("KA 01 AB 1234") == ListMatch(("residents", "staff"))
    assert lists.lookup("MH12XY7395").lists == ("banned",)
    assert lists.lookup("TN09CK2046") == ListMatch()


@pytest.mark.parametrize(
    ("read", "possible"),
    [
        ("MH12XY7396", (("banned", "MH12XY7395"),)),  # one substitution
        ("MH12XY795", (("banned", "MH12XY7395"),)),  # one character missed
        ("MH12XY73950", (("banned", "MH12XY7395"),)),  # one character too many
        ("MHI2XY7395", (("banned", "MH12XY7395"),)),  # I read for 1
        ("MH12XY7385", (("banned", "MH12XY7395"),)),
        ("MH12XZ7396", ()),  # two slips: nothing
    ],
)
def test_one_slip_from_a_listed_plate_is_possible_never_a_match(
    lists: SqlLists, read: str, possible: tuple[tuple[str, str], ...]
) -> None:
    match = lists.lookup(read)
    assert match.lists == ()
    assert match.possible == possible


def test_two_listed_plates_one_slip_away_name_neither(lists: SqlLists) -> None:
    lists.add("banned", "MH12XY7397")
    assert lists.lookup("MH12XY7396") == ListMatch()


def test_an_expired_entry_matches_nothing_but_is_kept(lists: SqlLists) -> None:
    lists.add("residents", "DL07CR6158", "moved out", expires="2020-01-31")
    lists.add("staff", "DL07CR6158", expires=(datetime.now() + timedelta(hours=1)).isoformat())
    assert lists.lookup("DL07CR6158").lists == ("staff",)
    (entry,) = [e for e in lists.entries("residents") if e.plate == "DL07CR6158"]
    assert entry.expired
    assert entry.note == "moved out"
    assert lists.counts() == {"residents": 1, "staff": 2, "banned": 1}


def test_a_date_expires_at_the_end_of_that_day() -> None:
    end = expiry("2030-06-15")
    assert end == datetime(2030, 6, 16).timestamp()
    assert (
        expiry("2030-06-15T08:00:00+00:00")
        == datetime.fromisoformat("2030-06-15T08:00:00+00:00").timestamp()
    )
    assert expiry("") is None
    with pytest.raises(ListError, match="not a date"):
        expiry("next week")


#: Moments outside the years 1 to 9999 once in UTC, which no entry could be shown with.
UNSHOWABLE = ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:59:59+01:00"]


@pytest.mark.parametrize("expires", UNSHOWABLE)
def test_an_expiry_outside_the_calendar_is_refused_and_nothing_stored(
    lists: SqlLists, tmp_path: Path, expires: str
) -> None:
    before = lists.entries("residents")
    with pytest.raises(
        ListError, match=rf"^expires: '{re.escape(expires)}' is outside the years 1 to 9999"
    ):
        lists.add("residents", "DL07CR6158", expires=expires)
    csv = tmp_path / "list.csv"
    csv.write_text(f"plate,expires\nTN09CK2046,\nDL07CR6158,{expires}\n")
    with pytest.raises(
        ListError, match=rf"list\.csv:3: expires: '{re.escape(expires)}' is outside"
    ):
        lists.import_csv("residents", csv)
    assert lists.entries("residents") == before
    assert [entry.to_json() for entry in before]  # the list can still be read


def test_9999_12_31_means_never(lists: SqlLists) -> None:
    assert expiry(NEVER) is None
    entry = lists.add("residents", "DL07CR6158", expires="9999-12-31")
    assert (entry.expires_at, entry.expired, entry.to_json()["expires"]) == (None, False, None)
    assert lists.lookup("DL07CR6158").lists == ("residents",)


def test_an_entry_stored_outside_the_calendar_can_still_be_read(
    lists: SqlLists, store_database: Database
) -> None:
    with store_database.connect() as connection:  # as a version before the check let in
        connection.execute(
            "UPDATE list_entries SET expires_at = ? WHERE plate = ?",
            (-62135600400.0, "KA01AB1234"),
        )
    (entry,) = [e for e in lists.entries("residents") if e.plate == "KA01AB1234"]
    assert entry.expired
    assert entry.to_json()["expires"] == "0001-01-01T00:00:00Z"


def test_a_plate_on_several_lines_counts_once_and_the_last_line_wins(
    lists: SqlLists, tmp_path: Path
) -> None:
    csv = tmp_path / "list.csv"
    csv.write_text("plate,note\nTN09CK2046,first\nDL07CR6158,\ntn-09 ck 2046,last\n")
    assert lists.import_csv("residents", csv) == 2
    assert {e.plate: e.note for e in lists.entries("residents")}["TN09CK2046"] == "last"
    store = SqlLists(lists.database, {"banned": csv})
    assert store.load_files() == {"banned": 2}


def test_a_control_character_inside_a_plate_is_refused_naming_its_line(
    lists: SqlLists, tmp_path: Path
) -> None:
    csv = tmp_path / "list.csv"
    csv.write_bytes(b"plate\nTN09CK2046\nDL07\x00CR6158\n")
    with pytest.raises(ListError, match=r"list\.csv:3: plate 'DL07\\x00CR6158': control char"):
        lists.import_csv("residents", csv)
    with pytest.raises(ListError, match="control characters"):
        lists.add("residents", "DL07\x00CR6158")
    assert "TN09CK2046" not in {e.plate for e in lists.entries("residents")}


def test_a_list_is_read_a_page_at_a_time(lists: SqlLists) -> None:
    for number in range(25):
        lists.add("banned", f"DL07CR{number:04d}")
    page, total = lists.page("banned", 10, 20)
    assert total == 26
    assert [entry.plate for entry in page] == [f"DL07CR{n:04d}" for n in range(20, 25)] + [
        "MH12XY7395"
    ]


def test_changes_name_what_is_wrong(lists: SqlLists) -> None:
    with pytest.raises(ListError, match=r"unknown list 'resident' \(lists declared under lists: "):
        lists.add("resident", "KA01AB1234")
    with pytest.raises(ListError, match="no letters or digits"):
        lists.add("residents", "--")
    with pytest.raises(ListError, match="note: control characters"):
        lists.add("residents", "KA01AB1234", "two\nlines")
    assert lists.remove("residents", "KA01AB1234")
    assert not lists.remove("residents", "KA01AB1234")


def test_a_file_is_the_list_and_a_bad_line_changes_nothing(
    tmp_path: Path, store_database: Database
) -> None:
    banned = tmp_path / "banned.csv"
    banned.write_text("plate,note,expires\nMH12XY7395,stolen,\nKA05MN4821,,2099-01-01\n")
    store = SqlLists(store_database, {"banned": banned})
    assert store.load_files() == {"banned": 2}
    banned.write_text("plate,note\nMH12XY7395,stolen\n")
    store.load_files()
    assert [e.plate for e in store.entries("banned")] == ["MH12XY7395"]  # replaced, not merged
    banned.write_text("plate,note\nTN09CK2046,\n\nDL07,fine\n==,bad\n")
    with pytest.raises(ListError, match=r"banned\.csv:5: plate '==' has no letters or digits"):
        store.load_files()
    assert [e.plate for e in store.entries("banned")] == ["MH12XY7395"]
    with pytest.raises(ListError, match=r"list banned is the file .*banned\.csv"):
        store.add("banned", "TN09CK2046")


def test_a_bad_list_file_stops_the_start_with_its_line(tmp_path: Path) -> None:
    residents = tmp_path / "residents.csv"
    residents.write_text('plate,note\nKA01AB1234,flat 4\n"KA05MN4821,flat 5\nTN09CK2046,x\n')
    config = make_config(tmp_path, lists={"residents": {"file": str(residents)}})
    with pytest.raises(StartupError) as error:
        asyncio.run(Service(config, ServiceOptions(install_signal_handlers=False)).run())
    assert (
        str(error.value) == f"{residents}:3: a value runs over several lines (a quote left open?)"
    )


def test_rules_and_webhooks_may_name_only_declared_lists(tmp_path: Path) -> None:
    rule = {"name": "gate", "when": {"lists": ["resident"]}, "do": [{"http": {"url": "http://r/"}}]}
    with pytest.raises(ConfigError) as error:
        parse_config({"lists": {"residents": None}, "rules": [rule]})
    assert str(error.value) == (
        "rules.0.when: unknown list 'resident' (lists declared under lists: residents)"
    )
    hook = {"url": "http://r/", "when": {"not_lists": ["staff"]}}
    with pytest.raises(ConfigError, match=r"^webhooks\.0\.when: unknown list 'staff'"):
        parse_config({"webhooks": [hook]})
