"""Plate detection: a YOLO plate model to :class:`supervision.Detections`.

On CPU the model runs as an OpenVINO export, straight on the ``openvino`` runtime: the
letterbox, score filter and NMS are ultralytics' own, re-done in numpy and OpenCV, so the
boxes are the ones ``YOLO.predict`` gives on the same export. That path never imports
ultralytics or torch (torch alone is about 470 MB resident); they are imported only to
make the export, once, and for the torch backend.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import supervision as sv

from streamer.config import DetectionConfig, ModelConfig
from streamer.models import (
    ModelError,
    OpenVinoExport,
    ensure_openvino_export,
    quiet_ultralytics,
    resolve_weights,
)

logger = logging.getLogger(__name__)

quiet_ultralytics()  # for anything that imports ultralytics after this module

# ultralytics' predict defaults, so both backends keep the same boxes.
MIN_SCORE = 0.05
NMS_IOU = 0.7
MAX_DETECTIONS = 300
PAD_VALUE = 114


class Detector(Protocol):
    """Finds plates in BGR images."""

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes (xyxy, frame pixels) with ``confidence``; no gating applied."""
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """:meth:`detect` for each image, in order; faster per image where it can batch."""
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


@dataclass(frozen=True)
class Letterbox:
    """An image fitted into a network input, and how to map boxes back.

    Attributes:
        image: The resized BGR image padded with grey to a multiple of the stride.
        gain: Network pixels per image pixel, (x, y).
        offset: Padding before the image, (left, top), in network pixels.
    """

    image: np.ndarray
    gain: tuple[float, float]
    offset: tuple[int, int]


def letterbox(image: np.ndarray, size: int, stride: int = 32) -> Letterbox:
    """Fit ``image`` into ``size`` pixels on its long side, padded to a multiple of ``stride``.

    The same arithmetic as ultralytics' ``LetterBox(auto=True)`` (what ``predict`` does for a
    dynamic-shape export), so a 1280x720 frame becomes 640x384, not 640x640.

    Example:
        >>> letterbox(np.zeros((720, 1280, 3), np.uint8), 640).image.shape
        (384, 640, 3)
    """
    height, width = image.shape[:2]
    ratio = min(size / height, size / width)
    new_width, new_height = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_x, pad_y = (size - new_width) % stride / 2, (size - new_height) % stride / 2
    # The -0.1/+0.1 put an odd pixel of padding at the bottom/right, as ultralytics does.
    top, bottom = round(pad_y - 0.1), round(pad_y + 0.1)
    left, right = round(pad_x - 0.1), round(pad_x + 0.1)
    if (new_width, new_height) != (width, height):
        image = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return Letterbox(padded, (new_width / width, new_height / height), (left, top))


def _to_detections(
    prediction: np.ndarray, fitted: Letterbox, image_shape: tuple[int, ...], names: np.ndarray
) -> sv.Detections:
    """One image's raw YOLO output, ``[4 + classes, anchors]`` of (cx, cy, w, h, scores...),
    to frame-pixel boxes: ultralytics' ``non_max_suppression`` and ``scale_boxes``."""
    class_scores = prediction[4:]
    class_id = class_scores.argmax(axis=0)
    scores = class_scores[class_id, np.arange(class_scores.shape[1])]
    keep = scores > MIN_SCORE
    centre, size = prediction[:2, keep].T, prediction[2:4, keep].T
    scores, class_id = scores[keep], class_id[keep]
    if len(scores):
        corners = np.concatenate([centre - size / 2, size], axis=1)  # x, y, w, h
        # Per-class NMS (classes never suppress each other), as ultralytics' agnostic=False;
        # keeps the best-scoring first, as torchvision's nms does.
        chosen = cv2.dnn.NMSBoxesBatched(
            corners.tolist(),
            scores.tolist(),
            class_id.tolist(),
            MIN_SCORE,
            NMS_IOU,
            top_k=MAX_DETECTIONS,
        )
        kept = np.asarray(chosen, dtype=np.intp).reshape(-1)
        xyxy = np.concatenate([centre[kept] - size[kept] / 2, centre[kept] + size[kept] / 2], 1)
        scores, class_id = scores[kept], class_id[kept]
    else:
        xyxy = np.empty((0, 4), np.float32)
    (gain_x, gain_y), (left, top) = fitted.gain, fitted.offset
    height, width = image_shape[:2]
    xyxy[:, [0, 2]] = ((xyxy[:, [0, 2]] - left) / gain_x).clip(0, width)
    xyxy[:, [1, 3]] = ((xyxy[:, [1, 3]] - top) / gain_y).clip(0, height)
    class_id = class_id.astype(int)
    return sv.Detections(
        xyxy=xyxy.astype(np.float32, copy=False),
        confidence=scores.astype(np.float32, copy=False),
        class_id=class_id,
        data={"class_name": names[class_id]},
    )


class OpenVinoYolo:
    """A YOLO detection export run directly on the OpenVINO runtime (CPU).

    Example:
        >>> model = OpenVinoYolo(ensure_openvino_export(weights, 640), 640)
        >>> [detections] = model.detect_batch([cv2.imread("car.jpg")])
    """

    def __init__(self, export: OpenVinoExport, image_size: int) -> None:
        import openvino as ov

        self.export = export
        self.image_size = image_size
        self._names = np.array(export.names)
        core = ov.Core()
        # CACHE_DIR empty: no compiled-blob cache written anywhere (it is off by default;
        # this keeps it off if an environment's OpenVINO config turns it on).
        self._model = core.compile_model(
            core.read_model(export.xml),
            "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": ""},
        )
        # A compiled model's call reuses one infer request, which is not thread-safe; the
        # input buffer is shared too, so both are used under this lock.
        self._lock = threading.Lock()
        self._buffer = np.empty(0, np.float32)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """Plates in each BGR image, in order. Images that letterbox to the same shape (a
        camera's frames always do) run as one batch: about a fifth less time per image."""
        fitted = [letterbox(image, self.image_size, self.export.stride) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(fitted):
            groups.setdefault(item.image.shape, []).append(index)
        results: list[sv.Detections | None] = [None] * len(images)
        for (height, width, _), indices in groups.items():
            with self._lock:
                batch = self._input((len(indices), 3, height, width))
                for row, index in enumerate(indices):
                    for channel in range(3):  # BGR to RGB, HWC to CHW, 0..1, in one pass
                        np.divide(
                            fitted[index].image[..., 2 - channel],
                            np.float32(255),
                            out=batch[row, channel],
                            dtype=np.float32,
                        )
                output = self._model(batch)[0]
            for row, index in enumerate(indices):
                results[index] = _to_detections(
                    output[row], fitted[index], images[index].shape, self._names
                )
        return [result for result in results if result is not None]

    def _input(self, shape: tuple[int, int, int, int]) -> np.ndarray:
        """The shared input buffer as an array of ``shape`` (call under the lock). It is
        reused from call to call, since filling a fresh one (12 MB for 4 frames) costs
        twice as long, in page faults; and there is one, not one per calling thread."""
        size = int(np.prod(shape))
        if self._buffer.size < size:
            self._buffer = np.empty(size, np.float32)
        return self._buffer[:size].reshape(shape)


class UltralyticsYolo:
    """YOLO weights through ultralytics' ``predict`` (the torch backend)."""

    def __init__(self, weights: Path, image_size: int) -> None:
        quiet_ultralytics()
        from ultralytics import YOLO  # type: ignore[attr-defined]

        self.image_size = image_size
        self._model: Any = YOLO(str(weights), task="detect")
        # One ultralytics model is not safe to call from two threads at once.
        self._lock = threading.Lock()

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """Plates in each BGR image, one ``predict`` each: a mixed-shape batch would be
        letterboxed to squares, changing the boxes."""
        results = []
        for image in images:
            with self._lock:
                result = self._model.predict(
                    image, verbose=False, conf=MIN_SCORE, imgsz=self.image_size
                )[0]
            results.append(sv.Detections.from_ultralytics(result))
        return results


class YoloDetector:
    """The configured YOLO plate model: OpenVINO when it can be, else torch.

    Example:
        >>> detector = YoloDetector(ModelConfig())
        >>> detections = detector.detect(cv2.imread("car.jpg"))
    """

    def __init__(self, config: ModelConfig) -> None:
        weights = resolve_weights(config.weights)
        self.config = config
        self.weights = weights
        self.backend, self._model = self._load(weights, config.backend)
        logger.info("plate detector %s on %s", weights, self.backend)

    def _load(self, weights: Path, backend: str) -> tuple[str, OpenVinoYolo | UltralyticsYolo]:
        if backend in {"auto", "openvino"}:
            try:
                model = OpenVinoYolo(
                    ensure_openvino_export(weights, self.config.image_size), self.config.image_size
                )
                # Fail now, not per frame; and compile for 16:9, the usual camera shape.
                model.detect_batch([np.zeros((720, 1280, 3), np.uint8)])
                return "openvino", model
            except Exception as error:
                if backend == "openvino":
                    raise ModelError(f"model.backend openvino: {error}") from error
                logger.warning("OpenVINO unavailable (%s); using torch", error)
        try:
            return "torch", UltralyticsYolo(weights, self.config.image_size)
        except Exception as error:
            raise ModelError(f"cannot load model weights {weights}: {error}") from error

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes for one BGR image, every confidence the model reports (> 0.05)."""
        return self._model.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """:meth:`detect` for each BGR image, in order, batched where the backend can."""
        return self._model.detect_batch(images) if len(images) else []


@dataclass
class _Request:
    image: np.ndarray
    result: sv.Detections | None = None
    error: BaseException | None = None


class BatchingDetector:
    """One detector shared by every camera: frames that wait for it go in one batch.

    A camera's worker thread calls :meth:`detect` and blocks. Whichever thread finds the
    detector free takes every waiting frame (up to ``max_batch``) and runs them as one
    batch, then hands each thread its result; while that batch runs, the next one gathers.
    No frame waits for a batch to fill, so one camera sees no extra latency, and several
    cameras pay about a fifth less per frame.

    Example:
        >>> shared = BatchingDetector(YoloDetector(ModelConfig()), max_batch=8)
        >>> detections = shared.detect(frame)  # from any thread
    """

    def __init__(self, detector: Detector, max_batch: int = 8) -> None:
        self.detector = detector
        self.max_batch = max_batch
        self.batches = 0
        self.images = 0
        self._waiting: list[_Request] = []
        self._waiting_lock = threading.Lock()
        self._running = threading.Lock()

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plate boxes for one BGR image, detected alone or with other threads' images."""
        request = _Request(image)
        with self._waiting_lock:
            self._waiting.append(request)
        while request.result is None and request.error is None:
            with self._running:
                if request.result is None and request.error is None:
                    self._run_waiting()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """:meth:`detect` for each image, in order."""
        with self._running:
            return self.detector.detect_batch(images)

    def _run_waiting(self) -> None:
        with self._waiting_lock:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
        try:
            results = self.detector.detect_batch([request.image for request in batch])
        except Exception as error:  # every waiting camera hears of it
            for request in batch:
                request.error = error
            return
        self.batches += 1
        self.images += len(batch)
        for request, result in zip(batch, results, strict=True):
            request.result = result

    @property
    def mean_batch(self) -> float:
        """Frames per batch so far."""
        return self.images / self.batches if self.batches else 0.0
