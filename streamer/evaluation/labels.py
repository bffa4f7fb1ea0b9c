"""Labelled sets for ``streamer eval``: which kind a path is, its items and plates.

Three kinds (:func:`discover` tells which a path is):

- ``images``: photos, as ``labels.json`` (``{"1.jpeg": ["AA1234BB"]}``) or a CSV
  ``image,plate[,x,y,w,h]``;
- ``crops``: plate crops, as a CSV ``file,state,plate``;
- ``videos``: an ``events.csv`` (``video,plate,...``, one row per vehicle); a video whose
  one row has no plate is a negative control (no event expected).

Image paths are relative to the label file's folder or its ``images/`` subfolder; plates
are normalised. :func:`plates_for` fits the plate formats to a set's labels.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streamer.config import PlatesConfig
from streamer.config.formats import PRESETS
from streamer.reading.plates import format_templates, matched_format, matches_format, normalise

#: ``(x1, y1, x2, y2)`` of a labelled plate.
Box = tuple[float, float, float, float]

#: What :func:`label_format` gives for labels that match none of the formats.
NO_FORMAT = "none"

#: The label files looked for when a folder is given.
LABEL_FILES = ("labels.json", "labels.csv", "groundtruth.csv", "events.csv")
_HEADER = {"image", "file", "filename", "path"}
_EXPECTED = (
    "expected labels.json, an image CSV (image,plate[,x,y,w,h]), a crops CSV "
    "(file,state,plate) or an events.csv (video,plate,...)"
)


class EvalError(ValueError):
    """A path is not a labelled set this module understands; the message says what is."""


@dataclass(frozen=True)
class Labelled:
    """An image or crop and its plates; ``box`` ``(x1, y1, x2, y2)`` when labelled."""

    path: Path
    plates: tuple[str, ...]
    box: Box | None = None


def label_file(path: Path) -> Path:
    """``path``, or the one label file (:data:`LABEL_FILES`) inside it when it is a folder.

    Raises:
        EvalError: (a ValueError) when the folder holds none or several.
    """
    if not path.is_dir():
        return path
    found = [path / name for name in LABEL_FILES if (path / name).is_file()]
    if len(found) != 1:
        raise EvalError(f"{path}: expected one of {', '.join(LABEL_FILES)} in the folder")
    return found[0]


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return [[cell.strip() for cell in row] for row in csv.reader(stream) if any(row)]


def discover(path: Path) -> str:
    """Which kind of labelled set ``path`` (a label file or its folder) is: ``images``,
    ``crops`` or ``videos``.

    Raises:
        EvalError: (a ValueError) saying what was expected, when it is none of them or
            cannot be read.
    """
    path = label_file(path)
    try:
        if path.suffix.lower() == ".json":
            if isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
                return "images"
        elif path.suffix.lower() == ".csv":
            first = [cell.lower() for cell in next(iter(_rows(path)), [])]
            header = bool(first) and first[0] in _HEADER
            if "video" in first and "plate" in first:
                return "videos"
            if (header and "state" in first) or (not header and len(first) == 3):
                return "crops"
            if len(first) in {2, 6}:
                return "images"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EvalError(f"{path}: cannot read labels ({error}); {_EXPECTED}") from None
    raise EvalError(f"{path}: not a known kind of labels; {_EXPECTED}")


def items(path: Path, kind: str) -> list[Labelled]:
    """The labelled images (``kind`` ``images``) or crops of a label file."""

    def image(name: str) -> Path:
        direct = path.parent / name
        return direct if direct.exists() else path.parent / "images" / name

    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Labelled(
                image(name), tuple(normalise(p) for p in ([ps] if isinstance(ps, str) else ps))
            )
            for name, ps in data.items()
        ]
    items = []
    for row in _rows(path):
        if row[0].lower() in _HEADER or len(row) < (2 if kind == "images" else 3):
            continue
        box = None
        if kind == "images" and len(row) >= 6 and all(row[2:6]):
            x, y, w, h = (float(v) for v in row[2:6])
            box = (x, y, x + w, y + h)
        plate = normalise(row[1] if kind == "images" else row[2])
        items.append(Labelled(image(row[0]), (plate,), box))
    return items


def video_labels(events_csv: Path) -> dict[str, list[str]]:
    """Each video, in order of appearance, and its labelled plates (none: negative control)."""
    videos: dict[str, list[str]] = {}
    with events_csv.open(newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            plates = videos.setdefault(row["video"].strip(), [])
            if plate := normalise(row.get("plate") or ""):
                plates.append(plate)
    return videos


def labelled_plates(path: Path) -> list[str]:
    """Every labelled plate of the set at ``path`` (see :func:`discover`).

    Raises:
        EvalError: when the labels cannot be read or parsed.
    """
    path, kind = label_file(path), discover(path)
    try:
        if kind == "videos":
            return [plate for plates in video_labels(path).values() for plate in plates]
        return [plate for item in items(path, kind) for plate in item.plates]
    except (KeyError, TypeError, ValueError) as error:
        raise EvalError(f"{path}: malformed {kind} labels ({error!r}); {_EXPECTED}") from None


def _breadth(entry: str, lengths: set[int]) -> float:
    """log10 of how many plates of ``lengths`` a format allows: smaller is more specific."""
    templates = format_templates(PRESETS.get(entry, entry)) or [[]]
    sizes = {"L": 26, "D": 10, "X": 36}
    count = sum(
        math.prod(sizes.get(kind, 1) for kind in template)
        for expansions in templates
        for template in set(expansions)
        if len(template) in lengths
    )  # a format too rich to expand counts as allowing anything
    return math.log10(count or sum(36**n for n in lengths) or 1)


def plates_for(plates: PlatesConfig, labels: Sequence[str], share: float = 0.8) -> PlatesConfig:
    """``plates`` with formats that fit ``labels``: the configured ones when at least
    ``share`` of the labels match them, else the most specific preset that does, else
    unchanged (no labels, or no preset fits)."""

    def fit(formats: Sequence[str]) -> float:
        return sum(matches_format(plate, formats) for plate in labels) / len(labels)

    fitting = [name for name in PRESETS if labels and fit([name]) >= share]
    if not labels or fit(plates.formats) >= share or not fitting:
        return plates
    lengths = {len(plate) for plate in labels}
    best = min(fitting, key=lambda name: _breadth(name, lengths))
    return plates.model_copy(update={"formats": [best]})


def label_format(plates: Sequence[str], formats: Sequence[str]) -> str:
    """The format (as configured) that the first of an item's ``plates`` to match any of
    ``formats`` matches, or :data:`NO_FORMAT` when none does.

    Example:
        >>> label_format(["AA1234BB"], ["in_rto", "ua"])
        'ua'
    """
    found = (matched_format(plate, formats) for plate in plates)
    return next((entry for entry in found if entry is not None), NO_FORMAT)
