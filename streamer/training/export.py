"""The trained network to ONNX, as the daemon runs it (:mod:`streamer.reading.recogniser`).

The graph takes a grey ``[1, 1, 48, 160]`` image in 0..255 and gives the probabilities
``[1, T, 37]``; opset 17, which OpenVINO reads. The export is checked by running both
on the same inputs: the ONNX graph on OpenVINO must give the torch network's reads.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamer.reading.recogniser import CHARACTERS, decode
from streamer.training.model import Exported

OPSET = 17


def sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_onnx(
    network: nn.Module, target: Path, height: int, width: int, probe: np.ndarray | None = None
) -> Path:
    """Write ``network`` to ``target`` as ONNX, with the character list beside it
    (``.chars``); when ``probe`` images (uint8 ``[N, H, W]``) are given, check that
    OpenVINO's reads of the file are the network's.

    Raises:
        RuntimeError: when the exported graph reads a probe image differently.
    """
    network.eval()
    wrapped = Exported(network).eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 1, height, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(target),
            opset_version=OPSET,
            dynamo=False,
            input_names=["image"],
            output_names=["probabilities"],
        )
    target.with_suffix(".chars").write_text(CHARACTERS + "\n")
    if probe is not None:
        import openvino as ov

        core = ov.Core()
        request = core.compile_model(
            core.read_model(str(target)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        ).create_infer_request()
        with torch.no_grad():
            for image in probe:
                x = torch.from_numpy(image.astype(np.float32))[None, None]
                expected = decode(wrapped(x)[0].numpy()).text
                got = decode(request.infer({0: x.numpy()})[0][0]).text
                if got != expected:
                    raise RuntimeError(
                        f"exported graph reads {got!r} where the network reads {expected!r}"
                    )
    return target
