"""The networks: a small CRNN trained from scratch (:class:`PlateNet`), and PP-OCRv4's
recogniser with a new head over the plate characters (:class:`PaddlePlateNet`).

Both read a grey line image ``[N, 1, H, W]`` scaled to -1..1 and give log-probabilities
``[T, N, 1 + len(CHARACTERS)]`` (blank first) for CTC; exported, they give probabilities
``[N, T, C]`` (:class:`Exported`).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamer.reading.recogniser import CHARACTERS

CLASSES = 1 + len(CHARACTERS)


def _conv(inputs: int, outputs: int, kernel: tuple[int, int] = (3, 3)) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, padding=padding, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class _Context(nn.Module):  # type: ignore[misc]
    """A residual 1-D convolution along the line: each column sees its neighbours."""

    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, bias=False)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.norm(self.conv(x)))


class PlateNet(nn.Module):  # type: ignore[misc]
    """A CRNN without recurrence: five convolution stages take a 48 x 160 line down to
    40 columns of 1 pixel (a column every 4 input pixels), two residual 1-D convolutions
    give each column its neighbours' context, and a 1x1 convolution scores the classes.
    About 1 M parameters; no LSTM, so OpenVINO runs it as plain convolutions.
    """

    def __init__(self, height: int = 48, widths: tuple[int, ...] = (32, 64, 96, 128, 192)) -> None:
        super().__init__()
        a, b, c, d, e = widths
        self.features = nn.Sequential(
            _conv(1, a),
            nn.MaxPool2d(2),
            _conv(a, b),
            nn.MaxPool2d(2),
            _conv(b, c),
            _conv(c, c),
            nn.MaxPool2d((2, 1)),
            _conv(c, d),
            _conv(d, d),
            nn.MaxPool2d((2, 1)),
            _conv(d, e, (height // 16, 1)),  # the remaining rows, into one
        )
        self.rows = height // 16
        self.context = nn.Sequential(_Context(e), _Context(e), nn.Dropout(0.1))
        self.head = nn.Conv1d(e, CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``[N, C, T]``."""
        features = self.features(x)
        features = features.amax(dim=2)  # [N, e, T]: any rows the kernel left
        return self.head(self.context(features))


def _stub_torchvision() -> None:
    """onnx2torch imports torchvision for two converters (NMS, RoIAlign) that a
    recogniser never needs; torchvision's wheels on PyPI do not load with torch's CPU
    build, so an empty stand-in is put in its place when it is not installed."""
    try:
        import torchvision  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except (ImportError, RuntimeError):

        def missing(*args: object, **kwargs: object) -> None:
            raise RuntimeError("torchvision is not installed")

        ops = types.ModuleType("torchvision.ops")
        ops.roi_align = ops.nms = ops.batched_nms = missing  # type: ignore[attr-defined]
        stub = types.ModuleType("torchvision")
        stub.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.ops"] = ops


def paddle_model_path() -> Path:
    """PP-OCRv4's recogniser, as the rapidocr-onnxruntime wheel ships it."""
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"


class PaddlePlateNet(nn.Module):  # type: ignore[misc]
    """PP-OCRv4's recogniser (PPLCNetV3 and an SVTR neck, converted from the wheel's
    ONNX by onnx2torch) with its last layer, over 6,625 symbols, replaced by one over the
    plate characters, initialised from the rows of those characters in the old one.

    It reads 3-channel 48-pixel-high lines, a column every 8 pixels; the grey input is
    repeated on the channels. onnx2torch keeps the weights of the graph's MatMul, Add and
    Mul nodes (the SVTR neck's attention and layer norms) as buffers; they are made
    parameters here.

    With ``frozen_backbone``, the backbone (PPLCNetV3, up to its last average pooling)
    keeps PP-OCRv4's weights and only the SVTR neck and the new head are trained: a third
    of the cost of training it all on a CPU.
    """

    def __init__(self, frozen_backbone: bool = True) -> None:
        super().__init__()
        _stub_torchvision()
        import onnx  # type: ignore[import-not-found, unused-ignore]
        from onnx2torch import convert  # type: ignore[import-not-found, unused-ignore]

        graph = onnx.load(str(paddle_model_path()))
        dictionary = _paddle_dictionary(graph)
        body = convert(
            _conv_ranks(onnx.shape_inference.infer_shapes(_constants_as_initializers(graph)))
        )
        # The graph ends features -> MatMul -> Add -> Softmax: cut it before the MatMul.
        output = next(node for node in body.graph.nodes if node.op == "output")
        softmax = output.args[0]
        add = softmax.args[0]
        matmul = add.args[0]
        weight = body.get_buffer(matmul.args[1].target)
        bias = body.get_buffer(add.args[1].target)
        output.args = (matmul.args[0],)
        for node in (softmax, add, matmul):
            body.graph.erase_node(node)
        body.graph.eliminate_dead_code()
        body.recompile()
        initializers = body.get_submodule("initializers")
        for name, buffer in list(initializers.named_buffers(recurse=False)):
            if buffer.is_floating_point() and buffer.numel() > 1:
                delattr(initializers, name)
                initializers.register_parameter(name, nn.Parameter(buffer.clone()))
        pools = [node for node in body.graph.nodes if "AveragePool" in str(node.target)]
        self.backbone, self.neck = _split(body, pools[-1])  # before the SVTR neck
        self.frozen_backbone = frozen_backbone
        if frozen_backbone:
            self.backbone.requires_grad_(False)
        rows = [0] + [dictionary.index(char) + 1 for char in CHARACTERS]
        self.head = nn.Linear(weight.shape[0], CLASSES)
        with torch.no_grad():
            self.head.weight.copy_(weight[:, rows].T)
            self.head.bias.copy_(bias[rows])

    def train(self, mode: bool = True) -> PaddlePlateNet:
        """Training mode, but a frozen backbone's batch norms keep their statistics."""
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``[N, C, T]``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_backbone):
            features = self.backbone(x.repeat(1, 3, 1, 1))
        features = self.neck(features)  # [N, T, 120]
        return self.head(features).transpose(1, 2)


def _split(body: Any, cut: Any) -> tuple[Any, Any]:
    """Two graph modules of ``body``: up to the node ``cut``, and after it (which takes
    its output); they share ``body``'s weights."""
    from torch import fx

    head: Any = fx.Graph()
    tail: Any = fx.Graph()
    into_head: dict[Any, Any] = {}
    into_tail: dict[Any, Any] = {cut: tail.placeholder("features")}
    before = True
    for node in body.graph.nodes:
        if before:
            into_head[node] = head.node_copy(node, lambda n: into_head[n])
            before = node is not cut
            continue
        for used in node.all_input_nodes:  # weights fetched before the cut
            if used not in into_tail and used.op == "get_attr":
                into_tail[used] = tail.node_copy(used)
        into_tail[node] = tail.node_copy(node, lambda n: into_tail[n])
    head.output(into_head[cut])
    return fx.GraphModule(body, head), fx.GraphModule(body, tail)


def _constants_as_initializers(model: Any) -> Any:
    """``model`` with its weights, which Paddle's exporter wrote as Constant nodes, made
    initializers, which onnx2torch takes as a layer's parameters."""
    import onnx

    kept = []
    for node in model.graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _conv_ranks(model: Any) -> Any:
    """``model`` with the rank of every convolution's output recorded: shape inference
    loses it after the SVTR neck's reshapes, and onnx2torch picks a batch norm's class by
    its input's rank. A convolution's output has its weights' rank."""
    import onnx

    known = {info.name for info in model.graph.value_info if info.type.tensor_type.shape.dim}
    weights = {tensor.name: len(tensor.dims) for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.output[0] not in known:
            shape = [None] * weights[node.input[1]]
            info = onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape)
            model.graph.value_info.append(info)
    return model


def _paddle_dictionary(graph: Any) -> list[str]:
    for prop in graph.metadata_props:
        if prop.key == "character":
            return list(prop.value.splitlines())
    raise RuntimeError("PP-OCRv4 model has no character list")


class Exported(nn.Module):  # type: ignore[misc]
    """A network as exported: probabilities ``[N, T, C]`` from a uint8-range grey input
    ``[N, 1, H, W]`` (the scaling to -1..1 is in the graph)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.network(x / 127.5 - 1.0)
        return torch.softmax(scores, dim=1).transpose(1, 2)


def build(kind: str) -> nn.Module:
    """The network named ``kind``: ``crnn`` (:class:`PlateNet`) or ``paddle``
    (:class:`PaddlePlateNet`)."""
    if kind == "crnn":
        return PlateNet()
    if kind == "paddle":
        return PaddlePlateNet()
    raise ValueError(f"unknown network {kind!r}")
