"""Plate detection: the configured YOLO plate model, to :class:`supervision.Detections`.

On CPU the model runs on the OpenVINO runtime (:mod:`streamer.vision.yolo`), in the
precision measured fastest on this machine among those that find the same plates as
float32 (:mod:`streamer.vision.precision`), or the one ``model.precision`` pins. The
torch backend (``model.backend: torch``, the ``streamer[torch]`` extra) is for GPUs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import supervision as sv

from streamer.config import ModelConfig
from streamer.vision.export import ensure_int8_export, ensure_openvino_export
from streamer.vision.models import ModelError, quiet_ultralytics, resolve_weights
from streamer.vision.precision import Choice, choose, has_bf16
from streamer.vision.yolo import OpenVinoYolo, UltralyticsYolo

logger = logging.getLogger(__name__)

quiet_ultralytics()  # for anything that imports ultralytics after this module


class Detector(Protocol):
    """Finds plates in BGR images."""

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes (xyxy, frame pixels) with ``confidence``; no gating applied. Safe to
        call from several threads at once."""
        ...


class YoloDetector:
    """The configured YOLO plate model: OpenVINO when it can be, else torch.

    Attributes:
        backend: ``openvino`` or ``torch``.
        precision: what the OpenVINO model computes in (``f32``, ``bf16``, ``int8``);
            ``f32`` on torch.
        choice: the measurement behind ``precision`` when it was chosen (``auto``).

    Example:
        >>> detector = YoloDetector(ModelConfig())
        >>> detections = detector.detect(cv2.imread("car.jpg"))
    """

    def __init__(self, config: ModelConfig) -> None:
        weights = resolve_weights(config.weights)
        self.config = config
        self.weights = weights
        self.choice: Choice | None = None
        self.precision = "f32"
        self.backend, self._model = self._load(weights, config.backend)
        logger.info("plate detector %s on %s %s", weights, self.backend, self.precision)

    def _load(self, weights: Path, backend: str) -> tuple[str, OpenVinoYolo | UltralyticsYolo]:
        if backend in {"auto", "openvino"}:
            try:
                model = self._openvino(weights)
                # Fail now, not per frame; and compile for 16:9, the usual camera shape.
                model.detect(np.zeros((720, 1280, 3), np.uint8))
                return "openvino", model
            except Exception as error:
                if backend == "openvino" or self.config.precision != "auto":
                    raise ModelError(f"model.backend openvino: {error}") from error
                logger.warning("OpenVINO unavailable (%s); using torch", error)
        try:
            return "torch", UltralyticsYolo(weights, self.config.image_size)
        except ImportError as error:
            raise ModelError(
                f"model.backend torch needs `pip install 'streamer[torch]'` ({error})"
            ) from error
        except Exception as error:
            raise ModelError(f"cannot load model weights {weights}: {error}") from error

    def _openvino(self, weights: Path) -> OpenVinoYolo:
        size, precision = self.config.image_size, str(self.config.precision)
        if precision == "auto":
            self.choice = choose(weights, size)
            precision = self.choice.precision
        elif precision == "bf16" and not has_bf16():
            raise ModelError("model.precision bf16: this CPU has no bfloat16 (AVX-512 BF16 or AMX)")
        self.precision = precision
        if precision == "int8":
            return OpenVinoYolo(ensure_int8_export(weights, size), size, "f32")
        return OpenVinoYolo(ensure_openvino_export(weights, size), size, precision)

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes for one BGR image, every confidence the model reports (> 0.05); safe
        to call from several threads at once."""
        return self._model.detect(image)
