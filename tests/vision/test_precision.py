"""Choosing the detector's precision: the agreement rule, the cached choice, the machine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from streamer.vision.detect import YoloDetector
from streamer.vision.hardware import Machine, _cpuinfo, this_machine
from streamer.vision.precision import Choice, agreement, choose


def boxes(*found: tuple[float, float, float, float, float]) -> sv.Detections:
    """Detections from ``(x1, y1, x2, y2, confidence)`` tuples (wide plate-sized boxes)."""
    if not found:
        return sv.Detections.empty()
    array = np.array(found, dtype=np.float32)
    return sv.Detections(array[:, :4], confidence=array[:, 4], class_id=np.zeros(len(found), int))


PLATE = (100.0, 100.0, 200.0, 130.0)


@pytest.mark.parametrize(
    ("ours", "reference", "min_iou", "same"),
    [
        ([(*PLATE, 0.8)], [(*PLATE, 0.8)], 1.0, True),
        (
            [(102.0, 101.0, 201.0, 131.0, 0.8)],
            [(*PLATE, 0.8)],
            pytest.approx(0.9086, abs=1e-3),
            True,
        ),
        ([], [(*PLATE, 0.8)], 1.0, False),  # a sure plate missed
        ([(*PLATE, 0.8)], [], 1.0, False),  # a sure plate invented
        ([(*PLATE, 0.3)], [], 1.0, True),  # unsure either way: could start no track
        ([(*PLATE, 0.8), (400.0, 100.0, 500.0, 130.0, 0.6)], [(*PLATE, 0.8)], 1.0, False),
        ([(*PLATE, 0.1)], [(*PLATE, 0.1)], 1.0, True),  # under the detection filter
    ],
    ids=["same", "shifted", "missed", "invented", "unsure", "extra", "filtered"],
)
def test_agreement(
    ours: list[tuple[float, ...]], reference: list[tuple[float, ...]], min_iou: float, same: bool
) -> None:
    assert agreement(boxes(*ours), boxes(*reference)) == (min_iou, same)  # type: ignore[arg-type]


def test_the_choice_is_cached_per_machine(detector: YoloDetector) -> None:
    # The set-up measured this machine; asking again answers from the cache at once.
    first = choose(detector.weights, detector.config.image_size)
    assert choose(detector.weights, detector.config.image_size) == first
    cache = json.loads(detector.weights.with_name("best_precision.json").read_text())
    (key,) = [key for key in cache if key.startswith(this_machine().key())]
    assert Choice.from_json(cache[key]) == first
    assert first.machine == this_machine().describe()
    table = first.table().splitlines()
    assert len(table) == 2 + 3  # header, rule, one row per candidate
    assert (
        sum(
            ("| yes |" in row and row.endswith(f"| {first.trials[0].note} |")) or "yes |" in row
            for row in table
        )
        >= 1
    )


def test_the_machine_is_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
    )
    model, flags = _cpuinfo(cpuinfo)
    machine = Machine(
        model, 2, tuple(f for f in ("avx2", "avx512_bf16", "amx_tile") if f in flags), "2026.4.1"
    )
    assert machine.has_amx
    assert machine.has_bf16
    assert machine.describe() == (
        "Intel(R) Xeon(R) Platinum 8480+, 2 cores, avx2 avx512_bf16, AMX, OpenVINO 2026.4.1"
    )
    assert "amx_tile" in machine.key()
