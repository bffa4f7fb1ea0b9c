"""Still photos: the seed services' ``/detect``, ``/ocr`` and ``/process``, and
``streamer process``.

The photo's path beside the video's (:mod:`streamer.pipeline`), over the same reading
core: detect, read, check the dues and lists, on one image and without tracking. A photo
gets more care than a video frame, which has its neighbours to vote with: a small or
missing plate is looked for again in tiles, and the plate is read several ways and voted
(:class:`~streamer.reading.still.StillReader`).
"""

from __future__ import annotations

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
from streamer.vision.yolo import filter_detections


@dataclass(frozen=True)
class Detection:
    """The most confident plate in an image."""

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

    ``lines`` finds text lines in plate crops (the process's shared detector when ``None``).

    Example:
        >>> stills = StillPipeline(detector, engine, PlateChecks(dues), config.cameras[0])
        >>> stills.process(decode_image(data, config.http.max_image_pixels))["plate_number"]
        'KA05MN4821'
    """

    def __init__(
        self,
        detector: Detector,
        engine: OcrEngine,
        checks: PlateChecks,
        camera: CameraConfig,
        lines: LineFinder | None = None,
    ) -> None:
        self.detector = detector
        self.checks = checks
        self.camera = camera
        self.reader = StillReader(engine, camera.reader, camera.plates, lines)

    def _best(self, image: np.ndarray) -> tuple[float, tuple[int, int, int, int]] | None:
        """The most confident gated box in ``image`` and its confidence."""
        detections = filter_detections(self.detector.detect(image), self.camera.detection)
        if len(detections) == 0 or detections.confidence is None:
            return None
        best = int(np.argmax(detections.confidence))
        x1, y1, x2, y2 = (round(v) for v in detections.xyxy[best])
        return float(detections.confidence[best]), (x1, y1, x2, y2)

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

    def detect(self, image: np.ndarray) -> dict[str, Any]:
        """The seed's ``/detect`` shape: found, confidence, box_xyxy, plate_jpg_hex."""
        found = self.best_plate(image)
        if found is None:
            return {"found": False, "confidence": 0.0, "box_xyxy": None, "plate_jpg_hex": None}
        ok, jpeg = cv2.imencode(".jpg", found.crop)
        return {
            "found": True,
            "confidence": round(found.confidence, 4),
            "box_xyxy": list(found.bbox),
            "plate_jpg_hex": jpeg.tobytes().hex() if ok else None,
        }

    def ocr(self, crop: np.ndarray) -> dict[str, Any]:
        """The seed's ``/ocr`` shape for a plate crop: success, text."""
        read = self.reader.read_crop(crop)
        return {"success": bool(read.text), "text": read.text}

    def process(self, image: np.ndarray) -> dict[str, Any]:
        """The seed's ``/process`` shape: success, plate_number, detector_confidence, bbox,
        dues_result; plus ``format_valid``, ``format`` (the format matched), ``confidence``
        (OCR), ``lists`` and ``possible_lists``."""
        found = self.best_plate(image)
        if found is None:
            return {
                "success": False,
                "plate_number": None,
                "detector_confidence": 0.0,
                "bbox": None,
                "dues_result": None,
                "error": "no plate detected",
            }
        read = self.reader.read_plate(image, found.bbox)
        if not read.text:
            return {
                "success": False,
                "plate_number": None,
                "detector_confidence": round(found.confidence, 4),
                "bbox": list(found.bbox),
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
            "detector_confidence": round(found.confidence, 4),
            "bbox": list(found.bbox),
            "dues_result": checked.dues_result.to_json(),
            **checked.lists.to_json(),
        }
