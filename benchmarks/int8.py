"""``serve --int8`` measured: the int8-quantized ONNX graph against the float one.

On one core, in process: the time of ``ScoringService.score_lines`` per cold 1,000-line request
(``load_test``'s distinct bodies, after a warm-up), for each graph; then, on the whole of
``HDFS_heldout``, how far the int8 graph's session scores are from the float graph's, how many
flags change, and ROC-AUC / PR-AUC of both against the labels. Also the time to write one
response's rows as JSON with orjson (what the API uses) and with the standard library.

    python -m benchmarks.int8 [--requests 40]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoint"
SAMPLE = ROOT / "sample_data"


def per_request_ms(detector, bodies: list[list[str]], warm_up: int = 4) -> float:
    from tinylogbert.api.service import ScoreJob, ScoringService
    from tinylogbert.api.settings import ApiSettings

    service = ScoringService(detector, ApiSettings(model_dir=CHECKPOINT))
    job = ScoreJob("auto", None, None, 3)
    for body in bodies[:warm_up]:
        service.score_lines(body, job)
    started = time.perf_counter()
    for body in bodies[warm_up:]:
        service.score_lines(body, job)
    return (time.perf_counter() - started) / len(bodies[warm_up:]) * 1000


def main(argv: list[str] | None = None) -> int:
    from benchmarks.load_test import request_bodies
    from sklearn.metrics import average_precision_score, roc_auc_score
    from tinylogbert.api.rendering import _rows, dumps
    from tinylogbert.scoring.detector import TinyLogBERTDetector
    from tinylogbert.scoring.evaluate import align_labels, read_labels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="cold requests timed per graph")
    args = ap.parse_args(argv)
    bodies = [json.loads(b)["lines"] for b in
              request_bodies(SAMPLE / "HDFS_sample.log.gz", 1000, args.requests + 4)]
    graphs = {name: TinyLogBERTDetector.load(CHECKPOINT, runtime=name, num_threads=1)
              for name in ("onnx", "onnx-int8")}
    for name, detector in graphs.items():
        print(f"{name}: {per_request_ms(detector, bodies):.1f} ms per cold 1,000-line request "
              f"(one core, {args.requests} requests)")
    with gzip.open(SAMPLE / "HDFS_heldout.log.gz", "rt") as handle:
        lines = handle.read().splitlines()
    results = {name: d.score(lines, embeddings=False) for name, d in graphs.items()}
    a, b = results["onnx"], results["onnx-int8"]
    gap = np.abs(a.session_scores - b.session_scores)
    flips = int(((a.session_scores >= graphs["onnx"].threshold_)
                 != (b.session_scores >= graphs["onnx-int8"].threshold_)).sum())
    print(f"HDFS_heldout, {len(gap):,} sessions: |score difference| max {gap.max():.3f}, median "
          f"{np.median(gap):.4f}; flags changed: {flips}")
    labels = align_labels(a.sessions.ids, read_labels(SAMPLE / "HDFS_heldout_labels.csv"))
    known = labels >= 0
    for name, result in results.items():
        s = result.session_scores[known]
        print(f"  {name}: ROC-AUC {roc_auc_score(labels[known], s):.4f}, "
              f"PR-AUC {average_precision_score(labels[known], s):.4f}")
    rows = _rows(a.line_table.slice(0, 1000), list(a.line_table.column_names))
    for label, write in (("orjson", dumps),
                         ("json (standard library)",
                          lambda v: json.dumps(v, separators=(",", ":")).encode())):
        started = time.perf_counter()
        for _ in range(20):
            write(rows)
        print(f"JSON of 1,000 line rows with {label}: "
              f"{(time.perf_counter() - started) / 20 * 1000:.2f} ms")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
