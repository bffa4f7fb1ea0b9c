"""ultralytics' own results, the references the detector is compared with.

torch and ultralytics are not in the daemon's environment, so these run in the model
export environment (streamer/vision/export.py), in a child process: images go in and
results come out as ``.npz`` files.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import supervision as sv

from streamer.vision.export import export_python

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import sys
from pathlib import Path

import numpy as np

from streamer.vision.models import prepare_ultralytics

prepare_ultralytics()
mode, source, target, *args = sys.argv[1:]
images = list(np.load(source, allow_pickle=False).values())
out = {}
if mode == "letterbox":
    from ultralytics.data.augment import LetterBox

    for index, image in enumerate(images):
        out[f"image{index}"] = LetterBox(640, auto=True, stride=32)(image=image)
else:
    if mode == "predict" and args[1] != "default":
        import openvino as ov

        compile_model = ov.Core.compile_model

        def pinned(self, model, device_name="CPU", config=None, **kwargs):
            settings = {**(config or {}), "INFERENCE_PRECISION_HINT": args[1]}
            return compile_model(self, model, device_name=device_name, config=settings, **kwargs)

        ov.Core.compile_model = pinned
    if mode == "predict":
        from ultralytics import YOLO

        model = YOLO(args[0], task="detect")

        def detect(image):
            result = model.predict(image, verbose=False, conf=0.05, imgsz=640)[0]
            boxes = result.boxes
            return boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.cls.numpy()
    else:  # streamer's own torch backend
        from streamer.config import ModelConfig
        from streamer.vision.detect import YoloDetector

        detector = YoloDetector(ModelConfig(backend="torch"))
        assert detector.backend == "torch", detector.backend

        def detect(image):
            found = detector.detect(image)
            return found.xyxy, found.confidence, found.class_id
    for index, image in enumerate(images):
        xyxy, confidence, class_id = detect(image)
        out[f"xyxy{index}"], out[f"confidence{index}"] = xyxy, confidence
        out[f"class{index}"] = class_id
np.savez(target, **out)
"""


def _run(mode: str, images: Sequence[np.ndarray], *args: str) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="streamer-reference-") as folder:
        source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(source, **{f"image{i}": image for i, image in enumerate(images)})
        result = subprocess.run(
            [str(export_python()), "-c", _SCRIPT, mode, str(source), str(target), *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(target) as data:
            return dict(data)


def _detections(data: dict[str, np.ndarray], count: int) -> list[sv.Detections]:
    return [
        sv.Detections(
            xyxy=data[f"xyxy{i}"].reshape(-1, 4).astype(np.float32),
            confidence=data[f"confidence{i}"].astype(np.float32),
            class_id=data[f"class{i}"].astype(int),
        )
        for i in range(count)
    ]


def predict(model: Path, images: Sequence[np.ndarray], precision: str) -> list[sv.Detections]:
    """``YOLO(model).predict`` on each image; an OpenVINO ``model`` compiled with the
    ``precision`` hint (``default``: OpenVINO's own choice)."""
    return _detections(_run("predict", images, str(model), precision), len(images))


def torch_backend(images: Sequence[np.ndarray]) -> list[sv.Detections]:
    """streamer's torch backend (``model.backend: torch``) on each image."""
    return _detections(_run("torch", images), len(images))


def letterbox(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """ultralytics' ``LetterBox(640, auto=True)`` of each image."""
    data = _run("letterbox", images)
    return [data[f"image{i}"] for i in range(len(images))]
