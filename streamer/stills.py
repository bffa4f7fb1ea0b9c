"""Still photos: the seed services' ``/detect``, ``/ocr`` and ``/process``, and
``streamer process``.

The photo's path beside the video's (:mod:`streamer.pipeline`), over the same reading
core: detect, read, check the dues and lists, on one image and without tracking. A photo
gets more care than a video frame, which has its neighbours to vote with: a small or
missing plate is looked for again in tiles, and each plate is read several ways and voted
(:class:`~streamer.reading.still.StillReader`). Every plate found is answered (``plates``,
read plates first, each by the detector's confidence); the answer's top-level fields are
the first's, the seed's shape. The vehicle model looks at the photo once, while the plates
are read, and each plate gets the vehicle holding it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from streamer.config import CameraConfig
from streamer.reading.lines import LineFinder
from streamer.reading.ocr import OcrEngine
from streamer.reading.plates import matched_format, matches_format
from streamer.reading.still import StillReader
from streamer.stores.checks import PlateChecks
from streamer.vision.detect import Detector
from streamer.vision.track import cut_crop
from streamer.vision.vehicles import (
    NoVehicles,
    Vehicle,
    VehicleDetector,
    coloured,
    holding,
    iou,
    overlap,
)
from streamer.vision.yolo import filter_detections


@dataclass(frozen=True)
class Detection:
    """A plate in an image: the detector's confidence, its box and its crop."""

    confidence: float
    bbox: tuple[int, int, int, int]
    crop: np.ndarray


#: A plate box lower than this share of the image's long side is small: the detector saw
#: it at a few pixels (about 16 at a 640-pixel input), so the image is looked at again
#: in tiles.
SMALL_PLATE = 0.025
#: Tiles per side of the second look, and how much neighbouring tiles overlap (a share of
#: a tile), so that a plate on a tile's edge is whole in its neighbour.
TILES = 2
TILE_OVERLAP = 0.2
#: Two boxes overlapping this much (intersection over union), or the smaller this much
#: inside the larger (a plate cut at a tile's edge), are one plate.
SAME_PLATE, CUT_PLATE = 0.5, 0.8


def tiles(
    width: int, height: int, count: int = TILES, overlap: float = TILE_OVERLAP
) -> list[tuple[int, int, int, int]]:
    """``count`` by ``count`` overlapping tiles ``(x1, y1, x2, y2)`` covering the image."""
    tile_w = width / (count - (count - 1) * overlap)
    tile_h = height / (count - (count - 1) * overlap)
    step_w, step_h = tile_w * (1 - overlap), tile_h * (1 - overlap)
    return [
        (
            round(col * step_w),
            round(row * step_h),
            min(width, round(col * step_w + tile_w)),
            min(height, round(row * step_h + tile_h)),
        )
        for row in range(count)
        for col in range(count)
    ]


class StillPipeline:
    """Detect, read and check plates in single images, with one camera's settings.

    ``vehicles`` finds the vehicle of each plate (none when ``None``); ``lines`` finds text
    lines in plate crops (the process's shared detector when ``None``).

    Example:
        >>> stills = StillPipeline(detector, engine, PlateChecks(dues), config.cameras[0])
        >>> answer = stills.process(decode_image(data, config.http.max_image_pixels))
        >>> answer["plate_number"], [plate["plate_number"] for plate in answer["plates"]]
        ('KA05MN4821', ['KA05MN4821', 'MH12XY7395'])
    """

    def __init__(
        self,
        detector: Detector,
        engine: OcrEngine,
        checks: PlateChecks,
        camera: CameraConfig,
        vehicles: VehicleDetector | None = None,
        lines: LineFinder | None = None,
    ) -> None:
        self.detector = detector
        self.checks = checks
        self.camera = camera
        self.vehicles: VehicleDetector = vehicles or NoVehicles()
        self.reader = StillReader(engine, camera.reader, camera.plates, lines)
        # The vehicle model runs here while the plates are read.
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="still-vehicles")

    def _boxes(self, image: np.ndarray) -> list[tuple[float, tuple[int, int, int, int]]]:
        """Every gated box in ``image`` with its confidence."""
        detections = filter_detections(self.detector.detect(image), self.camera.detection)
        if len(detections) == 0 or detections.confidence is None:
            return []
        return [
            (float(confidence), (round(x1), round(y1), round(x2), round(y2)))
            for (x1, y1, x2, y2), confidence in zip(
                detections.xyxy, detections.confidence, strict=True
            )
        ]

    def _best(self, image: np.ndarray) -> tuple[float, tuple[int, int, int, int]] | None:
        """The most confident gated box in ``image`` and its confidence."""
        return max(self._boxes(image), default=None, key=lambda found: found[0])

    def best_plate(self, image: np.ndarray) -> Detection | None:
        """The most confident plate box that passes the detection gates, if any.

        When the whole image shows no plate or only a small one, it is looked at again in
        overlapping :func:`tiles`, each at the detector's full input size (a small or far
        plate is seen at twice the pixels); the most confident box of all is taken.
        """
        height, width = image.shape[:2]
        found = self._best(image)
        if found is None or found[1][3] - found[1][1] < SMALL_PLATE * max(height, width):
            for x1, y1, x2, y2 in tiles(width, height):
                tiled = self._best(image[y1:y2, x1:x2])
                if tiled is not None and (found is None or tiled[0] > found[0]):
                    bx1, by1, bx2, by2 = tiled[1]
                    found = tiled[0], (bx1 + x1, by1 + y1, bx2 + x1, by2 + y1)
        if found is None:
            return None
        confidence, bbox = found
        return Detection(confidence, bbox, cut_crop(image, bbox))

    def plates(self, image: np.ndarray) -> list[Detection]:
        """Every plate box that passes the detection gates, most confident first.

        When the whole image shows no plate, or its smallest is small, it is looked at
        again in overlapping :func:`tiles` (as :meth:`best_plate` does); a box found twice
        (in the whole image and a tile, or in two tiles) is one plate, the more confident
        box kept, or the larger where one is a part of the other cut at a tile's edge.
        """
        height, width = image.shape[:2]
        found: list[tuple[float, tuple[int, int, int, int]]] = []
        for confidence, box in self._boxes(image):  # two boxes NMS left on one plate are one
            found = _merged(found, confidence, box)
        small = SMALL_PLATE * max(height, width)
        if not found or min(box[3] - box[1] for _, box in found) < small:
            for x1, y1, x2, y2 in tiles(width, height):
                for confidence, (bx1, by1, bx2, by2) in self._boxes(image[y1:y2, x1:x2]):
                    box = (bx1 + x1, by1 + y1, bx2 + x1, by2 + y1)
                    found = _merged(found, confidence, box)
        found.sort(key=lambda pair: -pair[0])
        return [Detection(confidence, box, cut_crop(image, box)) for confidence, box in found]

    def _vehicles(self, image: np.ndarray) -> Future[list[Vehicle]]:
        """The vehicles in ``image``, found in a thread of their own."""
        return self._pool.submit(self.vehicles.vehicles, image)

    @staticmethod
    def _vehicle_json(
        image: np.ndarray, vehicles: list[Vehicle], bbox: tuple[int, int, int, int]
    ) -> dict[str, Any] | None:
        """The vehicle holding the plate ``bbox``, with its colour, as JSON."""
        found = holding(vehicles, bbox)
        return None if found is None else coloured(image, found, bbox).to_json()

    def detect(self, image: np.ndarray) -> dict[str, Any]:
        """The seed's ``/detect`` shape (found, confidence, box_xyxy, plate_jpg_hex: the most
        confident plate's), with ``vehicle`` and every plate in ``plates``."""
        found = self.plates(image)
        if not found:
            return {
                "found": False,
                "confidence": 0.0,
                "box_xyxy": None,
                "plate_jpg_hex": None,
                "vehicle": None,
                "plates": [],
            }
        vehicles = self._vehicles(image).result()
        plates = []
        for plate in found:
            ok, jpeg = cv2.imencode(".jpg", plate.crop)
            plates.append(
                {
                    "found": True,
                    "confidence": round(plate.confidence, 4),
                    "box_xyxy": list(plate.bbox),
                    "plate_jpg_hex": jpeg.tobytes().hex() if ok else None,
                    "vehicle": self._vehicle_json(image, vehicles, plate.bbox),
                }
            )
        return {**plates[0], "plates": plates}

    def ocr(self, crop: np.ndarray) -> dict[str, Any]:
        """The seed's ``/ocr`` shape for a plate crop: success, text."""
        read = self.reader.read_crop(crop)
        return {"success": bool(read.text), "text": read.text}

    def process(self, image: np.ndarray) -> dict[str, Any]:
        """The seed's ``/process`` shape: success, plate_number, detector_confidence, bbox,
        dues_result; plus ``format_valid``, ``format`` (the format matched), ``confidence``
        (OCR), ``lists``, ``possible_lists`` and ``vehicle``: the first plate's of
        ``plates``, which holds every plate found in that shape, read plates first."""
        found = self.plates(image)
        if not found:
            return {
                "success": False,
                "plate_number": None,
                "detector_confidence": 0.0,
                "bbox": None,
                "dues_result": None,
                "error": "no plate detected",
                "vehicle": None,
                "plates": [],
            }
        vehicles = self._vehicles(image)
        plates = [self._answer(image, plate) for plate in found]
        plates.sort(key=lambda plate: not plate["success"])  # stable: by confidence within
        found_vehicles = vehicles.result()
        for answer in plates:
            answer["vehicle"] = self._vehicle_json(image, found_vehicles, tuple(answer["bbox"]))
        return {**plates[0], "plates": plates}

    def _answer(self, image: np.ndarray, plate: Detection) -> dict[str, Any]:
        """One plate's answer: read, its format, dues and lists."""
        read = self.reader.read_plate(image, plate.bbox)
        if not read.text:
            return {
                "success": False,
                "plate_number": None,
                "detector_confidence": round(plate.confidence, 4),
                "bbox": list(plate.bbox),
                "dues_result": None,
                "error": "plate detected but not readable",
            }
        checked = self.checks.check(read.text)
        return {
            "success": True,
            "plate_number": read.text,
            "confidence": round(read.confidence, 3),
            "format_valid": matches_format(read.text, self.camera.plates.formats),
            "format": matched_format(read.text, self.camera.plates.formats),
            "detector_confidence": round(plate.confidence, 4),
            "bbox": list(plate.bbox),
            "dues_result": checked.dues_result.to_json(),
            **checked.lists.to_json(),
        }


def _merged(
    found: list[tuple[float, tuple[int, int, int, int]]],
    confidence: float,
    box: tuple[int, int, int, int],
) -> list[tuple[float, tuple[int, int, int, int]]]:
    """``found`` with the box ``box`` added, or taking the place of the box it repeats."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    for index, (other_confidence, other) in enumerate(found):
        other_area = (other[2] - other[0]) * (other[3] - other[1])
        if iou(box, other) >= SAME_PLATE:
            if confidence > other_confidence:
                found[index] = (confidence, box)
            return found
        smaller, larger = (box, other) if area < other_area else (other, box)
        if overlap(smaller, larger) >= CUT_PLATE:
            if larger is box:
                found[index] = (confidence, box)
            return found
    return [*found, (confidence, box)]
