"""Passes over recorded files, counted in a real outbox file: one cut short is taken up
under its own number, one that reached its end is followed by a new one."""

from __future__ import annotations

from pathlib import Path

from streamer.delivery.outbox_file import OutboxFile
from streamer.delivery.passes import FilePasses


def test_a_pass_cut_short_is_taken_up_again_and_an_ended_one_is_followed_by_the_next(
    tmp_path: Path,
) -> None:
    passes = FilePasses(OutboxFile(tmp_path / "outbox.sqlite"))
    assert passes.begin("gate", "abc") == 1
    assert passes.begin("gate", "abc") == 1  # the first did not end: a crash, a stop
    passes.finish("gate", "abc")
    assert passes.begin("gate", "abc") == 2
    passes.finish("gate", "abc")
    # Each camera and each file counts its own passes.
    assert passes.begin("lane-2", "abc") == 1
    assert passes.begin("gate", "def") == 1
    # Kept in the file: a daemon started again carries on.
    reopened = FilePasses(OutboxFile(tmp_path / "outbox.sqlite"))
    assert reopened.begin("gate", "abc") == 3


def test_without_an_outbox_file_every_pass_is_the_first() -> None:
    passes = FilePasses()
    passes.finish("gate", "abc")
    assert passes.begin("gate", "abc") == 1
