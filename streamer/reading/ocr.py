"""OCR engines: turn one plate crop into text and a confidence.

Two engines of the interface every engine shares (:class:`OcrEngine`); ``reader.engine``
chooses among them and the project's plate recogniser (:mod:`streamer.reading.engines`):

- ``paddle``: the PP-OCRv4 text recogniser shipped inside the ``rapidocr-onnxruntime``
  wheel (Apache-2.0), run by OpenVINO on the plate-number line of the crop;
- ``tesseract``: Debian's Tesseract in-process through tesserocr (pytesseract and the
  binary otherwise), on a binarised line.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from streamer.reading.preprocess import prepare, text_band

logger = logging.getLogger(__name__)

WHITELIST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class TextRead:
    """What an engine read in one image: text as read, confidence 0..1."""

    text: str
    confidence: float


class OcrEngine(Protocol):
    """Reads the plate number in one plate crop (BGR, as the detector cut it)."""

    name: str

    def read(self, crop: np.ndarray) -> TextRead:
        """Text as read (not yet normalised) and a confidence 0..1."""
        ...


class OcrError(RuntimeError):
    """The OCR engine is not installed or cannot start."""


def find_tessdata(configured: Path | None = None) -> Path:
    """The Tesseract data folder holding ``eng.traineddata``.

    Raises:
        OcrError: with the package to install when there is none.
    """
    candidates = [str(configured)] if configured else []
    if prefix := os.environ.get("TESSDATA_PREFIX"):
        candidates.append(prefix)
    candidates += sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    candidates += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    for candidate in candidates:
        if (Path(candidate) / "eng.traineddata").is_file():
            return Path(candidate)
    raise OcrError(
        "Tesseract language data not found: install Debian's tesseract-ocr "
        "(apt-get install tesseract-ocr tesseract-ocr-eng)"
    )


class TesseractEngine:
    """Tesseract in single-line mode with a plate character whitelist.

    In-process through tesserocr when importable (far faster per crop than spawning the
    binary); otherwise, or with ``in_process=False``, pytesseract and the
    ``tesseract`` command.
    """

    def __init__(self, tessdata: Path | None = None, in_process: bool = True) -> None:
        self.tessdata = find_tessdata(tessdata)
        self._lock = threading.Lock()
        try:
            if not in_process:
                raise ImportError("the tesseract command was asked for")
            import tesserocr

            self._api = tesserocr.PyTessBaseAPI(
                path=str(self.tessdata),
                lang="eng",
                psm=tesserocr.PSM.SINGLE_LINE,
                oem=tesserocr.OEM.LSTM_ONLY,
            )
            self._api.SetVariable("tessedit_char_whitelist", WHITELIST)
            self._tesserocr = tesserocr
            self._api.SetVariable("load_system_dawg", "0")
            self._api.SetVariable("load_freq_dawg", "0")
            self.name = "tesserocr"
        except ImportError:
            if shutil.which("tesseract") is None:
                raise OcrError(
                    "Tesseract not found: install Debian's tesseract-ocr "
                    "(apt-get install tesseract-ocr tesseract-ocr-eng)"
                ) from None
            self._api = None
            self.name = "pytesseract"

    def read(self, crop: np.ndarray) -> TextRead:
        """Read a plate crop: :func:`~streamer.reading.preprocess.prepare`, then one line."""
        return self.recognise(prepare(crop))

    def recognise(self, image: np.ndarray) -> TextRead:
        """Read one line; confidence is Tesseract's mean word confidence / 100."""
        if self._api is None:
            return self._recognise_subprocess(image)
        height, width = image.shape[:2]
        data = np.ascontiguousarray(image)
        with self._lock:
            self._api.SetImageBytes(data.tobytes(), width, height, 1, width)
            self._api.Recognize()
            # With a whitelist, Tesseract's word confidences read 0; symbols' are right.
            symbols = self._symbols()
        text = "".join(symbol for symbol, _ in symbols if symbol)
        if not text:
            return TextRead("", 0.0)
        confidence = sum(conf for _, conf in symbols) / len(symbols) / 100.0
        return TextRead(text, confidence)

    def _symbols(self) -> list[tuple[str, float]]:
        level = self._tesserocr.RIL.SYMBOL
        iterator = self._api.GetIterator()
        if iterator is None:
            return []
        symbols = []
        for result in self._tesserocr.iterate_level(iterator, level):
            try:
                symbols.append((result.GetUTF8Text(level), result.Confidence(level)))
            except RuntimeError:  # an empty result has no text to return
                continue
        return symbols

    def _recognise_subprocess(self, image: np.ndarray) -> TextRead:
        import pytesseract

        config = (
            f"--psm 7 --oem 1 --tessdata-dir {self.tessdata} -c tessedit_char_whitelist={WHITELIST}"
        )
        data = pytesseract.image_to_data(
            image, lang="eng", config=config, output_type=pytesseract.Output.DICT
        )
        words = [
            (w, float(c))
            for w, c in zip(data["text"], data["conf"], strict=True)
            if w.strip() and float(c) >= 0
        ]
        if not words:
            return TextRead("", 0.0)
        return TextRead(" ".join(w for w, _ in words), sum(c for _, c in words) / len(words) / 100)


class PaddleEngine:
    """PP-OCRv4 text recognition (ONNX, from the rapidocr-onnxruntime wheel) on the
    plate-number line of the crop.

    The model was trained on Chinese and English text; characters outside A-Z and 0-9 are
    dropped by normalisation later. Nothing is downloaded: the weights are in the wheel.
    rapidocr's recogniser does the resizing and the decoding; its network runs on OpenVINO
    (:class:`_OpenVinoNetwork`) instead of onnxruntime.
    """

    name = "paddle"

    def __init__(self) -> None:
        try:
            from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        except ImportError as error:
            raise OcrError(
                f"reader.engine paddle: rapidocr-onnxruntime is missing ({error})"
            ) from None
        import rapidocr_onnxruntime
        import yaml

        package = Path(rapidocr_onnxruntime.__file__).parent
        settings: dict[str, Any] = yaml.safe_load((package / "config.yaml").read_text())["Rec"]
        settings["model_path"] = str(package / settings["model_path"])
        self._recogniser = TextRecognizer(settings)  # reads the model's character list
        self._recogniser.session = _OpenVinoNetwork(Path(settings["model_path"]))
        self._lock = threading.Lock()

    def read(self, crop: np.ndarray) -> TextRead:
        """Recognise the plate-number line; confidence is the model's mean character score."""
        band, _ = text_band(crop, height=96)
        image = cv2.cvtColor(band, cv2.COLOR_GRAY2BGR)
        with self._lock:
            results, _ = self._recogniser([image])
        text, confidence = results[0]
        return TextRead(str(text), float(confidence) if text else 0.0)


class _OpenVinoNetwork:
    """An ONNX network on OpenVINO, called as rapidocr calls its onnxruntime session.

    One thread in float32: the same reads as onnxruntime, in less time. Reading runs
    beside detection, which has a stream on each core, so one thread avoids
    oversubscribing them. bfloat16 would be faster again where the CPU has it, but changes
    some reads (docs/PERFORMANCE.md, "Design measurements").
    """

    def __init__(self, model: Path) -> None:
        import openvino as ov

        core = ov.Core()
        settings = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": 1,
            "INFERENCE_PRECISION_HINT": "f32",
            "CACHE_DIR": "",
        }
        self._request = core.compile_model(
            core.read_model(model), "CPU", settings
        ).create_infer_request()

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        """The network's output for a normalised ``[N, 3, 48, W]`` batch (not thread-safe)."""
        return [self._request.infer({0: batch})[0].copy()]
