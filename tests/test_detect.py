"""Detection: the real plate model on demo frames, and the gates."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from streamer.config import DetectionConfig
from streamer.demo import DemoManifest
from streamer.detect import YoloDetector, gate

from conftest import frame_at


def test_finds_the_demo_plate(detector: YoloDetector, demo_video: DemoManifest) -> None:
    _first, last = demo_video.appearances[0]
    image = frame_at(demo_video.path, last - 0.3)  # the vehicle is close to the camera
    detections = gate(detector.detect(image), DetectionConfig())
    assert len(detections) == 1
    assert detections.confidence is not None
    assert detections.confidence[0] > 0.4


def test_empty_road_has_no_plate(detector: YoloDetector, demo_video: DemoManifest) -> None:
    _, last = demo_video.appearances[0]
    next_first, _ = demo_video.appearances[1]
    image = frame_at(demo_video.path, (last + next_first) / 2)
    assert len(gate(detector.detect(image), DetectionConfig())) == 0


def test_uses_openvino_on_cpu(detector: YoloDetector) -> None:
    assert detector.backend == "openvino"


@pytest.mark.parametrize(
    ("confidence", "min_area", "kept"),
    [(0.25, 0, [0, 1]), (0.5, 0, [0]), (0.25, 500, [1]), (0.9, 0, [])],
)
def test_gate(confidence: float, min_area: int, kept: list[int]) -> None:
    detections = sv.Detections(
        xyxy=np.array([[0, 0, 10, 10], [0, 0, 40, 20]], dtype=float),  # areas 100 and 800
        confidence=np.array([0.8, 0.3]),
        class_id=np.zeros(2, dtype=int),
    )
    gated = gate(detections, DetectionConfig(confidence=confidence, min_area=min_area))
    expected = detections.xyxy[kept]
    assert np.array_equal(gated.xyxy, expected)
