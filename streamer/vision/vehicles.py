"""Vehicles: the COCO vehicle model on the OpenVINO runtime, and which vehicle holds a plate.

Ultralytics' COCO YOLOv8n (the ONNX file :data:`~streamer.vision.models.VEHICLE_MODEL`,
fetched at set-up) finds cars, motorcycles, buses and trucks. It costs several plate
detections, so it runs where it pays: on the frame of a track's best plate crop (again for
its final event if that crop changed); on photos; and now and then while something moves
with no plate in view (:mod:`streamer.vision.watch`), never on every frame. Its input shape
is fixed, so frames are letterboxed to a square. It computes in bfloat16 where the CPU has
it and that measures faster here than float32 (measured once per machine and cached, as
the plate detector's precision is); ``vehicles.precision`` pins one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from streamer.config import VehiclesConfig
from streamer.vision.colour import vehicle_colour
from streamer.vision.direction import Box
from streamer.vision.models import VEHICLE_MODEL, ModelError, OpenVinoExport
from streamer.vision.precision import cached_measure, has_bf16, timings
from streamer.vision.yolo import OpenVinoYolo

logger = logging.getLogger(__name__)

#: The vehicle classes of COCO, by class id.
VEHICLE_CLASSES = {2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
#: COCO's 80 classes, the vehicles named (the others are never reported).
COCO_NAMES = tuple(VEHICLE_CLASSES.get(index, "") for index in range(80))
#: The model's fixed input size and its largest stride.
INPUT_SIZE, STRIDE = 640, 32
#: Boxes of two classes overlapping this much are one vehicle (a pickup is found as a car
#: and as a truck): the more confident is kept.
SAME_VEHICLE = 0.7
#: A plate box at least this share inside a vehicle box is that vehicle's.
INSIDE = 0.8


@dataclass(frozen=True)
class Vehicle:
    """A vehicle in a frame: its type (car, motorcycle, bus, truck), the model's
    confidence, its box ``(x1, y1, x2, y2)`` in frame pixels, and its colour (one of
    :data:`~streamer.vision.colour.COLOURS`, ``None`` where it cannot be told) with its
    confidence."""

    type: str
    confidence: float
    box: Box
    colour: str | None = None
    colour_confidence: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """``{"type", "confidence", "box", "colour", "colour_confidence"}``."""
        return {
            "type": self.type,
            "confidence": round(self.confidence, 3),
            "box": list(self.box),
            "colour": self.colour,
            "colour_confidence": round(self.colour_confidence, 2),
        }

    @classmethod
    def from_json(cls, record: Any) -> Vehicle | None:
        """The vehicle of an event's JSON (``None`` for none, or an event logged before
        vehicles)."""
        if not isinstance(record, dict):
            return None
        return cls(
            str(record["type"]),
            float(record["confidence"]),
            tuple(int(v) for v in record["box"]),  # type: ignore[arg-type]
            None if record.get("colour") is None else str(record["colour"]),
            float(record.get("colour_confidence") or 0.0),
        )


class VehicleDetector(Protocol):
    """Finds vehicles in BGR images."""

    def vehicles(self, image: np.ndarray) -> list[Vehicle]:
        """The vehicles in ``image``, most confident first, without their colour. Safe to
        call from several threads at once."""
        ...


class NoVehicles:
    """The vehicle detector of a daemon whose ``vehicles.enabled`` is off: finds none."""

    def vehicles(self, image: np.ndarray) -> list[Vehicle]:
        """None."""
        return []


def overlap(a: Box, b: Box) -> float:
    """The share of box ``a`` that lies inside box ``b``."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / max(1, (a[2] - a[0]) * (a[3] - a[1]))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(1, union)


def holding(vehicles: Sequence[Vehicle], plate: Box) -> Vehicle | None:
    """The vehicle whose box holds the ``plate`` box (:data:`INSIDE` of it), below the
    vehicle's top third; the smallest such box where several do (a car in front of a
    truck), ``None`` where none does."""
    centre_y = (plate[1] + plate[3]) / 2
    holders = [
        vehicle
        for vehicle in vehicles
        if overlap(plate, vehicle.box) >= INSIDE
        and centre_y >= vehicle.box[1] + (vehicle.box[3] - vehicle.box[1]) / 3
    ]
    if not holders:
        return None
    return min(holders, key=lambda v: (v.box[2] - v.box[0]) * (v.box[3] - v.box[1]))


def coloured(image: np.ndarray, vehicle: Vehicle, plate: Box | None = None) -> Vehicle:
    """``vehicle`` with its colour, told from its pixels in ``image`` (the ``plate`` left out)."""
    colour = vehicle_colour(image, vehicle.box, plate)
    if colour is None:
        return vehicle
    return replace(vehicle, colour=colour.name, colour_confidence=colour.confidence)


def vehicle_of(detector: VehicleDetector, image: np.ndarray, plate: Box) -> Vehicle | None:
    """The vehicle holding ``plate`` in ``image``, with its colour; ``None`` where none does."""
    found = holding(detector.vehicles(image), plate)
    return None if found is None else coloured(image, found, plate)


def crop_of(image: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of ``box`` in ``image`` (clipped to it)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    return image[max(0, y1) : min(height, y2), max(0, x1) : min(width, x2)]


class OpenVinoVehicles:
    """The COCO vehicle model on the OpenVINO runtime (CPU, float32).

    Example:
        >>> detector = OpenVinoVehicles(VehiclesConfig())
        >>> [vehicle.type for vehicle in detector.vehicles(cv2.imread("gate.jpg"))]
        ['car']
    """

    def __init__(self, config: VehiclesConfig, weights: Path | None = None) -> None:
        """Load the cached model (``weights``: another ONNX file of the same classes).

        Raises:
            ModelError: when the model is not fetched or cannot be loaded.
        """
        path = weights or VEHICLE_MODEL.path
        if not path.is_file():
            raise ModelError(
                f"vehicle model not found at {path}; fetch it with `streamer model fetch` "
                "(or `make setup`), or set vehicles.enabled: false"
            )
        self.config = config
        export = OpenVinoExport(path, INPUT_SIZE, False, STRIDE, COCO_NAMES)
        try:
            self.precision: str = config.precision
            if self.precision == "auto":
                self.precision = fastest_precision(export)
            elif self.precision == "bf16" and not has_bf16():
                raise ModelError("vehicles.precision bf16: this CPU has no bfloat16")
            self._model = OpenVinoYolo(export, INPUT_SIZE, self.precision)
            self._model.detect(np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8))
        except ModelError:
            raise
        except Exception as error:
            raise ModelError(f"cannot load the vehicle model {path}: {error}") from error
        logger.info("vehicle detector %s on openvino %s", path, self.precision)

    def vehicles(self, image: np.ndarray) -> list[Vehicle]:
        """The cars, motorcycles, buses and trucks in ``image`` at ``vehicles.confidence``
        or more, most confident first; of boxes of two classes on one vehicle, the more
        confident."""
        found = self._model.detect(image)
        if len(found) == 0 or found.confidence is None or found.class_id is None:
            return []
        keep = np.isin(found.class_id, list(VEHICLE_CLASSES))
        keep &= found.confidence >= self.config.confidence
        kept: list[Vehicle] = []
        for index in np.argsort(-found.confidence):
            if not keep[index]:
                continue
            box = tuple(round(float(v)) for v in found.xyxy[index])
            if any(iou(box, other.box) >= SAME_VEHICLE for other in kept):  # type: ignore[arg-type]
                continue
            vehicle_type = VEHICLE_CLASSES[int(found.class_id[index])]
            kept.append(Vehicle(vehicle_type, float(found.confidence[index]), box))  # type: ignore[arg-type]
        return kept


def fastest_precision(export: OpenVinoExport) -> str:
    """``bf16`` where the CPU has bfloat16 and it runs the model faster than float32 on
    this machine (timed once with every inference stream busy, then cached), else ``f32``.
    Both give the same vehicles on real frames (tests/vision/test_vehicles.py)."""
    if not has_bf16():
        return "f32"

    def make() -> dict[str, Any]:
        frames = [np.full((720, 1280, 3), level, np.uint8) for level in (60, 120, 180, 240)]
        models = {name: OpenVinoYolo(export, INPUT_SIZE, name) for name in ("f32", "bf16")}
        return {"ms_per_frame": timings(models, frames * 2)}

    speeds = cached_measure(export.xml, "vehicle model", make)["ms_per_frame"]
    return "bf16" if speeds["bf16"] < speeds["f32"] else "f32"


def annotate_vehicle(image: np.ndarray, vehicle: Vehicle) -> None:
    """Draw the vehicle's box on ``image`` (in place)."""
    thickness = max(2, image.shape[0] // 360)
    x1, y1, x2, y2 = vehicle.box
    cv2.rectangle(image, (x1, y1), (x2, y2), (255, 160, 0), thickness)
