"""What marking false alarms as normal does (``python -m benchmarks.feedback_effect``).

On a COPY of the shipped ``checkpoint/`` (in a temporary folder; ``checkpoint/`` is never
written): score ``sample_data/HDFS_heldout.log.gz``, take the ``--mark`` (10) highest-scoring
sessions that are flagged and labelled Normal, mark them as normal (``feedback.mark_normal``,
what ``tinylogbert feedback --normal`` does), load the copy again and rescore. Reports false
alarms (flagged, labelled Normal) and detected anomalies (flagged, labelled Anomaly) before and
after, and how many sessions the feedback suppressed; writes
``benchmarks/results/feedback_effect.md``.

The goal (issue 13): at least ``--mark`` false alarms fewer, at most 2% of the detected anomalies
lost.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tinylogbert import pipeline
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.scoring.evaluate import read_labels
from tinylogbert.scoring.feedback import mark_normal

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoint"
LOG = ROOT / "sample_data" / "HDFS_heldout.log.gz"
LABELS = ROOT / "sample_data" / "HDFS_heldout_labels.csv"
OUT = Path(__file__).resolve().parent / "results" / "feedback_effect.md"


def counts(result) -> dict:
    frame = result.session_frame
    flagged = frame["is_anomaly"].to_numpy()
    label = frame["label"].to_numpy()
    return {"false_alarms": int((flagged & (label == 0)).sum()),
            "detected": int((flagged & (label == 1)).sum()),
            "anomalies": int((label == 1).sum()),
            "flagged": int(flagged.sum()),
            "suppressed": int((frame["suppressed_by"] != "").sum())}


def score(folder: Path, labels) -> object:
    detector = TinyLogBERTDetector.load(folder, runtime="auto")
    scored = pipeline.run(detector, LOG, pipeline.ScoreOptions(embeddings=False))
    return scored.result.with_session_labels(labels)


def measure(model: Path, labels, n_mark: int, match: str) -> tuple[dict, str]:
    """One run on a fresh copy of ``model``: the figures and their markdown section."""
    with tempfile.TemporaryDirectory(prefix="tinylogbert-feedback-") as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(model, copy)
        before = score(copy, labels)
        frame = before.session_frame
        false_alarms = frame[frame["is_anomaly"] & (frame["label"] == 0)]
        marked = false_alarms.sort_values("score", ascending=False, kind="stable")
        marked = marked["session_id"].head(n_mark).tolist()
        _, entries = mark_normal(copy, LOG, marked, match=match)
        after = score(copy, labels)
    b, a = counts(before), counts(after)
    lost = b["detected"] - a["detected"]
    removed = b["false_alarms"] - a["false_alarms"]
    ok = removed >= n_mark and lost <= 0.02 * b["detected"]
    rows = [("false alarms (flagged, labelled Normal)", b["false_alarms"], a["false_alarms"]),
            ("detected anomalies (flagged, labelled Anomaly)", b["detected"], a["detected"]),
            ("sessions flagged", b["flagged"], a["flagged"]),
            ("sessions suppressed by feedback", b["suppressed"], a["suppressed"])]
    section = "\n".join([
        f"## match `{match}`" + (" (the default)" if match == "sequence" else ""),
        "",
        (f"{len(frame):,} sessions, {b['anomalies']:,} labelled Anomaly; the {len(marked)} "
         "highest-scoring flagged sessions labelled Normal were marked as normal "
         f"({len({e.id for e in entries})} feedback entries), then the log was scored again."),
        "",
        "| | before | after |",
        "|---|---:|---:|",
        *[f"| {name} | {x:,} | {y:,} |" for name, x, y in rows],
        "",
        (f"False alarms removed: **{removed:,}** (goal: at least {n_mark}); detected anomalies "
         f"lost: **{lost:,}** of {b['detected']:,} ({lost / max(b['detected'], 1):.2%}; goal: at "
         f"most 2%). Goal {'met' if ok else 'NOT met'}."),
        "",
        "Marked sessions: " + ", ".join(f"`{s}`" for s in marked),
        "",
    ])
    return {"before": b, "after": a, "removed": removed, "lost": lost, "ok": ok}, section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=CHECKPOINT)
    parser.add_argument("--mark", type=int, default=10, help="false alarms to mark (highest first)")
    parser.add_argument("--match", choices=["sequence", "set", "both"], default="both")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    labels = read_labels(LABELS)
    started = time.perf_counter()
    matches = ["sequence", "set"] if args.match == "both" else [args.match]
    results = [measure(args.model, labels, args.mark, m) for m in matches]
    model = args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model
    text = "\n".join([
        "# Feedback on false alarms: the effect of marking the top false alarms",
        "",
        (f"`python -m benchmarks.feedback_effect`: model `{model}` (a copy in a temporary "
         "folder, each run a fresh one), log `sample_data/HDFS_heldout.log.gz` with "
         f"`sample_data/HDFS_heldout_labels.csv`. ({time.perf_counter() - started:.0f} s)"),
        "",
        *[section for _, section in results],
    ])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0 if all(r["ok"] for r, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
