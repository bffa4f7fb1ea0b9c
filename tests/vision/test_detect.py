"""Detection: the real plate model on demo and recorded frames, in every precision, against
ultralytics' own results; its exports; the choice of precision; and the filter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from streamer.config import DetectionConfig, ModelConfig
from streamer.sources.demo import DemoManifest
from streamer.vision.detect import YoloDetector
from streamer.vision.export import ensure_int8_export, ensure_openvino_export
from streamer.vision.models import OpenVinoExport
from streamer.vision.precision import MIN_IOU, agreement, has_bf16
from streamer.vision.yolo import OpenVinoYolo, filter_detections, letterbox

from support import ultralytics_reference as reference
from support.daemon import ROOT, frame_at


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


#: How close the OpenVINO path is to ultralytics' ``YOLO.predict`` on the same model in the
#: same precision (IoU, confidence). In float32, and for the INT8 model (whose float parts
#: run in float32), both compute the same graph on the same input: the same boxes, measured
#: exact on the demo and parkpow frames (AMD EPYC, AVX-512 BF16 and VNNI, no AMX); the
#: margin is for kernels other CPUs pick. In bfloat16 the input conversion compiled into
#: the graph rounds differently from predict's numpy conversion: IoU 0.949 at worst there.
AS_PREDICT = {"f32": (0.99, 0.01), "int8": (0.99, 0.01), "bf16": (0.93, 0.02)}


@pytest.fixture(scope="module", params=["f32", "bf16", "int8"])
def variant(request: pytest.FixtureRequest, detector: YoloDetector) -> tuple[str, OpenVinoYolo]:
    """Each precision the detector can run in, compiled as the daemon compiles it."""
    precision = str(request.param)
    if precision == "bf16" and not has_bf16():
        pytest.skip("this CPU has no bfloat16 (neither AVX-512 BF16 nor AMX)")
    size = detector.config.image_size
    if precision == "int8":
        return precision, OpenVinoYolo(ensure_int8_export(detector.weights, size), size, "f32")
    return precision, OpenVinoYolo(ensure_openvino_export(detector.weights, size), size, precision)


def compare_with_predict(precision: str, model: OpenVinoYolo, frames: list[np.ndarray]) -> int:
    """Our boxes against predict's on the same model and precision; returns how many."""
    hint = "f32" if precision == "int8" else precision
    theirs = reference.predict(model.export.xml.parent, frames, hint)
    config, found = DetectionConfig(), 0
    for image, expected in zip(frames, theirs, strict=True):
        ours = model.detect(image)
        assert_agree(ours, expected, *AS_PREDICT[precision])
        kept = filter_detections(ours, config)
        assert_agree(kept, filter_detections(expected, config), *AS_PREDICT[precision])
        found += len(kept)
    return found


def test_matches_ultralytics_on_demo_frames(
    variant: tuple[str, OpenVinoYolo], demo_video: DemoManifest
) -> None:
    assert compare_with_predict(*variant, demo_frames(demo_video)) >= len(demo_video.vehicles)


@pytest.mark.shared_data
def test_matches_ultralytics_on_recorded_frames(
    variant: tuple[str, OpenVinoYolo], shared_data: Path
) -> None:
    frames = video_frames(shared_data / "videos" / "parkpow_cars.mp4", step=10)
    assert compare_with_predict(*variant, frames) > 0


def agrees_with_f32(detector: YoloDetector, frames: list[np.ndarray], min_iou: float) -> None:
    """The chosen precision finds the plates float32 finds, boxes overlapping by
    ``min_iou`` or more."""
    size = detector.config.image_size
    f32 = OpenVinoYolo(ensure_openvino_export(detector.weights, size), size, "f32")
    for image in frames:
        iou, same = agreement(detector.detect(image), f32.detect(image))
        assert same
        assert iou >= min_iou


def test_auto_chooses_a_measured_precision_that_agrees_with_f32(
    detector: YoloDetector, demo_video: DemoManifest
) -> None:
    assert detector.config.precision == "auto"
    assert detector.choice is not None
    assert detector.precision == detector.choice.precision
    trials = {trial.precision: trial for trial in detector.choice.trials}
    assert set(trials) == {"f32", "bf16", "int8"}
    chosen = trials[detector.precision]
    assert chosen.accepted
    assert chosen.ms_per_frame == min(t.ms_per_frame for t in trials.values() if t.accepted)
    assert trials["bf16"].ms_per_frame > 0 or not has_bf16()
    # The rule it was chosen by, on demo frames it was not chosen on.
    agrees_with_f32(detector, demo_frames(demo_video), MIN_IOU)


@pytest.mark.shared_data
def test_the_chosen_precision_agrees_with_f32_on_recorded_frames(
    detector: YoloDetector, shared_data: Path
) -> None:
    # On real footage the INT8 model's boxes stray further from float32's than on rendered
    # frames: every third parkpow frame, IoU 0.853 at worst for INT8 and 0.969 for bf16
    # (AMD EPYC, no AMX), with the same plates in every frame, and the same plates read
    # (tests/test_shared_data.py).
    frames = video_frames(shared_data / "videos" / "parkpow_cars.mp4", step=3)
    agrees_with_f32(detector, frames, min_iou=0.8)


def test_a_pinned_precision_is_used(demo_video: DemoManifest) -> None:
    pinned = YoloDetector(ModelConfig(precision="f32"))
    assert (pinned.backend, pinned.precision, pinned.choice) == ("openvino", "f32", None)
    _first, last = demo_video.appearances[0]
    found = filter_detections(
        pinned.detect(frame_at(demo_video.path, last - 0.3)), DetectionConfig()
    )
    assert len(found) == 1


def test_the_torch_backend_agrees_with_openvino_in_float32(
    detector: YoloDetector, demo_video: DemoManifest
) -> None:
    size = detector.config.image_size
    model = OpenVinoYolo(ensure_openvino_export(detector.weights, size), size, "f32")
    frames = demo_frames(demo_video)
    config = DetectionConfig()
    for image, theirs in zip(frames, reference.torch_backend(frames), strict=True):
        ours = filter_detections(model.detect(image), config)
        assert_agree(ours, filter_detections(theirs, config), min_iou=0.9, max_confidence_gap=0.05)


def test_threads_detecting_at_once_each_get_their_own_boxes(
    detector: YoloDetector, demo_video: DemoManifest
) -> None:
    frames = demo_frames(demo_video)[:6]
    # Two other shapes among the frames, as cameras of other sizes would send.
    frames.insert(2, cv2.resize(frames[1], (640, 480)))
    frames.insert(5, frames[4][100:600, 200:1000].copy())
    alone = [detector.detect(image) for image in frames]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(detector.detect, frames * 3))
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
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), np.uint8)
    fitted = letterbox(image, 640)
    assert fitted.image.shape == shape
    (expected,) = reference.letterbox([image])
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


def test_the_daemon_runs_without_torch(detector: YoloDetector) -> None:
    # The set-up keeps torch and ultralytics out of the daemon's environment altogether.
    assert importlib.util.find_spec("torch") is None
    assert importlib.util.find_spec("ultralytics") is None
    # `detector` first, so the models exist and this process only loads them.
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
