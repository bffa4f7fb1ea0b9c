"""The machine the detector runs on: CPU model, cores and the instruction sets that decide
which precision is fastest (AVX-512 VNNI for INT8, BF16 and AMX for bfloat16).

Every measured figure names the machine it came from (:meth:`Machine.describe`), and the
detector's choice of precision is cached per machine (:meth:`Machine.key`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: The CPU flags that matter for inference speed, as /proc/cpuinfo names them.
RELEVANT_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@dataclass(frozen=True)
class Machine:
    """What inference speed depends on.

    Attributes:
        cpu: the CPU's model name.
        cores: logical CPUs this process may use.
        flags: which of :data:`RELEVANT_FLAGS` the CPU has.
        openvino: the OpenVINO runtime's version.
    """

    cpu: str
    cores: int
    flags: tuple[str, ...]
    openvino: str

    @property
    def has_amx(self) -> bool:
        """Whether the CPU has AMX tiles (bfloat16 and INT8 matrix units)."""
        return "amx_tile" in self.flags

    @property
    def has_bf16(self) -> bool:
        """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags

    def key(self) -> str:
        """Identifies the machine for caches of measurements: CPU, flags, OpenVINO."""
        return (
            f"{self.cpu} | {self.cores} cores | {' '.join(self.flags)} | openvino {self.openvino}"
        )

    def describe(self) -> str:
        """One line for tables: ``AMD EPYC, 2 cores, avx2 avx512f …, no AMX, OpenVINO 2026.4.1``."""
        amx = "AMX" if self.has_amx else "no AMX"
        flags = " ".join(flag for flag in self.flags if not flag.startswith("amx"))
        return (
            f"{self.cpu}, {self.cores} cores, {flags or 'no AVX2'}, {amx}, OpenVINO {self.openvino}"
        )


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """The first processor's model name and flags (empty where there is no /proc)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags":
            flags = set(value.split())
            break
    return model, flags


@cache
def this_machine() -> Machine:
    """The machine this process runs on."""
    import openvino as ov

    model, flags = _cpuinfo()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    version = ov.get_version().split("-")[0]
    return Machine(model, cores or 1, tuple(f for f in RELEVANT_FLAGS if f in flags), version)
