"""A YOLO detection model on the OpenVINO runtime (and, for GPUs, on torch).

The letterbox, score filter and NMS are ultralytics' own, re-done in numpy and OpenCV, so
the boxes are the ones ``YOLO.predict`` gives on the same model in the same precision.
This path never imports ultralytics or torch (torch alone is about 470 MB resident).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import supervision as sv

from streamer.config import DetectionConfig
from streamer.vision.models import OpenVinoExport, prepare_ultralytics

# ultralytics' predict defaults, so both backends keep the same boxes.
MIN_SCORE = 0.05
NMS_IOU = 0.7
MAX_DETECTIONS = 300
PAD_VALUE = 114


def filter_detections(detections: sv.Detections, config: DetectionConfig) -> sv.Detections:
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


def letterbox(image: np.ndarray, size: int, stride: int = 32, square: bool = False) -> Letterbox:
    """Fit ``image`` into ``size`` pixels on its long side, padded to a multiple of ``stride``
    (with ``square``, to ``size`` by ``size``, as a model of a fixed input shape needs).

    The same arithmetic as ultralytics' ``LetterBox(auto=True)`` (what ``predict`` does for a
    dynamic-shape export), so a 1280x720 frame becomes 640x384, not 640x640; with
    ``square``, as ``LetterBox(auto=False)``.

    Example:
        >>> letterbox(np.zeros((720, 1280, 3), np.uint8), 640).image.shape
        (384, 640, 3)
    """
    height, width = image.shape[:2]
    ratio = min(size / height, size / width)
    new_width, new_height = max(round(width * ratio), 1), max(round(height * ratio), 1)
    pad_x, pad_y = (size - new_width) % stride / 2, (size - new_height) % stride / 2
    if square:
        pad_x, pad_y = (size - new_width) / 2, (size - new_height) / 2
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

    The model is compiled for throughput: one inference stream per core, each on one
    thread, and as many infer requests as streams. A caller takes a free request, so as
    many frames as there are cores are detected at once, each on its own core: less CPU
    per frame than one inference spread over every core, whose threads spin while they
    wait for each other. With ``latency=True`` it is compiled the other way, for a caller
    that detects one frame at a time and waits for each (the figures: docs/PERFORMANCE.md,
    "Design measurements").

    Example:
        >>> model = OpenVinoYolo(ensure_openvino_export(weights, 640), 640)
        >>> detections = model.detect(cv2.imread("car.jpg"))
    """

    def __init__(
        self, export: OpenVinoExport, image_size: int, precision: str = "f32", latency: bool = False
    ) -> None:
        import openvino as ov

        self.export = export
        self.image_size = image_size
        self._names = np.array(export.names)
        core = ov.Core()
        settings = {
            "PERFORMANCE_HINT": "LATENCY" if latency else "THROUGHPUT",
            # What the float parts compute in: f32, or bf16 where the CPU has it. Left to
            # itself, OpenVINO picks bf16 wherever the CPU claims it, slower or not.
            "INFERENCE_PRECISION_HINT": precision,
            # Streams not pinned to cores: they share them with decoding and reading
            # (pinned, replay is slower).
            "ENABLE_CPU_PINNING": False,
            # No compiled-blob cache written anywhere (off by default; this keeps it off if
            # an environment's OpenVINO config turns it on).
            "CACHE_DIR": "",
        }
        compiled = core.compile_model(_takes_bgr(core.read_model(export.xml)), "CPU", settings)
        #: How many frames can be detected at once (one per infer request).
        self.parallel = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.parallel):
            self._requests.put(compiled.create_infer_request())

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plates in one BGR image (thread-safe: waits for a free infer request). One image
        per inference: on one thread, a batch costs as much per image as single frames."""
        square = not self.export.dynamic
        fitted = letterbox(image, self.image_size, self.export.stride, square)
        request = self._requests.get()
        try:
            output = request.infer({0: fitted.image[np.newaxis]})[0][0].copy()
        finally:
            self._requests.put(request)
        return _to_detections(output, fitted, image.shape, self._names)


def _takes_bgr(model: Any) -> Any:
    """``model`` with its input conversion compiled in: it takes the letterboxed image as
    OpenCV holds it (``uint8`` BGR, ``NHWC``) and makes the RGB ``NCHW`` floats in 0..1 the
    network was trained on: cheaper than converting in numpy first. In float32 the boxes
    are ``YOLO.predict``'s; in bfloat16 the conversion rounds differently from predict's
    own, so boxes agree by IoU, not exactly."""
    from openvino import Layout, Type
    from openvino.preprocess import ColorFormat, PrePostProcessor

    steps = PrePostProcessor(model)
    tensor = steps.input().tensor()
    tensor.set_element_type(Type.u8).set_layout(Layout("NHWC")).set_color_format(ColorFormat.BGR)
    steps.input().model().set_layout(Layout("NCHW"))
    convert = steps.input().preprocess()
    convert.convert_element_type(Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
    return steps.build()


class UltralyticsYolo:
    """YOLO weights through ultralytics' ``predict`` (the torch backend).

    Raises:
        ImportError: where ultralytics is not installed (the ``streamer[torch]`` extra).
    """

    def __init__(self, weights: Path, image_size: int) -> None:
        prepare_ultralytics()
        from ultralytics import YOLO

        self.image_size = image_size
        self._model: Any = YOLO(str(weights), task="detect")
        # One ultralytics model is not safe to call from two threads at once.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Plates in one BGR image (thread-safe: one ``predict`` at a time)."""
        with self._lock:
            result = self._model.predict(
                image, verbose=False, conf=MIN_SCORE, imgsz=self.image_size
            )[0]
        return sv.Detections.from_ultralytics(result)
