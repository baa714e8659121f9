"""``tinylogbert adapt`` measured: follow a reworded release without labels.

The shipped checkpoint (trained on ``HDFS_sample``) meets ``HDFS_heldout`` as a release that
rewords 30% of its message types (``evolution.variant_lines``, seed 0). The detector adapts on the
blocks of the first half (by first appearance) and scores the other blocks; compared with the unadapted
checkpoint on the same half (and with ``recalibrate=True``: thresholds from the new log), and the
adapt wall time with a full ``fit`` of the same first half.

    python -m benchmarks.adapt [--skip-train]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import re

from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "sample_data" / "HDFS_heldout.log.gz"
LABELS = ROOT / "sample_data" / "HDFS_heldout_labels.csv"
BLOCK = re.compile(r"blk_-?\d+")
RESULTS = ROOT / "benchmarks" / "results"


def block_metrics(detector, lines: list[str], labels) -> dict:
    from tinylogbert.scoring.evaluate import align_labels

    result = detector.score(lines, embeddings=False)
    y = align_labels(result.sessions.ids, labels)
    known = y >= 0
    y, s = y[known], result.session_scores[known]
    flagged = s >= detector.threshold_
    return {"roc_auc": float(roc_auc_score(y, s)), "pr_auc": float(average_precision_score(y, s)),
            "f1": float(f1_score(y, flagged)), "normal_flagged": float(flagged[y == 0].mean()),
            "blocks": int(len(y))}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.evolution import variant_lines
    from tinylogbert.scoring.detector import TinyLogBERTDetector
    from tinylogbert.scoring.evaluate import read_labels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoint"))
    ap.add_argument("--variant", default="30%")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--frozen-layers", type=int, default=None,
                    help="adapt's frozen_layers (default: adapt's own: the lower half, none with "
                         "the recalibrated arm)")
    ap.add_argument("--skip-train", action="store_true", help="do not time a full train")
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)

    base = TinyLogBERTDetector.load(args.checkpoint)
    with gzip.open(LOG, "rt") as handle:
        lines = handle.read().splitlines()
    reworded, info = variant_lines(lines, base.parse(lines), args.variant, seed=0)
    # By block first appearance: an HDFS block spans much of the log, so cutting at the middle
    # line would leave truncated blocks on both sides (they look anomalous to every model).
    block = [m.group(0) if (m := BLOCK.search(line)) else "" for line in reworded]
    order = list(dict.fromkeys(b for b in block if b))
    early = set(order[: len(order) // 2])
    first = [line for line, b in zip(reworded, block) if b in early]
    second = [line for line, b in zip(reworded, block) if b not in early]
    half = len(first)
    labels = read_labels(LABELS)

    started = time.perf_counter()
    adapted = base.adapt(first, epochs=args.epochs, frozen_layers=args.frozen_layers)
    adapt_s = time.perf_counter() - started
    recalibrated = base.adapt(first, epochs=args.epochs, recalibrate=True,
                              frozen_layers=args.frozen_layers)
    rows = {"unadapted": block_metrics(base, second, labels),
            "adapted": block_metrics(adapted, second, labels),
            "adapted, recalibrated": block_metrics(recalibrated, second, labels)}
    train_s = None
    if not args.skip_train:
        started = time.perf_counter()
        fresh = TinyLogBERTDetector(**{**base.get_params()}).fit(first)
        train_s = time.perf_counter() - started
        rows["full train (first half)"] = block_metrics(fresh, second, labels)
    out = {"variant": args.variant, "lines_changed": info["lines_changed"],
           "frozen_layers": adapted.training_summary_["adapted_from"]["frozen_layers"],
           "adapt_lines": half, "scored_lines": len(second), "adapt_seconds": round(adapt_s, 1),
           "train_seconds": None if train_s is None else round(train_s, 1),
           "adapt_over_train": None if train_s is None else round(adapt_s / train_s, 3),
           "new_line_classes": adapted.training_summary_["adapted_from"]["new_line_classes"],
           "rows": rows}
    table = ["| model | ROC-AUC | PR-AUC | F1 (label-free thr) | normal blocks flagged |",
             "|---|---|---|---|---|"]
    table += [f"| {k} | {v['roc_auc']:.4f} | {v['pr_auc']:.4f} | {v['f1']:.4f} | "
              f"{v['normal_flagged']:.4f} |" for k, v in rows.items()]
    load = os.getloadavg()[0]  # a timing means little without the machine's load beside it
    out["load_1min"] = round(load, 2)
    times = (f"adapt {adapt_s:.1f}s on {half:,} lines"
             + ("" if train_s is None else f"; full train {train_s:.1f}s "
                f"(adapt/train = {adapt_s / train_s:.3f})") + f"; load average {load:.2f}")
    text = "\n".join(table) + "\n\n" + times
    print(text)
    folder = Path(args.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapt.json").write_text(json.dumps(out, indent=2) + "\n")
    (folder / "adapt.md").write_text(
        f"# adapt: HDFS_heldout reworded ({args.variant}, seed 0), adapt on first half, "
        f"score second half\n\nCommand: `python -m benchmarks.adapt`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
