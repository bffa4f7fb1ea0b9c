"""Still photos: a small plate is looked for again in tiles, a large one is not."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from streamer.config import CameraConfig
from streamer.events import NOT_FOUND, DuesResult
from streamer.stills import StillPipeline, tiles
from streamer.stores.checks import PlateChecks

from support.factories import NoLines, ScriptedEngine


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (691, 518), (101, 77)])
def test_tiles_cover_the_image_with_overlap(width: int, height: int) -> None:
    found = tiles(width, height)
    assert len(found) == 4
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in found:
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    # neighbours overlap, so a plate on one tile's edge is whole in another
    assert found[0][2] > found[1][0]
    assert found[0][3] > found[2][1]


class TileDetector:
    """Sees the plate only when it fills enough of the image it is given (as a detector
    at a fixed input size misses a far plate); records the sizes it was given."""

    def __init__(self, plate: tuple[int, int, int, int], confidence: float) -> None:
        self.plate, self.confidence, self.sizes = plate, confidence, []

    def detect(self, image: np.ndarray) -> sv.Detections:
        self.sizes.append(image.shape[:2])
        x1, y1, x2, y2 = self.plate
        height, width = image.shape[:2]
        if width > 1500 or x2 > width or y2 > height:  # whole image, or not in this tile
            return sv.Detections.empty()
        return sv.Detections(
            xyxy=np.array([[x1, y1, x2, y2]], float), confidence=np.array([self.confidence])
        )


CAMERA = CameraConfig(name="still", source="none.mp4")


class NoDues:
    def lookup(self, plate: str) -> DuesResult:
        return NOT_FOUND


def test_a_small_plate_missed_by_the_first_look_is_found_in_a_tile() -> None:
    detector = TileDetector((100, 100, 180, 130), 0.8)
    engine = ScriptedEngine([])
    processor = StillPipeline(detector, engine, PlateChecks(NoDues()), CAMERA, lines=NoLines())
    found = processor.best_plate(np.zeros((1080, 1920, 3), np.uint8))
    assert found is not None
    assert found.bbox == (100, 100, 180, 130)  # the top-left tile: no offset
    assert len(detector.sizes) == 5  # the whole image, then four tiles


def test_a_large_plate_needs_no_second_look() -> None:
    class Large:
        calls = 0

        def detect(self, image: np.ndarray) -> sv.Detections:
            Large.calls += 1
            return sv.Detections(
                xyxy=np.array([[100, 100, 500, 200]], float), confidence=np.array([0.9])
            )

    processor = StillPipeline(
        Large(), ScriptedEngine([]), PlateChecks(NoDues()), CAMERA, lines=NoLines()
    )
    assert processor.best_plate(np.zeros((1080, 1920, 3), np.uint8)) is not None
    assert Large.calls == 1
