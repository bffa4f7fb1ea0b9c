"""Reading the plate of a single image: one crop, read several ways, the reads vote.

A video gives a track several crops of one plate and their reads vote
(:class:`~streamer.reading.read.PlateReader`); a photo gives one crop. A
:class:`StillReader` reads several views of it instead, and they vote the same way
(:func:`~streamer.reading.read.vote`). The views are read one at a time until the
reads so far settle on a plate (:meth:`StillReader.settled`):

- the crop with its outer edges trimmed (a frame, a bolt or a sticker at the border);
- the plate number's text line (:func:`~streamer.reading.lines.main_line`), which leaves
  out state names, slogans, stickers and small stacked letters beside the number;
- that line turned level (:func:`~streamer.reading.lines.level_line`), for a plate
  photographed askew: the engine straightens a crop by the plate's bright rectangle,
  which a light car or snow around the plate hides, and the recogniser then cuts or
  merges the slanting characters; only when the line is turned;
- the level line (the line, when it is level) stretched across by
  :data:`~streamer.reading.preprocess.WIDEN`: the condensed fonts of many plates set
  characters so close that the recogniser merges repeated ones (``7333`` read ``733``)
  and reads a narrow ``I`` as ``/``.

Views are read in that order until the reads settle, so most photos cost one or two
reads (what each view gains, measured: docs/model.md, "Reading a still photo"). Video
keeps one read per crop.

In a whole photo (:meth:`StillReader.read_plate`), a detector box may cut the plate: when
the read is unsure and the number's line runs to a side of the crop, the box is widened
on that side and read again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property

import cv2
import numpy as np

from streamer.config import PlatesConfig, ReaderConfig
from streamer.reading.lines import (
    LineBox,
    LineFinder,
    cut_line,
    level_line,
    main_line,
    shared_text_lines,
)
from streamer.reading.ocr import OcrEngine, TextRead
from streamer.reading.plates import matches_format
from streamer.reading.preprocess import WIDEN
from streamer.reading.read import PlateReader, vote
from streamer.vision.track import cut_crop

#: A first read this confident that matches a configured format is taken without looking
#: for text lines and reading more views (half the US crops).
SURE = 0.97
#: A vote of two or more views at this confidence that matches a configured format is
#: taken without reading more views (the vote's confidence falls when the reads disagree).
SETTLED = 0.8
#: The number's line turned less than this many degrees is level enough: turning it would
#: give the line view again.
LEVEL = 2.0
#: The share of a crop's height (top and bottom) and width (left and right) that the
#: trimmed view leaves out.
TRIM_Y = 0.08
TRIM_X = 0.04
#: The number's line ending closer to a side of the crop than this share of its height
#: (:attr:`~streamer.reading.lines.LineBox.thickness`) runs off the crop: the plate may go
#: on past the detector's box. (The text detector leaves out a character cut in half, so
#: the line may end a little short of the side.)
EDGE = 0.25


def trimmed(crop: np.ndarray) -> np.ndarray:
    """``crop`` without :data:`TRIM_Y` of its height at the top and bottom and
    :data:`TRIM_X` of its width at each side."""
    height, width = crop.shape[:2]
    dy, dx = int(TRIM_Y * height), int(TRIM_X * width)
    return crop[dy : height - dy, dx : width - dx]


def widened(view: np.ndarray, factor: float = WIDEN) -> np.ndarray:
    """``view`` stretched across by ``factor``, its height kept."""
    return cv2.resize(view, None, fx=factor, fy=1.0, interpolation=cv2.INTER_CUBIC)


class _Lines:
    """The text lines of one crop, found when first asked for."""

    def __init__(self, finder: LineFinder, crop: np.ndarray) -> None:
        self._finder, self._crop = finder, crop

    @cached_property
    def boxes(self) -> list[LineBox]:
        return self._finder.find(self._crop)

    @property
    def found(self) -> bool:
        """Whether the lines were looked for."""
        return "boxes" in self.__dict__


class StillReader(PlateReader):
    """A :class:`~streamer.reading.read.PlateReader` for single images: :meth:`read_crop`
    reads the crop's views (:meth:`views`) and lets the reads vote; :meth:`read_plate`
    reads a detector's box in a photo.

    Args:
        engine: the OCR engine.
        reader: the camera's reader settings.
        plates: the camera's plate settings.
        lines: where the text lines are; the process's shared
            :class:`~streamer.reading.lines.TextLines` (built on first use) when ``None``.

    Example:
        >>> reader = StillReader(engine_named("paddle"), ReaderConfig(), PlatesConfig())
        >>> reader.read_crop(crop).text
        'AB1234CD'
    """

    def __init__(
        self,
        engine: OcrEngine,
        reader: ReaderConfig,
        plates: PlatesConfig,
        lines: LineFinder | None = None,
    ) -> None:
        super().__init__(engine, reader, plates)
        self._lines = lines

    @property
    def lines(self) -> LineFinder:
        """The text line finder in use."""
        if self._lines is None:
            self._lines = shared_text_lines()
        return self._lines

    def views(self, crop: np.ndarray) -> Iterator[np.ndarray]:
        """The views of ``crop`` that are read, made as they are asked for: the trimmed
        crop; its number's text line (the whole crop when no line is found); that line
        turned level, when it is turned :data:`LEVEL` degrees or more; and the level line
        (the line, when it is level) :func:`widened`."""
        return self._views(crop, _Lines(self.lines, crop))

    def _views(self, crop: np.ndarray, lines: _Lines) -> Iterator[np.ndarray]:
        yield trimmed(crop)
        boxes = lines.boxes
        line = main_line(boxes)
        view = cut_line(crop, line) if line is not None else crop
        view = view if view.size else crop
        yield view
        level = level_line(crop, boxes, LEVEL)
        if level is not None:
            yield level
            view = level
        yield widened(view)

    def settled(self, reads: Sequence[TextRead]) -> TextRead | None:
        """The plate that ``reads`` (of the first views, in order) settle on, or ``None``
        when more views are to be read: a first read at :data:`SURE` confidence, or a vote
        at :data:`SETTLED`, that matches a configured format."""
        if len(reads) == 1:
            return reads[0] if self._fits(reads[0], SURE) else None
        agreed = vote(reads, self.plates.formats)
        if agreed is None or not self._fits(TextRead(*agreed), SETTLED):
            return None
        return TextRead(*agreed)

    def _fits(self, read: TextRead, confidence: float) -> bool:
        """Whether ``read`` is at least ``confidence`` sure and matches a format."""
        return read.confidence >= confidence and matches_format(read.text, self.plates.formats)

    def read_crop(self, crop: np.ndarray) -> TextRead:
        """The views' reads, agreed by :func:`~streamer.reading.read.vote`; empty when none
        is usable. The confidence is the vote's (lowered when the reads disagree). Views
        are read until the reads are :meth:`settled`."""
        return self._read(crop, _Lines(self.lines, crop))

    def _read(self, crop: np.ndarray, lines: _Lines) -> TextRead:
        reads: list[TextRead] = []
        for view in self._views(crop, lines):
            reads.append(PlateReader.read_crop(self, view))
            settled = self.settled(reads)
            if settled is not None:
                return settled
        agreed = vote(reads, self.plates.formats)
        if agreed is None:
            return TextRead("", max(read.confidence for read in reads))
        return TextRead(*agreed)

    def read_plate(self, image: np.ndarray, bbox: tuple[int, int, int, int]) -> TextRead:
        """The plate in the detector's box ``bbox`` ``(x1, y1, x2, y2)`` of ``image``:
        its crop (:func:`~streamer.vision.track.cut_crop`) read as :meth:`read_crop` does.

        A box may cut the plate (a long plate, or one seen at a slant, found in part). When
        the read is not :meth:`settled` and the number's line runs to the left or right of
        the crop (within :data:`EDGE` of its thickness), the box is widened by its own width
        on that side and read again; the two reads vote.
        """
        crop = cut_crop(image, bbox)
        lines = _Lines(self.lines, crop)
        read = self._read(crop, lines)
        if not lines.found or self._fits(read, SETTLED):
            return read
        line = main_line(lines.boxes)
        if line is None:
            return read
        edge = EDGE * max(box.thickness for box in lines.boxes)
        left, right = line.x1 <= edge, line.x2 >= crop.shape[1] - edge
        x1, y1, x2, y2 = bbox
        grow = x2 - x1
        wider = (max(0, x1 - grow * left), y1, min(image.shape[1], x2 + grow * right), y2)
        if wider[0] == x1 and wider[2] == x2:
            return read
        again = self.read_crop(cut_crop(image, wider))
        agreed = vote([read, again], self.plates.formats)
        return read if agreed is None else TextRead(*agreed)
