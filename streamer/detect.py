"""Plate detection: ultralytics YOLO to :class:`supervision.Detections`.

The ultralytics package reaches for the network by default (settings sync, hub checks,
font downloads, auto-installing missing requirements). Importing this module switches
all of that off before ultralytics is first imported.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import supervision as sv

from streamer.config import DetectionConfig, ModelConfig
from streamer.models import ModelError, cache_dir, openvino_dir, resolve_weights

logger = logging.getLogger(__name__)

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ.setdefault("YOLO_VERBOSE", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))


class Detector(Protocol):
    """Finds plates in a BGR image."""

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes (xyxy, frame pixels) with ``confidence``; no gating applied."""
        ...


def gate(detections: sv.Detections, config: DetectionConfig) -> sv.Detections:
    """Keep boxes at or above ``config.confidence`` and ``config.min_area`` pixels."""
    if len(detections) == 0:
        return detections
    keep = np.asarray(detections.area) >= config.min_area
    if detections.confidence is not None:
        keep &= np.asarray(detections.confidence) >= config.confidence
    gated = detections[keep]
    assert isinstance(gated, sv.Detections)
    return gated


def _exported_size(exported: Path) -> int | None:
    """The square input size an OpenVINO export was made for, or ``None`` if there is none."""
    import yaml

    try:
        metadata = yaml.safe_load((exported / "metadata.yaml").read_text())
        return int(metadata["imgsz"][0])
    except (OSError, KeyError, TypeError, ValueError, IndexError, yaml.YAMLError):
        return None


class YoloDetector:
    """A YOLO plate model, on OpenVINO when it can be, else torch.

    Example:
        >>> detector = YoloDetector(ModelConfig())
        >>> detections = detector.detect(cv2.imread("car.jpg"))
    """

    def __init__(self, config: ModelConfig) -> None:
        weights = resolve_weights(config.weights)
        self.config = config
        self.weights = weights
        self.backend, self._model = self._load(weights, config.backend)
        # One ultralytics model is not safe to call from two threads at once.
        self._lock = threading.Lock()
        logger.info("plate detector %s on %s", weights, self.backend)

    def _load(self, weights: Path, backend: str) -> tuple[str, Any]:
        from ultralytics import YOLO  # type: ignore[attr-defined]

        if backend in {"auto", "openvino"}:
            try:
                exported = openvino_dir(weights)
                if _exported_size(exported) != self.config.image_size:
                    logger.info("exporting %s to OpenVINO (once, cached in %s)", weights, exported)
                    YOLO(str(weights), task="detect").export(
                        format="openvino", imgsz=self.config.image_size, half=False
                    )
                model = YOLO(str(exported), task="detect")
                model.predict(
                    np.zeros((64, 64, 3), np.uint8), verbose=False, imgsz=self.config.image_size
                )
                return "openvino", model
            except Exception as error:
                if backend == "openvino":
                    raise ModelError(f"model.backend openvino: {error}") from error
                logger.warning("OpenVINO unavailable (%s); using torch", error)
        try:
            return "torch", YOLO(str(weights), task="detect")
        except Exception as error:
            raise ModelError(f"cannot load model weights {weights}: {error}") from error

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes for one BGR image, every confidence the model reports (>= 0.05)."""
        with self._lock:
            result = self._model.predict(
                image, verbose=False, conf=0.05, imgsz=self.config.image_size
            )[0]
        return sv.Detections.from_ultralytics(result)
