"""Detection: the real plate model on demo and recorded frames, its export, and the gates."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from streamer.config import DetectionConfig, ModelConfig
from streamer.tools.demo import DemoManifest
from streamer.vision.detect import YoloDetector, filter_detections, letterbox
from streamer.vision.models import OpenVinoExport, openvino_dir

from conftest import ROOT, frame_at

DetectFn = Callable[[np.ndarray], sv.Detections]


def demo_frames(demo: DemoManifest) -> list[np.ndarray]:
    """Frames with each demo vehicle far, midway and close, and the empty road between."""
    times = []
    for first, last in demo.appearances:
        times += [first + 0.2, (first + last) / 2, last - 0.3, last + 0.6]
    return [frame_at(demo.path, seconds) for seconds in times]


def video_frames(video: Path, step: int) -> list[np.ndarray]:
    """Every ``step``-th frame of ``video``."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % step == 0:
            frames.append(image)
        index += 1
    capture.release()
    assert frames, f"no frames in {video}"
    return frames


def assert_agree(
    ours: sv.Detections, theirs: sv.Detections, min_iou: float, max_confidence_gap: float
) -> None:
    """Same boxes one to one: each of ``ours`` overlaps its own match in ``theirs``."""
    assert len(ours) == len(theirs)
    if len(ours) == 0:
        return
    overlap = sv.box_iou_batch(ours.xyxy, theirs.xyxy)
    match = overlap.argmax(axis=1)
    assert len(set(match.tolist())) == len(match)
    assert overlap.max(axis=1).min() >= min_iou
    assert ours.confidence is not None
    assert theirs.confidence is not None
    assert np.abs(ours.confidence - theirs.confidence[match]).max() <= max_confidence_gap


@pytest.fixture(scope="module")
def predict_on_export(detector: YoloDetector) -> DetectFn:
    """ultralytics' own ``YOLO.predict`` on the export the detector runs."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(str(openvino_dir(detector.weights)), task="detect")

    def detect(image: np.ndarray) -> sv.Detections:
        result = model.predict(image, verbose=False, conf=0.05, imgsz=detector.config.image_size)[0]
        return sv.Detections.from_ultralytics(result)

    return detect


@pytest.fixture(scope="module")
def torch_detector() -> YoloDetector:
    """The same weights on the torch backend (float32, through ultralytics)."""
    return YoloDetector(ModelConfig(backend="torch"))


def test_finds_the_demo_plate(detector: YoloDetector, demo_video: DemoManifest) -> None:
    _first, last = demo_video.appearances[0]
    image = frame_at(demo_video.path, last - 0.3)  # the vehicle is close to the camera
    detections = filter_detections(detector.detect(image), DetectionConfig())
    assert len(detections) == 1
    assert detections.confidence is not None
    assert detections.confidence[0] > 0.4
    assert detections.data["class_name"].tolist() == ["License_Plate"]


def test_empty_road_has_no_plate(detector: YoloDetector, demo_video: DemoManifest) -> None:
    _, last = demo_video.appearances[0]
    next_first, _ = demo_video.appearances[1]
    image = frame_at(demo_video.path, (last + next_first) / 2)
    assert len(filter_detections(detector.detect(image), DetectionConfig())) == 0


def test_uses_a_dynamic_openvino_export(detector: YoloDetector) -> None:
    assert detector.backend == "openvino"
    export = OpenVinoExport.read(openvino_dir(detector.weights))
    assert export is not None
    assert export.serves(detector.config.image_size)


#: How close the detector's boxes are to ``YOLO.predict`` on the same export: IoU and
#: confidence. Not exact, since the input conversion runs inside the compiled graph in
#: bfloat16; the letterbox itself is compared exactly in test_letterbox_is_ultralytics.
AS_PREDICT = (0.97, 0.01)


def test_matches_ultralytics_on_demo_frames(
    detector: YoloDetector, predict_on_export: DetectFn, demo_video: DemoManifest
) -> None:
    for image in demo_frames(demo_video):
        ours, theirs = detector.detect(image), predict_on_export(image)
        assert_agree(ours, theirs, *AS_PREDICT)
        config = DetectionConfig()
        assert_agree(
            filter_detections(ours, config), filter_detections(theirs, config), *AS_PREDICT
        )


@pytest.mark.shared_data
def test_matches_ultralytics_on_recorded_frames(
    detector: YoloDetector, predict_on_export: DetectFn, shared_data: Path
) -> None:
    config = DetectionConfig()
    found = 0
    for image in video_frames(shared_data / "videos" / "parkpow_cars.mp4", step=10):
        ours = filter_detections(detector.detect(image), config)
        assert_agree(ours, filter_detections(predict_on_export(image), config), *AS_PREDICT)
        found += len(ours)
    assert found > 0


def test_agrees_with_torch_on_demo_frames(
    detector: YoloDetector, torch_detector: YoloDetector, demo_video: DemoManifest
) -> None:
    assert torch_detector.backend == "torch"
    config = DetectionConfig()
    for image in demo_frames(demo_video):
        ours, theirs = (
            filter_detections(detector.detect(image), config),
            filter_detections(torch_detector.detect(image), config),
        )
        assert_agree(ours, theirs, min_iou=0.9, max_confidence_gap=0.05)


@pytest.mark.shared_data
def test_agrees_with_torch_on_recorded_frames(
    detector: YoloDetector, torch_detector: YoloDetector, shared_data: Path
) -> None:
    config = DetectionConfig()
    for image in video_frames(shared_data / "videos" / "parkpow_cars.mp4", step=20):
        ours, theirs = (
            filter_detections(detector.detect(image), config),
            filter_detections(torch_detector.detect(image), config),
        )
        assert_agree(ours, theirs, min_iou=0.9, max_confidence_gap=0.05)


@pytest.mark.parametrize("fixture", ["detector", "torch_detector"])
def test_threads_detecting_at_once_each_get_their_own_boxes(
    fixture: str, request: pytest.FixtureRequest, demo_video: DemoManifest
) -> None:
    model: YoloDetector = request.getfixturevalue(fixture)
    frames = demo_frames(demo_video)[:6]
    # Two other shapes among the frames, as cameras of other sizes would send.
    frames.insert(2, cv2.resize(frames[1], (640, 480)))
    frames.insert(5, frames[4][100:600, 200:1000].copy())
    alone = [model.detect(image) for image in frames]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(model.detect, frames * 3))
    assert sum(len(found) for found in alone) >= 4
    for expected, got in zip(alone * 3, together, strict=True):
        assert_agree(got, expected, min_iou=0.999, max_confidence_gap=1e-3)
        assert got.data["class_name"].tolist() == expected.data["class_name"].tolist()


@pytest.mark.parametrize(
    ("height", "width", "shape"),
    [
        (720, 1280, (384, 640, 3)),  # 16:9 pads to a stride multiple, not to a square
        (1080, 1920, (384, 640, 3)),
        (480, 640, (480, 640, 3)),
        (1280, 720, (640, 384, 3)),
        (300, 1000, (192, 640, 3)),
        (64, 64, (640, 640, 3)),  # small images are scaled up, as ultralytics does
        (719, 1283, (384, 640, 3)),  # odd padding and rounding
    ],
)
def test_letterbox_is_ultralytics(height: int, width: int, shape: tuple[int, ...]) -> None:
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    fitted = letterbox(image, 640)
    assert fitted.image.shape == shape
    expected = LetterBox(640, auto=True, stride=32)(image=image)
    assert np.array_equal(fitted.image, expected)


def write_export(directory: Path, imgsz: int, dynamic: bool | None) -> None:
    """A fake export directory: empty model files and ultralytics-shaped metadata."""
    directory.mkdir()
    (directory / "best.xml").write_text("")
    (directory / "best.bin").write_bytes(b"")
    args = "" if dynamic is None else f"args:\n  batch: 1\n  dynamic: {str(dynamic).lower()}\n"
    (directory / "metadata.yaml").write_text(
        f"stride: 32\nimgsz:\n- {imgsz}\n- {imgsz}\nnames:\n  0: License_Plate\n{args}"
    )


@pytest.mark.parametrize(
    ("imgsz", "dynamic", "serves"),
    [
        (640, True, True),
        (640, False, False),  # made before exports were dynamic: exported again, once
        (640, None, False),
        (480, True, False),
    ],
)
def test_which_exports_serve(
    tmp_path: Path, imgsz: int, dynamic: bool | None, serves: bool
) -> None:
    write_export(tmp_path / "best_openvino_model", imgsz, dynamic)
    export = OpenVinoExport.read(tmp_path / "best_openvino_model")
    assert export is not None
    assert export.names == ("License_Plate",)
    assert export.serves(640) is serves


def test_incomplete_export_is_none(tmp_path: Path) -> None:
    write_export(tmp_path / "model", 640, True)
    (tmp_path / "model" / "best.bin").unlink()
    assert OpenVinoExport.read(tmp_path / "model") is None
    assert OpenVinoExport.read(tmp_path / "missing") is None


def test_openvino_detector_does_not_import_torch(detector: YoloDetector) -> None:
    # `detector` first, so the export exists and this process only loads it.
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from streamer.config import ModelConfig\n"
        "from streamer.vision.detect import YoloDetector\n"
        "detector = YoloDetector(ModelConfig())\n"
        "detector.detect(np.zeros((720, 1280, 3), np.uint8))\n"
        "assert detector.backend == 'openvino', detector.backend\n"
        "loaded = [name for name in ('torch', 'ultralytics') if name in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("confidence", "min_area", "kept"),
    [(0.25, 0, [0, 1]), (0.5, 0, [0]), (0.25, 500, [1]), (0.9, 0, [])],
)
def test_filter_detections(confidence: float, min_area: int, kept: list[int]) -> None:
    detections = sv.Detections(
        xyxy=np.array([[0, 0, 10, 10], [0, 0, 40, 20]], dtype=float),  # areas 100 and 800
        confidence=np.array([0.8, 0.3]),
        class_id=np.zeros(2, dtype=int),
    )
    gated = filter_detections(detections, DetectionConfig(confidence=confidence, min_area=min_area))
    expected = detections.xyxy[kept]
    assert np.array_equal(gated.xyxy, expected)
