"""Which precision the detector runs in: measured on the machine at hand, not assumed.

CPUs differ in what is fast. With AMX, bfloat16 is fastest and INT8 gains nothing; without
it, bfloat16 can be slower than float32, and INT8 (VNNI) much faster. So the candidates
are timed here, each compiled the way the daemon runs it (one inference stream per core,
all busy), and checked against float32 on frames held apart from the INT8 calibration:

- ``f32``: the float export in float32, the reference;
- ``bf16``: the float export with bfloat16 inference, where OpenVINO says the CPU has it;
- ``int8``: the INT8 model (:func:`~streamer.vision.export.ensure_int8_export`).

A candidate is acceptable when it finds the same plates as float32 (every box that could
start a track, confidence 0.35 and up, on either side has its counterpart) and every pair
of boxes overlaps with IoU 0.9 or more. The fastest acceptable one is chosen, and the
choice is cached per CPU model and flags, OpenVINO version, weights and input size.
``model.precision`` pins one instead.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from streamer.config import DetectionConfig
from streamer.vision.export import ensure_int8_export, ensure_openvino_export
from streamer.vision.hardware import this_machine
from streamer.vision.models import ModelError, sha256_of
from streamer.vision.yolo import OpenVinoYolo, filter_detections

logger = logging.getLogger(__name__)

PRECISIONS = ("f32", "bf16", "int8")
#: A box this confident can start a track (tracker.activation_threshold's default), so
#: a candidate must find it where float32 does, and the other way round.
SURE = 0.35
#: Every box a candidate shares with float32 overlaps it at least this much.
MIN_IOU = 0.9
#: Held-apart frames: the demo renderer with plates and a seed the calibration never saw.
HELD_OUT_PLATES = ("GJ01AB2345", "KL07CD9012", "UP32EF6789")
HELD_OUT_SEED = 7


@dataclass(frozen=True)
class Trial:
    """One candidate as measured.

    Attributes:
        precision: ``f32``, ``bf16`` or ``int8``.
        ms_per_frame: wall milliseconds per frame with every inference stream busy, the
            best of the passes (0 when it could not run).
        min_iou: the least overlap of a box with float32's (1.0 for float32 itself).
        same_plates: whether it found the plates float32 found, and no others.
        accepted: whether it may be chosen.
        note: why not, or what it is.
    """

    precision: str
    ms_per_frame: float
    min_iou: float
    same_plates: bool
    accepted: bool
    note: str


@dataclass(frozen=True)
class Choice:
    """The precision chosen for a machine, why, and every candidate's figures."""

    precision: str
    reason: str
    machine: str
    measured_at: str
    trials: tuple[Trial, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the cache's record)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Choice:
        """The choice a cache record holds."""
        trials = tuple(Trial(**trial) for trial in data["trials"])
        return cls(data["precision"], data["reason"], data["machine"], data["measured_at"], trials)

    def table(self) -> str:
        """The candidates as a markdown table."""
        lines = ["| precision | ms/frame | min IoU vs f32 | same plates | chosen | note |"]
        lines.append("|---|---|---|---|---|---|")
        for trial in self.trials:
            ms = f"{trial.ms_per_frame:.1f}" if trial.ms_per_frame else "-"
            chosen = "yes" if trial.precision == self.precision else ""
            lines.append(
                f"| {trial.precision} | {ms} | {trial.min_iou:.3f} | "
                f"{'yes' if trial.same_plates else 'no'} | {chosen} | {trial.note} |"
            )
        return "\n".join(lines)


def agreement(ours: sv.Detections, reference: sv.Detections) -> tuple[float, bool]:
    """The least IoU of ``ours`` with the ``reference`` boxes they match, and whether both
    found the same plates (see :data:`SURE`), after the default detection filter."""
    config = DetectionConfig()
    ours, reference = filter_detections(ours, config), filter_detections(reference, config)
    overlap = sv.box_iou_batch(ours.xyxy, reference.xyxy)
    if overlap.size == 0:  # one side found nothing: the other must have no sure plate
        return 1.0, not (_sure(ours).any() or _sure(reference).any())
    same = bool(
        (overlap.max(axis=1) >= 0.5)[_sure(ours)].all()
        and (overlap.max(axis=0) >= 0.5)[_sure(reference)].all()
    )
    matched = overlap.max(axis=1)
    matched = matched[matched >= 0.5]
    return float(matched.min()) if len(matched) else 1.0, same


def _sure(detections: sv.Detections) -> np.ndarray:
    """Which boxes could start a track (:data:`SURE`)."""
    if detections.confidence is None:
        return np.zeros(len(detections), bool)
    return np.asarray(detections.confidence) >= SURE


def held_out_frames(count: int = 48) -> list[np.ndarray]:
    """``count`` 1280x720 frames of a demo video no model was calibrated on."""
    from streamer.sources.demo import DemoVehicle, render_video
    from streamer.sources.files import FileSource

    vehicles = [DemoVehicle(plate, 0.0, "") for plate in HELD_OUT_PLATES]
    with tempfile.TemporaryDirectory(prefix="streamer-held-out-") as folder:
        video = render_video(
            Path(folder) / "held-out.mp4",
            vehicles,
            seconds_per_vehicle=2.5,
            gap_seconds=0.5,
            seed=HELD_OUT_SEED,
        )
        step = max(1, video.frame_count // count)
        frames = [
            f.image for f in FileSource("held-out", video.path).frames() if f.index % step == 0
        ]
    return frames[:count]


def _time(model: OpenVinoYolo, frames: list[np.ndarray]) -> float:
    """Wall milliseconds per frame with every inference stream busy."""
    with ThreadPoolExecutor(model.parallel) as pool:
        started = time.perf_counter()
        list(pool.map(model.detect, frames))
        return 1000 * (time.perf_counter() - started) / len(frames)


def timings(
    candidates: dict[str, OpenVinoYolo], frames: list[np.ndarray], passes: int = 3
) -> dict[str, float]:
    """Each candidate's best wall milliseconds per frame with every inference stream busy,
    over ``passes`` interleaved, so a busy moment does not favour one candidate."""
    speeds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(passes):
        for name, model in candidates.items():
            speeds[name].append(_time(model, frames))
    return {name: min(times) for name, times in speeds.items()}


def measure(weights: Path, image_size: int, passes: int = 3) -> Choice:
    """Time and check every candidate on this machine; the fastest acceptable is chosen.

    Raises:
        ModelError: when not even the float export can be made.
    """
    machine = this_machine()
    f32 = ensure_openvino_export(weights, image_size)
    candidates: dict[str, OpenVinoYolo] = {"f32": OpenVinoYolo(f32, image_size, "f32")}
    notes = {"f32": "the reference"}
    if has_bf16():
        candidates["bf16"] = OpenVinoYolo(f32, image_size, "bf16")
        notes["bf16"] = "AMX" if machine.has_amx else "AVX-512 BF16, no AMX"
    else:
        notes["bf16"] = "this CPU has no bfloat16"
    try:
        candidates["int8"] = OpenVinoYolo(
            ensure_int8_export(weights, image_size), image_size, "f32"
        )
        notes["int8"] = (
            "VNNI" if "avx512_vnni" in machine.flags or "avx_vnni" in machine.flags else ""
        )
    except ModelError as error:
        notes["int8"] = f"not available: {error}"
    frames = held_out_frames()
    results = {
        name: [model.detect(image) for image in frames] for name, model in candidates.items()
    }
    speeds = timings(candidates, frames, passes)
    trials = []
    for name in PRECISIONS:
        if name not in candidates:
            trials.append(Trial(name, 0.0, 0.0, False, False, notes[name]))
            continue
        pairs = [agreement(o, r) for o, r in zip(results[name], results["f32"], strict=True)]
        min_iou = min(iou for iou, _ in pairs)
        same = all(same for _, same in pairs)
        accepted = same and min_iou >= MIN_IOU
        note = (
            notes[name]
            if accepted
            else f"differs from f32 (IoU {min_iou:.3f}, same plates: {same})"
        )
        trials.append(Trial(name, speeds[name], round(min_iou, 4), same, accepted, note))
    best = min((t for t in trials if t.accepted), key=lambda t: t.ms_per_frame)
    reference = next(t for t in trials if t.precision == "f32")
    reason = (
        f"fastest that finds the same plates as f32: {best.ms_per_frame:.1f} ms/frame, "
        f"{reference.ms_per_frame / best.ms_per_frame:.2f}x f32's speed"
    )
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return Choice(best.precision, reason, machine.describe(), stamp, tuple(trials))


def has_bf16() -> bool:
    """Whether OpenVINO can compute in bfloat16 on this CPU."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _cache_file(weights: Path) -> Path:
    return weights.with_name(f"{weights.stem}_precision.json")


def cached_measure(
    weights: Path, key: str, make: Callable[[], dict[str, Any]], remeasure: bool = False
) -> dict[str, Any]:
    """What ``make`` measured for ``weights`` on this machine (its CPU, OpenVINO version and
    the weights' digest, with ``key``), from the cache beside the weights; measured (and
    cached) first when there is none or ``remeasure`` asks for it."""
    key = f"{this_machine().key()} | weights {sha256_of(weights)[:16]} | {key}"
    path = _cache_file(weights)
    try:
        cached: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not remeasure and isinstance(cached.get(key), dict):
        return dict(cached[key])
    measured = make()
    cached[key] = measured
    staged = path.with_suffix(".part")
    staged.write_text(json.dumps(cached, indent=1))
    staged.replace(path)
    return measured


def choose(weights: Path, image_size: int, remeasure: bool = False) -> Choice:
    """The cached choice for this machine, OpenVINO, weights and size; measured first
    (and cached) when there is none or ``remeasure`` asks for it.

    Raises:
        ModelError: when the models cannot be made.
    """

    def make() -> dict[str, Any]:
        logger.info("choosing the detector's precision on this machine (once; about 20 s)")
        return measure(weights, image_size).to_json()

    try:
        return Choice.from_json(cached_measure(weights, f"size {image_size}", make, remeasure))
    except (KeyError, TypeError):  # written by another version: measured again
        return Choice.from_json(cached_measure(weights, f"size {image_size}", make, True))
