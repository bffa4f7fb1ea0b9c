"""The commands that manage data and the model: dues, lists, the outbox, model info."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from streamer.config import OutboxConfig
from streamer.delivery.outbox import Outbox
from streamer.delivery.outbox_file import SCHEMA_VERSION

from support.daemon import make_config, streamer, write_config, write_yaml
from support.factories import make_event


def test_dues_commands(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "x", "source": "unused"}])
    csv = tmp_path / "dues.csv"
    csv.write_text("plate,amount,message\nKA01AB1234,500,Fine\nMH12DE1433,0,\n")
    assert streamer("dues", "import", csv, "--config", config).returncode == 0
    result = streamer(
        "dues", "set", "tn 09 bc 5678", "--amount", "75", "--message", "Toll", "--config", config
    )
    assert json.loads(result.stdout) == {
        "plate_number": "tn 09 bc 5678",
        "found": True,
        "dues_pending": True,
        "amount": 75.0,
        "message": "Toll",
    }
    assert streamer("dues", "clear", "MH12DE1433", "--config", config).returncode == 0
    missing = streamer("dues", "clear", "MH12DE1433", "--config", config)
    assert missing.returncode == 1
    assert "not in the dues database" in missing.stderr
    listing = streamer("dues", "list", "--config", config).stdout.splitlines()
    assert [line.split()[:2] for line in listing] == [
        ["KA01AB1234", "500.00"],
        ["TN09BC5678", "75.00"],
    ]


def test_model_info_shows_the_choice_and_every_candidate() -> None:
    result = streamer("model", "info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert "OpenVINO" in lines[0]
    chosen = next(line for line in lines if line.startswith("chosen: "))
    precision = chosen.split()[1].rstrip(":")
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert set(rows) == {"precision", "f32", "bf16", "int8"}
    assert rows[precision].split("|")[5].strip() == "yes"
    assert "ms/frame" in chosen


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", "lists", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_manages_lists(tmp_path: Path) -> None:
    config = tmp_path / "streamer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dues": {"database": str(tmp_path / "dues.sqlite")},
                "lists": {"residents": {"description": "Who lives here"}, "banned": None},
            }
        )
    )
    added = cli(config, "add", "residents", "ka-01-ab-1234", "--note", "flat 4")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["plate_number"] == "KA01AB1234"
    csv = tmp_path / "banned.csv"
    csv.write_text("plate,note,expires\nMH12XY7395,stolen,\nDL07CR6158,,2020-01-01\n")
    assert cli(config, "import", "banned", str(csv)).stdout.strip() == (
        "imported 2 plates into list banned"
    )
    overview = {
        line.split()[0]: line.split()[1:] for line in cli(config, "show").stdout.splitlines()
    }
    assert overview["residents"] == ["1", "plates", "managed", "here", "Who", "lives", "here"]
    assert overview["banned"][:2] == ["1", "plates"]  # the other one has expired
    assert "(expired)" in cli(config, "show", "banned").stdout
    assert cli(config, "remove", "residents", "KA01AB1234").returncode == 0
    missing = cli(config, "remove", "residents", "KA01AB1234")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "streamer: KA01AB1234: not on list residents"
    unknown = cli(config, "add", "visitors", "KA01AB1234")
    assert unknown.stderr.strip().startswith("streamer: unknown list 'visitors'")
    csv.write_text("plate,expires\nAB12,soon\n")
    bad = cli(config, "import", "banned", str(csv))
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith(
        "banned.csv:2: expires: 'soon' is not a date (YYYY-MM-DD) or a date and time (ISO 8601)"
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a command that failed in one line, as a user sees it."""
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("streamer: outbox.database: ")
    return line


def test_outbox_commands_on_a_missing_outbox_say_so_and_make_none(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "x", "source": "unused"}])
    for command in (["list"], ["retry", "--all"], ["purge", "--dead"]):
        line = one_line_error(streamer("outbox", *command, "--config", config))
        assert f"there is no outbox at {tmp_path / 'outbox.sqlite'}" in line
    assert not (tmp_path / "outbox.sqlite").exists()


def test_a_damaged_outbox_is_refused_in_one_line_by_every_command(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        [{"name": "x", "source": str(tmp_path / "missing.mp4")}],
        webhooks=[{"url": "http://127.0.0.1:1/hook", "name": "hook"}],
    )
    outbox = Outbox(OutboxConfig(database=tmp_path / "outbox.sqlite"), [])
    for number in range(60):  # a few pages of events
        outbox.add(make_event(f"KA01AB{number:04d}"))
    outbox.close()
    data = bytearray((tmp_path / "outbox.sqlite").read_bytes())
    page = 4096 * 3  # a page of the events table: its header overwritten
    data[page : page + 8] = b"\xff" * 8
    (tmp_path / "outbox.sqlite").write_bytes(bytes(data))
    for command in (["outbox", "list"], ["outbox", "retry", "--all"], ["run"]):
        line = one_line_error(streamer(*command, "--config", config))
        assert "outbox.sqlite is damaged (" in line
        assert "move it aside" in line
        assert "the events log keeps every event" in line


def test_an_outbox_of_a_newer_streamer_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "x", "source": "unused"}])
    Outbox(OutboxConfig(database=tmp_path / "outbox.sqlite"), []).close()
    with sqlite3.connect(tmp_path / "outbox.sqlite") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    line = one_line_error(streamer("outbox", "list", "--config", config))
    assert f"is of schema version {SCHEMA_VERSION + 1}, newer than this streamer's" in line
    assert "upgrade streamer" in line
    with sqlite3.connect(tmp_path / "outbox.sqlite") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    connection.close()


def test_outbox_list_masks_the_secrets_an_error_quotes(tmp_path: Path) -> None:
    """A delivery's last error may quote its URL (aiohttp's InvalidURL is the whole URL,
    as older versions stored it): ``outbox list`` prints it masked."""
    hook = {"url": "http://hook:s3cret@127.0.0.1:9/events?key=k3y", "name": "ops"}
    config = make_config(tmp_path, webhooks=[hook])
    outbox = Outbox(config.outbox, config.delivery_targets)
    assert outbox.add(make_event("KA01AB1234")) == ["ops"]
    (delivery,) = outbox.list()
    outbox.dead(delivery.id, "InvalidUrlClientError: http://hook:s3cret@[::1/events?key=k3y")
    outbox.close()
    result = streamer("outbox", "list", "--config", write_yaml(config, tmp_path / "c.yaml"))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.endswith("InvalidUrlClientError: http://hook:***@[::1/events?key=***")
    assert "s3cret" not in result.stdout
    assert "k3y" not in result.stdout


def test_an_expiry_outside_the_calendar_is_refused_and_the_list_still_shows(
    tmp_path: Path,
) -> None:
    config = tmp_path / "streamer.yaml"
    config.write_text(
        yaml.safe_dump(
            {"dues": {"database": str(tmp_path / "dues.sqlite")}, "lists": {"vip": None}}
        )
    )
    for expires in ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-01:00"]:
        refused = cli(config, "add", "vip", "KA01AB1234", "--expires", expires)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.splitlines() == [
            f"streamer: expires: '{expires}' is outside the years 1 to 9999 in UTC "
            "(leave it empty or give 9999-12-31 for never)"
        ]
    csv = tmp_path / "vip.csv"
    csv.write_text("plate,expires\nKA01AB1234,0001-01-01T00:00+01:00\n")
    bad = cli(config, "import", "vip", str(csv))
    assert (bad.returncode, bad.stderr.count("\n")) == (1, 1)
    assert "vip.csv:2: expires: '0001-01-01T00:00+01:00' is outside" in bad.stderr
    shown = cli(config, "show", "vip")
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, "", "")
    never = cli(config, "add", "vip", "KA01AB1234", "--expires", "9999-12-31")
    assert json.loads(never.stdout)["expires"] is None
    assert cli(config, "show", "vip").stdout.split() == ["KA01AB1234", "expires", "never"]
