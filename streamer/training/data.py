"""Training data: synthetic plates and the Brazilian crops of ``../shared/data/plates-br``,
each made into the network's input (:func:`streamer.reading.recogniser.network_input`)
once and cached as arrays.

Everything is deterministic: synthetic sample ``i`` of seed ``s`` is drawn from
``numpy.random.default_rng([s, i])``, whatever the number of worker processes, and the
Brazilian crops are split by a hash of their file name (:func:`held_out`), so the same
tenth of them is always kept out of training, for validation.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.reading.recogniser import network_input, row_split
from streamer.training.designs import render_plate
from streamer.training.scene import photograph, rephotograph

logger = logging.getLogger(__name__)

HEIGHT, WIDTH = 48, 160
#: Brazilian crops whose file name hashes below this share are held out for validation.
HELD_OUT = 0.1


@dataclass(frozen=True)
class Samples:
    """Network inputs and their labels.

    Attributes:
        images: uint8 ``[N, HEIGHT, WIDTH]``.
        labels: each image's plate, characters only.
        kinds: where each comes from (a synthetic design's region, or ``br``).
    """

    images: np.ndarray
    labels: tuple[str, ...]
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: Path) -> None:
        """Write to ``path`` (``.npz``), atomically."""
        partial = path.with_suffix(".partial.npz")
        np.savez(
            partial, images=self.images, labels=np.array(self.labels), kinds=np.array(self.kinds)
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Samples:
        """Read what :meth:`save` wrote."""
        with np.load(path) as data:
            return cls(
                data["images"], tuple(map(str, data["labels"])), tuple(map(str, data["kinds"]))
            )

    @classmethod
    def join(cls, parts: Sequence[Samples]) -> Samples:
        """One set of all of ``parts``."""
        return cls(
            np.concatenate([part.images for part in parts]),
            tuple(label for part in parts for label in part.labels),
            tuple(kind for part in parts for kind in part.kinds),
        )


def synthetic_sample(seed: int, index: int) -> tuple[np.ndarray, str, str, bool]:
    """Synthetic sample ``index`` of ``seed``: the network input, its label, its region,
    and whether the rows were folded as the plate has them (a two-row plate folded, a
    one-row plate not)."""
    rng = np.random.default_rng([seed, index])
    plate = render_plate(rng)
    crop = photograph(plate, rng)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    folded = row_split(grey) is not None
    return network_input(crop, HEIGHT, WIDTH), plate.label, plate.region, folded == plate.two_rows


def _synthetic_chunk(
    seed: int, start: int, stop: int
) -> tuple[np.ndarray, list[str], list[str], int]:
    images, labels, kinds, wrong = [], [], [], 0
    for index in range(start, stop):
        image, label, kind, right = synthetic_sample(seed, index)
        if not right:  # unreadable in order: a two-row plate left whole, or the reverse
            wrong += 1
            continue
        images.append(image)
        labels.append(label)
        kinds.append(kind)
    empty = np.zeros((0, HEIGHT, WIDTH), np.uint8)
    return (np.stack(images) if images else empty), labels, kinds, wrong


def synthetic(seed: int, count: int, workers: int = 1, chunk: int = 500) -> Samples:
    """``count`` synthetic samples of ``seed`` (fewer by those whose rows the folding got
    wrong, which are logged), made by ``workers`` processes."""
    bounds = [(seed, start, min(count, start + chunk)) for start in range(0, count, chunk)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_synthetic_chunk, *zip(*bounds, strict=True)))
    else:
        parts = [_synthetic_chunk(*bound) for bound in bounds]
    wrong = sum(part[3] for part in parts)
    logger.info(
        "synthetic seed %d: %d samples, %d left out (rows folded wrongly)",
        seed,
        count - wrong,
        wrong,
    )
    return Samples(
        np.concatenate([part[0] for part in parts]),
        tuple(label for part in parts for label in part[1]),
        tuple(kind for part in parts for kind in part[2]),
    )


def held_out(name: str) -> bool:
    """Whether the Brazilian crop ``name`` is one of the tenth kept for validation."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < HELD_OUT


def brazil_files(root: Path) -> Iterator[tuple[Path, str]]:
    """``(image, plate)`` of each labelled crop in ``root`` (``plates-br``)."""
    with (root / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            yield root / "images" / row["file"], row["plate"]


def _brazil_chunk(
    seed: int, items: list[tuple[int, str, str]], variants: int
) -> tuple[np.ndarray, list[str]]:
    images, labels = [], []
    for index, path, label in items:
        crop = cv2.imread(path, cv2.IMREAD_COLOR)
        if crop is None:
            continue
        images.append(network_input(crop, HEIGHT, WIDTH))
        labels.append(label)
        rng = np.random.default_rng([seed, index])
        for _ in range(variants):
            images.append(network_input(rephotograph(crop, rng), HEIGHT, WIDTH))
            labels.append(label)
    empty = np.zeros((0, HEIGHT, WIDTH), np.uint8)
    return (np.stack(images) if images else empty), labels


def brazil(
    root: Path,
    validation: bool,
    seed: int = 0,
    variants: int = 0,
    workers: int = 1,
    limit: int | None = None,
) -> Samples:
    """The Brazilian crops of the training (or the validation) part, each as it is and
    in ``variants`` more photographs of it (:func:`~streamer.training.scene.rephotograph`)."""
    items = [
        (index, str(path), label)
        for index, (path, label) in enumerate(brazil_files(root))
        if held_out(path.name) == validation
    ][:limit]
    chunks = [items[start : start + 200] for start in range(0, len(items), 200)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(
                pool.map(_brazil_chunk, [seed] * len(chunks), chunks, [variants] * len(chunks))
            )
    else:
        parts = [_brazil_chunk(seed, chunk, variants) for chunk in chunks]
    labels = tuple(label for part in parts for label in part[1])
    return Samples(np.concatenate([part[0] for part in parts]), labels, ("br",) * len(labels))


#: The part of ``../shared/data/ocr-crops-us`` trained on, fixed in the repository: the
#: crops whose name's SHA-256 falls in the lower half (:func:`us_split`). Figures on that
#: set are reported on the other half, never trained on.
US_SPLIT = Path(__file__).resolve().parent / "splits" / "ocr-crops-us-train.txt"


def us_split(names: Sequence[str]) -> list[str]:
    """Of the crops ``names``, those of the training half (how :data:`US_SPLIT` was made)."""
    return sorted(name for name in names if hashlib.sha256(name.encode()).digest()[0] < 128)


def us_training_names() -> set[str]:
    """The crop names of :data:`US_SPLIT`."""
    return set(US_SPLIT.read_text().split())


def us_crops(root: Path, seed: int = 0, variants: int = 0, training: bool = True) -> Samples:
    """The ``ocr-crops-us`` crops of the training half (or of the other half), each as it
    is and in ``variants`` more photographs of it. Labels shorter than three characters
    (plates labelled ``0``, unreadable) are left out of training."""
    names = us_training_names()
    images, labels = [], []
    with (root / "groundtruth.csv").open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if len(row) >= 3]
    for index, (name, _, label) in enumerate(rows):
        if (name in names) != training or (training and len(label) < 3):
            continue
        crop = cv2.imread(str(root / "images" / name), cv2.IMREAD_COLOR)
        if crop is None:
            continue
        images.append(network_input(crop, HEIGHT, WIDTH))
        labels.append(label)
        rng = np.random.default_rng([seed, 7, index])
        for _ in range(variants):
            images.append(network_input(rephotograph(crop, rng), HEIGHT, WIDTH))
            labels.append(label)
    empty = np.zeros((0, HEIGHT, WIDTH), np.uint8)
    return Samples(np.stack(images) if images else empty, tuple(labels), ("us",) * len(labels))
