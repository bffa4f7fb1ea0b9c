"""The training command, end to end on a tiny set: data, one epoch, checkpoint, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.vision.export import export_env

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


def training_python() -> Path:
    """The Python the README's training command runs with: the project's own, which runs
    the command again in the export environment (made by ``streamer model fetch`` at
    set-up), installing what training adds there once."""
    if not (export_env() / "bin" / "python").is_file():
        pytest.skip(f"no export environment at {export_env()} (made by `streamer model fetch`)")
    return Path(sys.executable)


def test_the_training_command_trains_and_exports_a_model(tmp_path: Path) -> None:
    python = training_python()
    out = tmp_path / "run"
    command = [
        str(python),
        "-m",
        "streamer.training",
        "train",
        "--out",
        str(out),
        "--synthetic",
        "48",
        "--limit",
        "24",
        "--brazil-variants",
        "0",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--workers",
        "1",
        "--threads",
        "1",
        "--brazil",
        str(SHARED_DATA / "plates-br"),  # absent in a user's clone: synthetic plates only
        "--us-crops",
        str(SHARED_DATA / "ocr-crops-us"),
        "--us-variants",
        "0",
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, env=environment, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (out / "log.jsonl").read_text().splitlines()
    assert len(lines) == 1
    epoch = json.loads(lines[0])
    assert epoch["epoch"] == 0
    assert epoch["loss"] > 0
    assert "synthetic" in epoch
    assert (out / "checkpoint.pt").is_file()
    assert (out / "plate_recogniser.onnx").stat().st_size > 100_000
    assert (out / "plate_recogniser.chars").read_text().strip() == (
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    )
    # Run again: everything is there, so nothing is trained twice.
    again = subprocess.run(
        command, capture_output=True, text=True, check=False, env=environment, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert len((out / "log.jsonl").read_text().splitlines()) == 1
    # The export command writes the checkpoint where it is told, checked on OpenVINO.
    target = tmp_path / "exported" / "plates.onnx"
    export = [str(python), "-m", "streamer.training", "export", "--out", str(out), "--to"]
    exported = subprocess.run(
        [*export, str(target)],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert target.stat().st_size > 100_000
    assert target.with_suffix(".chars").is_file()
