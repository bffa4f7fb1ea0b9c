"""Making the detector's OpenVINO models, once, in an environment of their own.

The daemon runs OpenVINO models and nothing else. Making them takes torch and
ultralytics (the float export of the YOLO weights) and NNCF (the INT8 model), which the
daemon's own environment does not carry: they live in the *export environment*, a
virtualenv in the cache (``$STREAMER_CACHE/export-env``) made on first need with
streamer's own requirements, torch's CPU build, ultralytics (without its GPU extras) and
NNCF. The models are made there in a child process and cached next to the weights:

- ``best_openvino_model/``: the float export (FP32, dynamic input shape);
- ``best_int8_openvino_model/``: the same, quantized to INT8 by NNCF's post-training
  quantization, calibrated on frames of the project's own demo renderer. The head's box
  decoding and its last 1x1 convolutions stay float: quantized, they move boxes by up to
  a fifth of their size and let duplicates through NMS.

Which of them the daemon runs, and in which precision, is measured on the machine at
hand (:mod:`streamer.vision.precision`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from streamer.vision.models import (
    ModelError,
    OpenVinoExport,
    cache_dir,
    int8_dir,
    openvino_dir,
    prepare_ultralytics,
)

logger = logging.getLogger(__name__)

#: What the export environment adds to streamer's requirements. torch's CPU build is the
#: one to have (``STREAMER_TORCH_INDEX`` names an index that serves it, such as PyTorch's
#: CPU index); ultralytics is installed without its requirements, which would pull
#: torchvision and GPU libraries that exporting never uses.
TORCH = "torch==2.13.0"
NNCF = "nncf==3.4.0"
ULTRALYTICS = "ultralytics==8.4.190"

#: Calibration of the INT8 model: every tenth frame of six demo videos, each with five
#: vehicles of random plates, seeds never used by the held-out frames that judge it.
CALIBRATION_SEEDS = (101, 102, 103, 104, 105, 106)
CALIBRATION_STEP = 10
CALIBRATION_FRAMES = 300


def export_env() -> Path:
    """Where the export environment lives."""
    return Path(os.environ.get("STREAMER_EXPORT_ENV") or cache_dir() / "export-env")


def _requirements() -> list[str]:
    """streamer's own requirements (no extras), as installed in this environment."""
    try:
        declared = importlib.metadata.requires("streamer") or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelError("streamer is not installed: run `make setup`") from None
    return sorted(r for r in declared if "extra ==" not in r)


def _pip(python: Path, *args: str) -> None:
    command = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise ModelError(f"export environment: pip install {' '.join(args)} failed: {detail}")


def export_python() -> Path:
    """The export environment's Python, the environment made (or remade, when streamer's
    requirements changed) first; a few minutes, once.

    Raises:
        ModelError: naming what could not be installed.
    """
    env = export_env()
    python = env / "bin" / "python"
    wanted = [TORCH, NNCF, ULTRALYTICS, *_requirements()]
    stamp = env / ".streamer-export"
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    if python.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return python
    logger.info("making the model export environment in %s (once; a few minutes)", env)
    shutil.rmtree(env, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "venv", str(env)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["venv failed"])[-1]
        raise ModelError(f"cannot make the export environment {env}: {detail}")
    index = os.environ.get("STREAMER_TORCH_INDEX")
    _pip(python, TORCH, *(["--index-url", index] if index else []))
    _pip(python, NNCF, *_requirements())
    _pip(python, "--no-deps", ULTRALYTICS)
    stamp.write_text(digest)
    return python


def run_exported(function: str, *args: str) -> None:
    """Run ``streamer.vision.export.<function>(*args)`` in the export environment.

    Raises:
        ModelError: with the one line the child ended on.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    code = (
        "import sys\n"
        f"from streamer.vision.export import {function}\n"
        "try:\n"
        f"    {function}(*sys.argv[1:])\n"
        "except Exception as error:\n"
        "    sys.exit(f\"{type(error).__name__}: {' '.join(str(error).split())}\")\n"
    )
    result = subprocess.run(
        [str(export_python()), "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise ModelError(f"{function} {' '.join(args)}: {detail}")


def ensure_openvino_export(weights: Path, image_size: int) -> OpenVinoExport:
    """The cached float OpenVINO export of ``weights``, made first if missing or stale.

    Stale means traced at another size, or made before exports were dynamic (those pad
    every 16:9 frame to a 640x640 square, two thirds more pixels than 384x640).

    Raises:
        ModelError: when the export cannot be made or read back.
    """
    export = OpenVinoExport.read(openvino_dir(weights))
    if export is not None and export.serves(image_size):
        return export
    logger.info("exporting %s to OpenVINO (once, cached in %s)", weights, openvino_dir(weights))
    run_exported("export_openvino", str(weights), str(image_size))
    export = OpenVinoExport.read(openvino_dir(weights))
    if export is None or not export.serves(image_size):
        raise ModelError(f"OpenVINO export of {weights} is incomplete")
    return export


def ensure_int8_export(weights: Path, image_size: int) -> OpenVinoExport:
    """The cached INT8 model of ``weights``, quantized from the float export first if
    missing or stale.

    Raises:
        ModelError: when it cannot be made or read back.
    """
    export = OpenVinoExport.read(int8_dir(weights))
    if export is not None and export.serves(image_size):
        return export
    source = ensure_openvino_export(weights, image_size)
    logger.info("quantizing %s to INT8 (once, about a minute)", weights)
    run_exported("quantize_int8", str(source.xml.parent), str(int8_dir(weights)))
    export = OpenVinoExport.read(int8_dir(weights))
    if export is None or not export.serves(image_size):
        raise ModelError(f"INT8 model of {weights} is incomplete")
    return export


def _replace_dir(produced: Path, target: Path, scratch: Path) -> None:
    """Move ``produced`` to ``target`` at once, so a reader never sees half of it."""
    if target.exists():
        target.rename(scratch / "previous")
    produced.rename(target)


def export_openvino(weights: str | Path, image_size: str | int) -> Path:
    """Export ``weights`` to OpenVINO (FP32, dynamic input shape) and cache the result.
    Runs in the export environment (it needs ultralytics and torch).

    Returns:
        The export directory, :func:`~streamer.vision.models.openvino_dir` of ``weights``.
    """
    prepare_ultralytics()
    from ultralytics import YOLO

    weights, target = Path(weights), openvino_dir(Path(weights))
    with tempfile.TemporaryDirectory(prefix="export-", dir=weights.parent) as scratch:
        staged = Path(scratch) / weights.name
        shutil.copyfile(weights, staged)
        with warnings.catch_warnings():  # torch.jit.trace's deprecation, not ours to fix
            warnings.simplefilter("ignore", FutureWarning)
            produced = YOLO(str(staged), task="detect").export(
                format="openvino", imgsz=int(image_size), half=False, dynamic=True
            )
        try:
            _replace_dir(Path(produced), target, Path(scratch))
        except OSError:
            # Another process exported at the same time; fine if what it left serves us.
            export = OpenVinoExport.read(target)
            if export is None or not export.serves(int(image_size)):
                raise
    return target


def calibration_frames(count: int = CALIBRATION_FRAMES) -> list[object]:
    """``count`` frames of demo videos rendered with random plates (seeds
    :data:`CALIBRATION_SEEDS`): vehicles far and near, and the empty road between."""
    import cv2
    import numpy as np

    from streamer.sources.demo import DemoVehicle, render_video

    frames: list[object] = []
    with tempfile.TemporaryDirectory(prefix="streamer-calibration-") as folder:
        for seed in CALIBRATION_SEEDS:
            rng = np.random.default_rng(seed)
            vehicles = [DemoVehicle(random_plate(rng), 0.0, "") for _ in range(5)]
            video = render_video(Path(folder) / f"{seed}.mp4", vehicles, seed=seed)
            capture = cv2.VideoCapture(str(video.path))
            index = 0
            while capture.grab():
                if index % CALIBRATION_STEP == 0:
                    frames.append(capture.retrieve()[1])
                index += 1
            capture.release()
    step = len(frames) / count
    return [frames[int(i * step)] for i in range(min(count, len(frames)))]


def random_plate(rng: object) -> str:
    """An Indian-format plate (``KA05MN4821``) from a numpy random generator."""
    import numpy as np

    assert isinstance(rng, np.random.Generator)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"

    def pick(alphabet: str, count: int) -> str:
        return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), count))

    series = int(rng.integers(1, 3))
    return pick(letters, 2) + pick("0123456789", 2) + pick(letters, series) + pick("0123456789", 4)


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Quantize the float export in ``source`` to INT8 in ``target`` with NNCF, on
    :func:`calibration_frames`. Runs in the export environment (it needs NNCF).

    The head's box decoding (every Sigmoid and the ops of the Detect module and its DFL,
    as ultralytics' own INT8 export leaves them) and its last 1x1 convolutions stay float.
    """
    import nncf
    import numpy as np
    import openvino as ov

    from streamer.vision.yolo import letterbox

    source, target = Path(source), Path(target)
    export = OpenVinoExport.read(source)
    if export is None:
        raise ModelError(f"no OpenVINO export in {source}")
    model = ov.Core().read_model(str(export.xml))
    operations = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in operations if op.get_type_name() == "Sigmoid"]
    head = sigmoids[-1].split("/", 1)[0]
    last_convs = re.compile(r"__module\.model\.\d+\.cv[23]\.\d+\.2/")
    ignored = [
        op.get_friendly_name()
        for op in operations
        if op.get_type_name() == "Sigmoid"
        or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))
        or (op.get_type_name() == "Convolution" and last_convs.match(op.get_friendly_name()))
    ]

    def network_input(image: np.ndarray) -> np.ndarray:  # as predict feeds the raw IR
        boxed = letterbox(image, export.image_size, export.stride).image
        return (boxed[:, :, ::-1].transpose(2, 0, 1)[np.newaxis] / 255.0).astype(np.float32)

    frames = calibration_frames()
    quantized = nncf.quantize(
        model,
        nncf.Dataset(frames, network_input),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(frames),
        ignored_scope=nncf.IgnoredScope(names=ignored),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="int8-", dir=target.parent) as scratch:
        staged = Path(scratch) / "model"
        staged.mkdir()
        ov.save_model(quantized, str(staged / export.xml.name), compress_to_fp16=False)
        shutil.copyfile(source / "metadata.yaml", staged / "metadata.yaml")
        _replace_dir(staged, target, Path(scratch))
    return target
