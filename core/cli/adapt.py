"""``tinylogbert adapt``: update a trained model to a newer log without labels (``scoring/adapt.py``)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adapt`` to the ``tinylogbert`` command (see ``EXTRA_COMMAND_MODULES``)."""
    from tinylogbert.model.checkpoint import DEFAULT_MODEL_DIR

    p = subparsers.add_parser(
        "adapt", help="update a trained model to a newer log (no labels), keeping what it knew",
        description="Keeps the tokenizer, adds the new log's frequent lines to the line "
        "vocabulary (each starts as the known line it resembles), fine-tunes the network and "
        "keeps the model's thresholds (--recalibrate: from the new log); writes a new checkpoint.",
    )
    p.add_argument("logfile", help="the newer log")
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="checkpoint folder (read)")
    p.add_argument("--out", required=True, help="folder for the adapted checkpoint")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (default 1)")
    p.add_argument("--recalibrate", action="store_true",
                   help="thresholds and spreads from the new log, as train does (default: kept "
                        "from --model; a short new log calibrated alone flagged far more)")
    p.add_argument("--frozen-layers", type=int, default=None, metavar="N",
                   help="encoder layers kept as they were, from the bottom, with the word-piece "
                        "embeddings (default: the lower half, 2 of BERT-mini's 4, or none "
                        "with --recalibrate; 0: fine-tune every weight)")
    p.add_argument("--force", action="store_true", help="allow --out to be the --model folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    from tinylogbert.cli.common import PhaseBar
    from tinylogbert.cli.main import check_output_folder
    from tinylogbert.errors import OutputError, TinyLogBERTError
    from tinylogbert.model.checkpoint import check_folder
    from tinylogbert.reports.display import format_threshold
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    if args.epochs < 1:
        raise TinyLogBERTError(f"--epochs {args.epochs}: must be at least 1")
    folder = check_folder(args.model)
    if Path(args.out).resolve() == Path(folder).resolve() and not args.force:
        raise OutputError(f"--out {args.out}: is the --model folder; give another folder "
                          "(or --force to replace the model)")
    check_output_folder(args.out, "--out")
    log = Path(args.logfile)
    if not log.is_file():
        raise TinyLogBERTError(f"{args.logfile}: no such log file")
    if log.stat().st_size == 0:
        raise TinyLogBERTError(f"{args.logfile}: the log is empty")
    detector = TinyLogBERTDetector.load(folder)
    bar = PhaseBar(args.quiet, show_loss=False)
    started = time.perf_counter()
    try:
        adapted = detector.adapt(str(log), epochs=args.epochs, on_progress=bar,
                                 recalibrate=args.recalibrate, frozen_layers=args.frozen_layers)
    finally:
        bar.close()
    out = adapted.save(args.out)
    info = adapted.training_summary_["adapted_from"]
    print(f"adapted to {info['lines']:,} lines in {time.perf_counter() - started:.1f}s; "
          f"line classes {len(detector.line_vocab_)} -> {len(adapted.line_vocab_)} "
          f"({info['new_line_classes']} new, {info['new_line_classes_matched']} matched to a "
          f"known line); threshold {format_threshold(adapted.threshold_)} "
          f"({'from the new log' if args.recalibrate else 'kept'}); "
          f"{_fine_tuned(info['frozen_layers'], adapted.model_config_.num_hidden_layers)}; "
          f"saved to {out}")
    return 0


def _fine_tuned(frozen: int, layers: int) -> str:
    if frozen == 0:
        return "every weight fine-tuned"
    if frozen == layers:
        return f"all {layers} encoder layers and the embeddings kept, the output layers fine-tuned"
    return (f"the upper {layers - frozen} of {layers} encoder layers fine-tuned (the lower "
            f"{frozen} and the embeddings kept)")
