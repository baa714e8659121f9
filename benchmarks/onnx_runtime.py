"""ONNX Runtime against torch: score agreement and ``tinylogbert score`` cold-start wall time.

    python -m benchmarks.onnx_runtime --model checkpoint --log sample_data/HDFS_heldout.log.gz

Agreement: the log scored in-process by the same checkpoint loaded with each runtime (max
|diff| of session and line scores, both passes). Wall time: ``python -m tinylogbert.cli.main score`` as a
fresh process (interpreter start, imports, model load, file in -> LINES.csv out) on the log and
on its first ``--small-lines`` lines, ``--runs`` times per runtime (median), and whether torch
was imported on the ONNX path (``python -X importtime``). The checkpoint needs ``model.onnx``
(``tinylogbert export-onnx --model DIR``).
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def agreement(model: str, log: str) -> dict[str, float]:
    import numpy as np
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    torch_det = TinyLogBERTDetector.load(model, runtime="torch")
    onnx_det = TinyLogBERTDetector.load(model, runtime="onnx")
    out = {}
    for embeddings in (False, True):
        a, b = torch_det.score(log, embeddings=embeddings), onnx_det.score(log, embeddings=embeddings)
        tag = "both passes" if embeddings else "next-line pass (CLI)"
        out[f"sessions, {tag}"] = float(np.abs(a.session_scores - b.session_scores).max())
        out[f"lines, {tag}"] = float(np.abs(a.line_scores - b.line_scores).max())
        out[f"session flags differing, {tag}"] = int((a.session_frame["is_anomaly"]
                                                      != b.session_frame["is_anomaly"]).sum())
    return out


def cli_seconds(model: str, log: str, runtime: str, runs: int, out: Path) -> list[float]:
    command = [sys.executable, "-m", "tinylogbert.cli.main", "score", log, "--model", model, "--out",
               str(out), "--runtime", runtime]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return times


def imports_torch(model: str, log: str, out: Path) -> bool:
    command = [sys.executable, "-X", "importtime", "-m", "tinylogbert.cli.main", "score", log, "--model",
               model, "--out", str(out), "--runtime", "onnx"]
    proc = subprocess.run(command, check=True, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    return "torch" in imported or "transformers" in imported


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "checkpoint"))
    parser.add_argument("--log", default=str(ROOT / "sample_data" / "HDFS_heldout.log.gz"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-lines", type=int, default=20)
    args = parser.parse_args(argv)
    for name, value in agreement(args.model, args.log).items():
        print(f"max |diff| {name}: {value:.3g}" if isinstance(value, float) else f"{name}: {value}")
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / f"first_{args.small_lines}.log"
        opener = gzip.open if args.log.endswith(".gz") else open
        with opener(args.log, "rt", encoding="utf-8", errors="replace") as handle:
            small.write_text("".join(next(handle) for _ in range(args.small_lines)))
        out = Path(tmp) / "lines.csv"
        for label, log in ((Path(args.log).name, args.log), (small.name, str(small))):
            for runtime in ("torch", "onnx"):
                times = cli_seconds(args.model, log, runtime, args.runs, out)
                print(f"tinylogbert score {label} --runtime {runtime}: median "
                      f"{statistics.median(times):.2f}s ({', '.join(f'{t:.2f}' for t in times)})")
        print(f"torch imported on the ONNX path: {imports_torch(args.model, str(small), out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
