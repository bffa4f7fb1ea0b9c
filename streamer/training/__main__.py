"""``python -m streamer.training train --out DIR``: train the plate recogniser, export it.

Run from streamer's own environment, the command runs itself again in the export
environment (:func:`streamer.vision.export.export_python`, made first when missing),
after installing there what training adds to it (:data:`EXTRAS`, once). Steps, each
skipped when its output is already in ``DIR``:

1. the data, cached in ``DIR/data``: synthetic plates (seed ``--seed``) and the
   Brazilian crops of ``--brazil`` (``../shared/data/plates-br``), a tenth of them held out;
2. training (:func:`streamer.training.train.train`), a checkpoint every epoch, so an
   interrupted run resumes; the figures of every epoch in ``DIR/log.jsonl``;
3. the export, ``DIR/plate_recogniser.onnx`` and its ``.chars``, checked on OpenVINO.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger("streamer.training")

ROOT = Path(__file__).resolve().parents[2]
#: What training needs in the export environment beyond what it has: onnx (the export,
#: and onnx2torch's input), onnxscript (torch's exporter imports it), onnx2torch (PP-OCRv4
#: as a torch module; without its requirements, which would replace torch's CPU build).
EXTRAS = ("onnx==1.23.2", "onnxscript==0.7.2")
EXTRAS_NO_DEPS = ("onnx2torch==1.5.15",)
DEFAULT_BRAZIL = ROOT.parent / "shared" / "data" / "plates-br"
DEFAULT_US = ROOT.parent / "shared" / "data" / "ocr-crops-us"


def parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m streamer.training", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="make the data, train, export")
    train.add_argument(
        "--out", type=Path, required=True, help="run folder (resumed when it exists)"
    )
    train.add_argument("--network", choices=("crnn", "paddle"), default="crnn")
    train.add_argument("--brazil", type=Path, default=DEFAULT_BRAZIL, help="plates-br folder")
    train.add_argument(
        "--us-crops",
        type=Path,
        default=DEFAULT_US,
        help="ocr-crops-us folder: the half in streamer/training/splits is trained on",
    )
    train.add_argument("--us-variants", type=int, default=10, help="extra photographs of each")
    train.add_argument("--synthetic", type=int, default=100_000, help="synthetic plates")
    train.add_argument(
        "--brazil-variants", type=int, default=3, help="extra photographs of each crop"
    )
    train.add_argument("--epochs", type=int, default=14)
    train.add_argument("--batch", type=int, default=None, help="default: 64, paddle 32")
    train.add_argument(
        "--learning-rate", type=float, default=None, help="default: 1.5e-3, paddle 3e-4"
    )
    train.add_argument(
        "--samples-per-epoch", type=int, default=0, help="a random part each epoch (0: all)"
    )
    train.add_argument("--seed", type=int, default=20261207)
    train.add_argument("--workers", type=int, default=2, help="processes making the data")
    train.add_argument("--threads", type=int, default=2, help="torch threads (at most 2)")
    train.add_argument(
        "--limit", type=int, default=None, help="use at most this many Brazilian crops"
    )
    export = sub.add_parser("export", help="export a run's last checkpoint to ONNX")
    export.add_argument("--out", type=Path, required=True, help="the run folder")
    export.add_argument(
        "--to", type=Path, default=None, help="ONNX file (default: in the run folder)"
    )
    evaluate = sub.add_parser(
        "evaluate",
        help="`streamer eval` with a run's model, and the part of ocr-crops-us never trained on",
    )
    evaluate.add_argument("paths", type=Path, nargs="*", help="as `streamer eval` takes them")
    evaluate.add_argument("--engine", nargs="+", default=["plate", "paddle", "fused"])
    evaluate.add_argument("--model", type=Path, default=None, help="default: the committed one")
    evaluate.add_argument(
        "--held-out",
        type=Path,
        default=None,
        help="also evaluate the ocr-crops-us crops at this path that were never trained on",
    )
    evaluate.add_argument("--out", type=Path, default=None, help="also write JSON here")
    evaluate.add_argument("--limit", type=int, default=None)
    speed = sub.add_parser("speed", help="ms per crop and agreement of each precision (no torch)")
    speed.add_argument("crops", type=Path, help="a crops set (ocr-crops-us)")
    speed.add_argument("--model", type=Path, default=None, help="default: the committed one")
    speed.add_argument("--precision", nargs="+", default=["f32", "bf16"])
    speed.add_argument("--limit", type=int, default=None, help="at most this many crops")
    return parser


def _speed(args: argparse.Namespace) -> int:
    from streamer.reading.recogniser import MODEL
    from streamer.training.evaluate import precisions

    rows = precisions(args.crops, args.model or MODEL, args.precision, args.limit)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "CPU",
    )
    print(f"{cpu}, one core, CPU time of one read (preprocessing included)\n")
    print("| engine | precision | ms per crop | reads as the first precision | PP-OCRv4 too |")
    print("|---|---|---|---|---|")
    for row in rows:
        shown = [
            f"{value:.1%}" if isinstance(value, float) else "-"
            for value in (row.get("same_reads"), row.get("second_reads"))
        ]
        print(
            f"| {row['engine']} | {row['precision']} | {row['ms_per_crop']} | {' | '.join(shown)} |"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import tempfile

    from streamer.config import Config
    from streamer.evaluation.evaluate import run
    from streamer.reading.recogniser import MODEL
    from streamer.training.evaluate import held_out_crops

    with tempfile.TemporaryDirectory(prefix="streamer-held-out-") as folder:
        paths = list(args.paths)
        if args.held_out is not None:
            paths.insert(0, held_out_crops(args.held_out, Path(folder) / "ocr-crops-us-held-out"))
        print(run(paths, args.engine, Config(), args.out, args.limit, args.model or MODEL))
    return 0


def _export(args: argparse.Namespace) -> int:
    import torch

    from streamer.training.data import HEIGHT, WIDTH, synthetic
    from streamer.training.export import export_onnx, sha256
    from streamer.training.model import build

    state = torch.load(args.out / "checkpoint.pt", weights_only=False)
    network = build(state["settings"]["network"])
    network.load_state_dict(state["network"])
    target = args.to or args.out / "plate_recogniser.onnx"
    # Plates no run trained on (another seed), to check that OpenVINO reads as torch does.
    probe = synthetic(state["settings"]["seed"] + 2, 50, workers=1).images
    export_onnx(network, target, HEIGHT, WIDTH, probe=probe)
    logger.info("SHA-256 %s", sha256(target))
    logger.info("exported epoch %d of %s to %s", state["epoch"], args.out, target)
    return 0


def _in_export_env() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _relaunch(argv: Sequence[str]) -> int:
    """Run this command again in the export environment, with :data:`EXTRAS` installed."""
    from streamer.vision.export import _pip, export_python

    python = export_python()
    stamp = python.parent.parent / ".streamer-training"
    wanted = "\n".join((*EXTRAS, *EXTRAS_NO_DEPS))
    if not stamp.is_file() or stamp.read_text() != wanted:
        logger.info(
            "installing %s into the export environment (once)", " ".join((*EXTRAS, *EXTRAS_NO_DEPS))
        )
        _pip(python, *EXTRAS)
        _pip(python, "--no-deps", *EXTRAS_NO_DEPS)
        stamp.write_text(wanted)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [str(python), "-m", "streamer.training", *argv]
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": path}, check=False).returncode


def _train(args: argparse.Namespace) -> int:
    from streamer.training.data import HEIGHT, WIDTH, Samples, brazil, synthetic, us_crops
    from streamer.training.export import export_onnx
    from streamer.training.train import Settings, train

    out: Path = args.out
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)

    def cached(name: str, make: object) -> Samples:
        path = data / f"{name}.npz"
        if not path.is_file():
            assert callable(make)
            make().save(path)
        return Samples.load(path)

    workers = args.workers
    parts = [
        cached(
            f"synthetic-{args.seed}-{args.synthetic}",
            lambda: synthetic(args.seed, args.synthetic, workers),
        )
    ]
    checks = max(50, args.synthetic // 50)
    validation = {
        "synthetic": cached(
            f"synthetic-{args.seed + 1}-{checks}", lambda: synthetic(args.seed + 1, checks, workers)
        )
    }
    if args.brazil.is_dir():
        limit = args.limit
        parts.append(
            cached(
                f"brazil-{args.seed}-{args.brazil_variants}-{limit}",
                lambda: brazil(args.brazil, False, args.seed, args.brazil_variants, workers, limit),
            )
        )
        validation["brazil"] = cached(
            f"brazil-validation-{limit}", lambda: brazil(args.brazil, True, limit=limit)
        )
    else:
        logger.warning("%s not found: training without the Brazilian crops", args.brazil)
    if args.us_crops.is_dir() and args.us_variants >= 0:
        variants = args.us_variants
        parts.append(
            cached(
                f"us-{args.seed}-{variants}",
                lambda: us_crops(args.us_crops, args.seed, variants),
            )
        )
        validation["us-held-out"] = cached(
            "us-held-out", lambda: us_crops(args.us_crops, training=False)
        )
    else:
        logger.warning("%s not found: training without the US crops", args.us_crops)
    training = Samples.join(parts)
    logger.info(
        "training on %d samples; validating on %s",
        len(training),
        {k: len(v) for k, v in validation.items()},
    )
    paddle = args.network == "paddle"
    settings = Settings(
        network=args.network,
        epochs=args.epochs,
        batch=args.batch or (32 if paddle else 64),
        learning_rate=args.learning_rate or (3e-4 if paddle else 1.5e-3),
        seed=args.seed,
        samples_per_epoch=args.samples_per_epoch,
        threads=min(2, args.threads),
    )
    network = train(out, training, validation, settings)
    target = export_onnx(
        network,
        out / "plate_recogniser.onnx",
        HEIGHT,
        WIDTH,
        probe=validation["synthetic"].images[:50],
    )
    logger.info("exported %s", target)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "speed":
        return _speed(args)
    if not _in_export_env():
        return _relaunch(argv)
    if args.command == "train":
        return _train(args)
    return _export(args)


if __name__ == "__main__":
    sys.exit(main())
