"""The figures of ``streamer eval``: one report per set and engine, and its tables.

Three markdown tables: the figures of each set (:func:`render_table`), why the plates not
read exactly were missed (:func:`render_causes`), and the figures per plate format of the
labels (:func:`render_formats`); :func:`render_report` prints all three.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamer.evaluation.labels import NO_FORMAT

Metric = float | int | str

#: Metrics that are fractions 0..1, shown as percentages.
RATES = frozenset(
    {"detected", "exact", "exact_o_as_0", "char_accuracy", "read_exactly", "second_reads"}
)

#: Why a labelled plate was not read exactly, in the order the tables show them (see
#: :func:`streamer.evaluation.evaluate.miss_cause`).
CAUSES = ("not found", "wrong box", "confusion", "extra", "missing", "other")

#: Metrics that count a set's items, the first one a report has.
_ITEMS = ("images", "crops", "vehicles")


@dataclass(frozen=True)
class FormatRow:
    """The items of one set whose label matches one plate format, and how they were read.

    Attributes:
        format: the format as configured (a preset's name or a regex), or ``"none"``.
        items: how many items have a label of this format.
        exact: the fraction of them read exactly.
        char_accuracy: their mean character accuracy, 0..1.
    """

    format: str
    items: int
    exact: float
    char_accuracy: float


@dataclass(frozen=True)
class SetReport:
    """The figures of one labelled set read with one OCR engine.

    Attributes:
        name: the set (its folder, or the video's file name).
        kind: ``images``, ``crops`` or ``video``.
        engine: the OCR engine's name.
        rows: metric name to value; rates are fractions 0..1.
        misses: ``(item, label, read, cause)`` for each item not read exactly (``cause``
            one of :data:`CAUSES`, or ``"false event"`` for a video's unlabelled event).
        causes: how many items were missed for each cause that can happen in this kind of
            set (a crop cannot be "not found"), in the order of :data:`CAUSES`.
        formats: one row per plate format of the labels, most items first.
    """

    name: str
    kind: str
    engine: str
    rows: dict[str, Metric]
    misses: tuple[tuple[str, str, str, str], ...] = ()
    causes: dict[str, int] = field(default_factory=dict)
    formats: tuple[FormatRow, ...] = ()

    @property
    def items(self) -> int:
        """How many items (photos, crops or vehicles) the set had; 0 when unknown."""
        value = next((self.rows[key] for key in _ITEMS if key in self.rows), 0)
        return value if isinstance(value, int) else 0

    def cause_shares(self) -> dict[str, float]:
        """Each cause's count as a fraction 0..1 of the set's items (0 without items)."""
        share = 1 / self.items if self.items else 0.0
        return {cause: round(count * share, 4) for cause, count in self.causes.items()}


def format_rows(scored: Sequence[tuple[str, bool, float]]) -> tuple[FormatRow, ...]:
    """One :class:`FormatRow` per format of ``scored`` (``(format, exact, char accuracy)``
    per item), most items first and ``"none"`` last."""
    groups: dict[str, list[tuple[bool, float]]] = {}
    for entry, exact, accuracy in scored:
        groups.setdefault(entry, []).append((exact, accuracy))
    rows = [
        FormatRow(
            entry,
            len(group),
            round(sum(exact for exact, _ in group) / len(group), 4),
            round(sum(accuracy for _, accuracy in group) / len(group), 4),
        )
        for entry, group in groups.items()
    ]
    return tuple(sorted(rows, key=lambda row: (row.format == NO_FORMAT, -row.items)))


#: Table columns: heading, and the metrics shown in it (the first one a report has).
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("n", _ITEMS),
    ("detected", ("detected",)),
    ("exact", ("exact", "read_exactly")),
    ("exact O=0", ("exact_o_as_0",)),
    ("char acc", ("char_accuracy",)),
    ("events", ("events",)),
    ("events/vehicle", ("events_per_vehicle",)),
    ("false events", ("false_events",)),
    ("speed", ("ms_per_image", "ms_per_crop", "fps")),
    ("PP-OCRv4 too", ("second_reads",)),
)
_UNITS = {"ms_per_image": " ms/image", "ms_per_crop": " ms/crop", "fps": " frames/s"}


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _cell(report: SetReport, keys: Sequence[str]) -> str:
    key = next((k for k in keys if k in report.rows), None)
    if key is None:
        return "-"
    value = report.rows[key]
    if key in RATES and not isinstance(value, str):
        return _percent(value)
    return f"{value:g}{_UNITS.get(key, '')}" if isinstance(value, float) else str(value)


def _markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def render_table(reports: Sequence[SetReport]) -> str:
    """A markdown table, one row per set and engine; rates as percentages."""
    head = ["set", "kind", "engine", *(heading for heading, _ in COLUMNS)]
    rows = [
        [report.name, report.kind, report.engine, *(_cell(report, k) for _, k in COLUMNS)]
        for report in reports
    ]
    return _markdown(head, rows)


def render_causes(reports: Sequence[SetReport]) -> str:
    """A markdown table, one row per set and engine: how many items were missed for each
    cause, and that count's share of the set's items ("-" where a cause cannot happen)."""
    head = ["set", "kind", "engine", "n", *CAUSES, "not exact"]
    rows = []
    for report in reports:
        share = 1 / report.items if report.items else 0.0
        counts = [report.causes.get(cause) for cause in CAUSES]
        counts.append(sum(report.causes.values()))
        cells = ["-" if n is None else f"{n} ({_percent(n * share)})" for n in counts]
        rows.append([report.name, report.kind, report.engine, str(report.items), *cells])
    return _markdown(head, rows)


def render_formats(reports: Sequence[SetReport]) -> str:
    """A markdown table, one row per set, engine and plate format of the labels: items,
    exact reads and character accuracy."""
    head = ["set", "kind", "engine", "format", "n", "exact", "char acc"]
    rows = [
        [
            *(report.name, report.kind, report.engine, row.format, str(row.items)),
            *(_percent(row.exact), _percent(row.char_accuracy)),
        ]
        for report in reports
        for row in report.formats
    ]
    return _markdown(head, rows)


def render_report(reports: Sequence[SetReport]) -> str:
    """The three tables, each under a one-line heading."""
    return "\n\n".join(
        [
            render_table(reports),
            "Not read exactly, by cause (count and share of the set's items):\n\n"
            + render_causes(reports),
            "By plate format of the label:\n\n" + render_formats(reports),
        ]
    )


def write_json(reports: Sequence[SetReport], path: Path) -> None:
    """Write every report (metrics, misses, causes with their shares, formats) to ``path``
    as a JSON list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [asdict(report) | {"cause_shares": report.cause_shares()} for report in reports]
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
