"""Settings of the detector, of which frames are detected, and of the tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from streamer.config.base import Section


class ModelConfig(Section):
    """The plate detector shared by every camera."""

    weights: Path | None = Field(
        None,
        description="YOLO weights (.pt) trained for plates. Empty: the default fastanpr "
        "YOLOv8n plate model fetched at set-up. Bring weights trained for your region.",
    )
    backend: Literal["auto", "openvino", "torch"] = Field(
        "auto",
        description="'auto' runs an OpenVINO export of the weights on CPU (made once and "
        "cached next to them): several times faster than torch and without torch's memory. "
        "It falls back to torch if the export cannot be made.",
    )
    precision: Literal["auto", "f32", "bf16", "int8"] = Field(
        "auto",
        description="What the OpenVINO model computes in. 'auto' times float32, bfloat16 "
        "(where the CPU has it) and the INT8 model on this machine, keeps the fastest that "
        "finds the same plates as float32, and caches the choice per CPU (`streamer model "
        "info` shows it). bfloat16 is fastest with AMX but can be slower than float32 "
        "without it; INT8 is fastest on most CPUs without AMX.",
    )
    image_size: int = Field(
        640,
        ge=160,
        le=1920,
        multiple_of=32,
        description="Inference size in pixels. Larger finds smaller, farther plates but "
        "costs time roughly with its square.",
    )


class DetectionConfig(Section):
    """Which frames are detected, where, and which boxes are kept for tracking."""

    confidence: float = Field(
        0.25,
        ge=0.01,
        le=1.0,
        description="Minimum detector confidence. Lower keeps faint plates alive in the "
        "tracker (ByteTrack uses low-score boxes) at the price of more noise.",
    )
    min_area: int = Field(
        150,
        ge=0,
        le=1_000_000,
        description="Minimum box area in pixels; smaller plates are too small to read.",
    )
    rate_fps: float = Field(
        5.0,
        ge=0,
        le=120,
        description="Frames detected per second of the source's clock; the frames between "
        "are decoded but not converted or detected, and the tracker carries each plate "
        "across the gap. A vehicle at a gate is in view for a second or more, so 5 "
        "reads it as well as every frame does at a fraction of the cost; raise it for "
        "faster traffic (a track needs tracker.min_frames sightings). 0 detects every frame.",
    )
    motion_gate: bool = Field(
        True,
        description="Skip detection on frames where nothing moved in the region of interest "
        "since the last examined frame; open tracks stay alive meanwhile, so a vehicle "
        "waiting at a barrier remains one track. Saves most of the work on a quiet gate.",
    )
    motion_threshold: float = Field(
        0.002,
        ge=0.0,
        le=1.0,
        description="Fraction of the region's pixels (on a 160-pixel-wide grey copy) that "
        "must change for a frame to count as moving. Raise it for rain, foliage or a "
        "flickering light; 0 treats every change as motion.",
    )
    start_frames: int = Field(
        5,
        ge=0,
        le=1000,
        description="Frames detected after the camera starts or reconnects, and after a "
        "detection finds a plate that no track holds yet, whether or not anything moves, "
        "so a vehicle already standing in view, or one that appeared from one frame to "
        "the next and stands, is found (a still scene never trips the motion gate). At "
        "least tracker.min_frames.",
    )
    unread_rate_fps: float = Field(
        1.0,
        ge=0,
        le=120,
        description="While an open track's plate is not read with confidence yet, frames "
        "are detected at least this often even when nothing moves, so a vehicle that "
        "stopped before it could be read still is. 0: only on motion.",
    )
    idle_rate_fps: float = Field(
        0.2,
        ge=0,
        le=120,
        description="Frames detected per second when nothing moves and no plate is "
        "unread: a vehicle that crept in below motion_threshold is still found within "
        "1 / idle_rate_fps seconds. 0: only on motion.",
    )
    roi: tuple[float, float, float, float] | None = Field(
        None,
        description="Region of interest as fractions of the frame, [x1, y1, x2, y2] "
        "(e.g. [0, 0.4, 1, 1] for the lower 60%). Only this part is detected and watched "
        "for motion: no plates from the road behind the gate. The detector fits the "
        "region, not the frame, to model.image_size, so a region smaller than that is "
        "enlarged: on a wide camera where the lane is a few hundred pixels, a region around "
        "it reads plates some 20 pixels tall that the whole frame, shrunk to fit, misses. "
        "A detection costs about what the fitted region's pixels do: a wide strip less "
        "than the whole frame, a square region more. Empty: the whole frame.",
    )

    @field_validator("roi")
    @classmethod
    def _roi_ordered(
        cls, roi: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if roi is None:
            return None
        x1, y1, x2, y2 = roi
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError("must be [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1, 0 <= y1 < y2 <= 1")
        return roi


class TrackerConfig(Section):
    """ByteTrack settings and how a track ends."""

    lost_timeout_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="A track ends (and its plate is read) once it has not been seen for "
        "this long in media time. Longer survives occlusion; shorter emits sooner.",
    )
    activation_threshold: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="Detector confidence needed to start a new track.",
    )
    high_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Boxes at or above this are matched first; lower ones only extend tracks.",
    )
    minimum_iou: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Overlap needed to match a box to a track. Plates move fast relative to "
        "their size, so keep this low.",
    )
    min_frames: int = Field(
        3,
        ge=1,
        le=1000,
        description="Tracks seen in fewer frames are treated as noise and give no event.",
    )
    best_crops: int = Field(
        5,
        ge=1,
        le=50,
        description="How many of a track's best crops (by size, sharpness, confidence and "
        "distance from the frame edge) are kept for reading.",
    )


class VehiclesConfig(Section):
    """The vehicle around each plate (its type, colour and box), and vehicles whose plate
    cannot be read: found by a COCO vehicle model that runs once or twice per track, on
    photos, and now and then while something moves in view with no plate tracked."""

    enabled: bool = Field(
        True,
        description="Run the vehicle model (fetched at set-up by `streamer model fetch`): "
        "each event and photo answer then names its vehicle's type (car, motorcycle, bus, "
        "truck), colour and box, and vehicles that show no plate at all are reported. Off: "
        "vehicle is null, and only plates that are found but cannot be read are reported.",
    )
    confidence: float = Field(
        0.4,
        ge=0.05,
        le=1.0,
        description="Minimum confidence of a vehicle box. Lower names more far or hidden "
        "vehicles, and mistakes more shapes for vehicles.",
    )
    watch_interval_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="While something moves in view and no plate is tracked (or a vehicle "
        "without a plate is being followed), the vehicle model looks at one detected frame "
        "this often, to find vehicles that show no plate at all. A look costs more than a "
        "plate detection (see the performance page); a quiet camera, or one whose vehicles "
        "all show plates, pays almost nothing. 0: never (only plates found but unreadable "
        "are reported).",
    )
    precision: Literal["auto", "f32", "bf16"] = Field(
        "auto",
        description="What the vehicle model computes in. auto: bfloat16 where the CPU has "
        "it and it measures faster than float32 on this machine (once, cached), else "
        "float32.",
    )
    watch_looks_per_s: float = Field(
        2.0,
        ge=0,
        le=100,
        description="Looks of that watch a second for all the live cameras of the daemon "
        "together (the first camera's setting counts): each camera still looks at most "
        "once every watch_interval_s, but with many cameras each looks less often, so the "
        "watch's cost does not grow with their number. 0: no limit. Recorded files "
        "replayed as fast as they decode are not counted.",
    )
    min_width: int = Field(
        200,
        ge=1,
        le=10_000,
        description="A vehicle without a plate box is reported only when at least this many "
        "pixels wide (and wholly in the frame, driving towards or away from the camera): a "
        "smaller one's plate would be too small to read anyway.",
    )
