"""Choosing an OCR engine by its ``reader.engine`` name, and sharing the engines a
daemon's cameras use.

Four engines: ``paddle`` and ``tesseract`` (:mod:`streamer.reading.ocr`), ``plate`` (the
project's plate recogniser) and ``fused`` (the plate recogniser with PP-OCRv4 where it is
unsure, :mod:`streamer.reading.recogniser`). The fused engine weighs reads by their fit
to the camera's plate formats, so it is built per set of formats, over the one plate
recogniser and the one PP-OCRv4 of the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar, cast

from streamer.config import ReaderConfig
from streamer.reading.ocr import OcrEngine, PaddleEngine, TesseractEngine
from streamer.reading.recogniser import MODEL, FusedEngine, PlateRecogniser

#: The names ``reader.engine`` takes.
ENGINES = ("plate", "paddle", "fused", "tesseract")

Engine = TypeVar("Engine", bound=OcrEngine)


def engine_named(
    engine: str, tessdata: Path | None = None, formats: Sequence[str] = ()
) -> OcrEngine:
    """The OCR engine named ``engine`` (one of :data:`ENGINES`); ``formats`` are the plate
    formats the ``fused`` engine weighs reads by.

    Raises:
        OcrError: when it cannot start, saying what to install.
    """
    if engine == "paddle":
        return PaddleEngine()
    if engine == "plate":
        return PlateRecogniser()
    if engine == "fused":
        return FusedEngine(PlateRecogniser(), PaddleEngine(), formats)
    return TesseractEngine(tessdata)


class EnginePool:
    """A daemon's OCR engines: one per distinct ``reader`` setting (engine, Tesseract data,
    and for ``fused`` the plate formats), built on first use and shared by every camera
    that asks for it, so each camera reads with its own ``reader.engine``; the fused
    engines share the pool's one plate recogniser and one PP-OCRv4. Given ``engine``,
    every camera uses that one; given ``model``, the plate recogniser is that ONNX file
    (a training run's, to measure it before it is committed).

    Example:
        >>> engines = EnginePool()
        >>> engines(camera.reader, camera.plates.formats).read(crop)
    """

    def __init__(self, engine: OcrEngine | None = None, model: Path = MODEL) -> None:
        self._fixed, self._model = engine, model
        self._built: dict[tuple[str, object], OcrEngine] = {}
        self._lock = threading.Lock()

    def __call__(self, reader: ReaderConfig, formats: Sequence[str] = ()) -> OcrEngine:
        """The engine for ``reader`` (``formats``: the camera's ``plates.formats``).

        Raises:
            OcrError: when it cannot start, saying what to install.
        """
        if self._fixed is not None:
            return self._fixed

        def plate() -> PlateRecogniser:
            return self._once(("plate", None), lambda: PlateRecogniser(self._model))

        def paddle() -> PaddleEngine:
            return self._once(("paddle", None), PaddleEngine)

        def fused() -> FusedEngine:
            return FusedEngine(plate(), paddle(), formats)

        def tesseract() -> TesseractEngine:
            return TesseractEngine(reader.tessdata)

        with self._lock:
            if reader.engine == "tesseract":
                return self._once(("tesseract", reader.tessdata), tesseract)
            if reader.engine == "fused":
                return self._once(("fused", tuple(formats)), fused)
            return plate() if reader.engine == "plate" else paddle()

    def _once(self, key: tuple[str, object], build: Callable[[], Engine]) -> Engine:
        """The engine built for ``key``, built by ``build`` the first time."""
        if key not in self._built:
            self._built[key] = build()
        return cast(Engine, self._built[key])
