"""The training loop: CTC over the cached samples, a checkpoint after every epoch (a run
stopped part way resumes from it), the loss and the validation figures of every epoch
in ``log.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from streamer.reading.recogniser import CHARACTERS, decode
from streamer.training.data import Samples
from streamer.training.model import build

logger = logging.getLogger(__name__)

INDEX = {char: position + 1 for position, char in enumerate(CHARACTERS)}


@dataclass(frozen=True)
class Settings:
    """One training run's settings (written into its checkpoints and log)."""

    network: str = "crnn"
    epochs: int = 14
    batch: int = 64
    learning_rate: float = 1.5e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    seed: int = 20261207
    threads: int = 2
    bfloat16: bool = True
    #: Samples drawn (without repeats) for each epoch; 0: all of them.
    samples_per_epoch: int = 0


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A network input shifted, scaled and relit a little (uint8 in, float32 out)."""
    height, width = image.shape
    scale_x, scale_y = rng.uniform(0.9, 1.06), rng.uniform(0.9, 1.06)
    shift_x = rng.uniform(-0.04, 0.04) * width + (1 - scale_x) * width / 2
    shift_y = rng.uniform(-0.06, 0.06) * height + (1 - scale_y) * height / 2
    matrix = np.array([[scale_x, 0, shift_x], [0, scale_y, shift_y]], np.float32)
    out = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE).astype(
        np.float32
    )
    out = out * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        out += rng.normal(0, rng.uniform(2, 10), out.shape)
    return np.clip(out, 0, 255)


def _batch(
    images: np.ndarray, labels: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(images, np.float32)[:, None] / 127.5 - 1.0)
    targets = torch.tensor([INDEX[char] for label in labels for char in label], dtype=torch.long)
    lengths = torch.tensor([len(label) for label in labels], dtype=torch.long)
    return x, targets, lengths


def predict(network: nn.Module, images: np.ndarray, batch: int = 256) -> list[str]:
    """The greedy reads of ``images`` (uint8 ``[N, H, W]``)."""
    network.eval()
    reads = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(
                images[start : start + batch].astype(np.float32)[:, None] / 127.5 - 1.0
            )
            probabilities = torch.softmax(network(x), dim=1).transpose(1, 2).numpy()
            reads += [decode(row).text for row in probabilities]
    return reads


def score(reads: list[str], labels: tuple[str, ...]) -> dict[str, float]:
    """Exact share and mean character accuracy (1 - edit distance / length)."""
    from streamer.reading.plates import edit_distance

    exact = sum(r == t for r, t in zip(reads, labels, strict=True))
    chars = sum(
        max(0.0, 1 - edit_distance(r, t) / max(1, len(t)))
        for r, t in zip(reads, labels, strict=True)
    )
    count = max(1, len(labels))
    return {
        "exact": round(exact / count, 4),
        "chars": round(chars / count, 4),
        "count": len(labels),
    }


def validate(network: nn.Module, sets: dict[str, Samples]) -> dict[str, dict[str, float]]:
    """Figures of each validation set, and of each synthetic region in ``synthetic``."""
    figures = {}
    for name, samples in sets.items():
        reads = predict(network, samples.images)
        figures[name] = score(reads, samples.labels)
        if name == "synthetic":
            for kind in sorted(set(samples.kinds)):
                picked = [i for i, k in enumerate(samples.kinds) if k == kind]
                figures[f"synthetic/{kind}"] = score(
                    [reads[i] for i in picked], tuple(samples.labels[i] for i in picked)
                )
    return figures


def _rate(step: int, total: int, settings: Settings) -> float:
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    out: Path, training: Samples, validation: dict[str, Samples], settings: Settings
) -> nn.Module:
    """Train a network on ``training`` for ``settings.epochs``, resuming from
    ``out/checkpoint.pt`` when it is there; returns the trained network.

    Every epoch: the checkpoint (network, optimiser, schedule, epoch) is written, and a
    line with the mean loss, the seconds taken and the figures of each ``validation``
    set (:func:`validate`) is added to ``out/log.jsonl``.
    """
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    # Channels-last convolutions train about four times as fast on this CPU (oneDNN).
    network = build(settings.network).to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    per_epoch = min(len(training), settings.samples_per_epoch or len(training))
    steps_per_epoch = max(1, per_epoch // settings.batch)
    total = steps_per_epoch * settings.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: _rate(step, total, settings)
    )
    checkpoint = out / "checkpoint.pt"
    first = 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state["settings"] != asdict(settings):
            raise RuntimeError(f"{checkpoint} was made with other settings: {state['settings']}")
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        first = state["epoch"] + 1
        logger.info("resuming after epoch %d", state["epoch"])
    loss_function = nn.CTCLoss(blank=0, zero_infinity=True)
    for epoch in range(first, settings.epochs):
        rng = np.random.default_rng([settings.seed, epoch])
        torch.manual_seed(settings.seed + epoch)
        order = rng.permutation(len(training))
        network.train()
        started, losses = time.monotonic(), []
        for step in range(steps_per_epoch):
            picked = order[step * settings.batch : (step + 1) * settings.batch]
            images = np.stack([augment(training.images[i], rng) for i in picked])
            x, targets, lengths = _batch(images, [training.labels[i] for i in picked])
            # bfloat16 convolutions: twice as fast on a CPU with AVX512-BF16 (Zen 4), and
            # the loss is computed in float32 all the same.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bfloat16):
                scores = network(x.to(memory_format=torch.channels_last))  # [N, C, T]
            log_probs = torch.log_softmax(scores.float(), dim=1).permute(2, 0, 1)
            inputs = torch.full((len(picked),), log_probs.shape[0], dtype=torch.long)
            loss = loss_function(log_probs, targets, inputs, lengths)
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            if step % 200 == 0:
                logger.info(
                    "epoch %d step %d/%d loss %.4f",
                    epoch,
                    step,
                    steps_per_epoch,
                    np.mean(losses[-200:]),
                )
        figures = validate(network, validation)
        line = {
            "epoch": epoch,
            "loss": round(float(np.mean(losses)), 5),
            "seconds": round(time.monotonic() - started, 1),
            "learning_rate": schedule.get_last_lr()[0],
            **figures,
        }
        with (out / "log.jsonl").open("a") as log:
            log.write(json.dumps(line) + "\n")
        logger.info("epoch %d: %s", epoch, json.dumps(line))
        state = {
            "network": network.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "epoch": epoch,
            "settings": asdict(settings),
        }
        torch.save(state, checkpoint.with_suffix(".partial"))
        checkpoint.with_suffix(".partial").replace(checkpoint)
    network.eval()
    return network
