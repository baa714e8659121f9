"""Local engine vs Ray engine on millions of HDFS lines split into many files.

    python -m benchmarks.ray_scale --lines 2000000 --files 40 [--model checkpoint]

The input is ``sample_data/HDFS_sample.log.gz`` repeated until ``--lines``; each copy renames its
block ids (``blk_123`` -> ``blk_123007`` in copy 7), so 2,000,000 lines are ~88,000 separate
sessions, as in a real log. Their content repeats, as HDFS's does: both engines score each
distinct sequence once, so this input favours that de-duplication more than a more varied log
would. The lines are cut, in order, into ``--files`` files (like rotated logs: a block whose lines
straddle a cut spans two files).

- **local**: ``TinyLogBERTDetector.score`` on the concatenation of the files, in order (one
  process; torch uses ``--threads``; no embeddings, as the CLI), then its line and session tables
  written as Parquet. Timed from reading the files (the model is loaded before).
- **ray**: ``tinylogbert.batch.ray_engine.score_files`` on the files, on a local Ray instance with
  ``--cpus`` CPUs, writing the same Parquet. Timed as a user waits for it (model loading and
  format detection on the driver included), ``ray.init`` apart.

Both produce the same sessions; the benchmark checks that the session ids agree and reports the
largest session-score difference. Memory: the local engine holds every line in memory (its peak
is reported); ``--time-limit`` stops the whole run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "HDFS_sample.log.gz"
DEFAULT_MODEL = ROOT / "checkpoint"
BLOCK_ID = r"(blk_-?\d+)"


@dataclass
class EngineRun:
    engine: str
    lines: int
    sessions: int
    seconds: float
    startup_seconds: float = 0.0  # Ray only: ray.init

    @property
    def lines_per_s(self) -> float:
        return self.lines / max(self.seconds, 1e-9)


def replicate_hdfs(n_lines: int, n_files: int, folder: Path) -> list[Path]:
    """Write ``n_lines`` HDFS lines (renamed copies of the sample) into ``n_files`` files."""
    from tinylogbert.io.log_reader import read_log_file

    sample = read_log_file(SAMPLE).lines
    copies = math.ceil(n_lines / len(sample))
    width = len(str(copies - 1))
    per_file = math.ceil(n_lines / n_files)
    paths = [folder / f"hdfs-{i + 1:03d}.log" for i in range(n_files)]
    written = 0
    with ExitStack() as stack:
        handles = [stack.enter_context(open(p, "w", encoding="utf-8")) for p in paths]
        for copy in range(copies):
            lines = pc.replace_substring_regex(sample, BLOCK_ID, rf"\1{copy:0{width}d}")
            lines = lines.slice(0, n_lines - written).to_pylist()
            position = 0
            while position < len(lines):  # file i holds lines [i * per_file, (i+1) * per_file)
                line_index = written + position
                room = per_file - line_index % per_file
                chunk = lines[position : position + room]
                handles[line_index // per_file].write("\n".join(chunk) + "\n")
                position += len(chunk)
            written += len(lines)
    return [p for p in paths if p.stat().st_size > 0]


def run_local(files: list[Path], model: str, out: Path, threads: int) -> tuple[EngineRun, pa.Table]:
    """The local engine on the files' concatenation; writes Parquet like the Ray engine."""
    import torch
    from tinylogbert.io.log_reader import read_log_bytes
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    if threads:
        torch.set_num_threads(threads)
    detector = TinyLogBERTDetector.load(model)
    started = time.perf_counter()
    lines = read_log_bytes(b"".join(p.read_bytes() for p in files), source="concatenation")
    result = detector.score(lines, embeddings=False)  # as the CLI and the Ray engine
    out.mkdir(parents=True)
    pq.write_table(result.line_table, out / "lines.parquet")
    pq.write_table(result.session_table, out / "sessions.parquet")
    seconds = time.perf_counter() - started
    return EngineRun("local", result.n_lines, result.n_sessions, seconds), result.session_table


def run_ray(
    files: list[Path], model: str, out: Path, cpus: int, lines_per_call: int, shuffle: str
) -> EngineRun:
    import ray
    from tinylogbert.batch.ray_engine import RayScoreConfig, score_files

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level="warning")
    startup = time.perf_counter() - started
    try:
        summary = score_files(
            [str(p) for p in files], str(out),
            RayScoreConfig(model=model, lines_per_call=lines_per_call, shuffle=shuffle),
        )
    finally:
        ray.shutdown()
    return EngineRun("ray", summary.lines, summary.sessions, summary.seconds, startup)


def compare_sessions(local: pa.Table, ray_out: Path) -> dict:
    """Do both engines report the same sessions with the same scores?"""
    ray_sessions = pq.read_table(ray_out / "sessions", columns=["session_id", "score"])
    a = local.select(["session_id", "score"]).to_pandas().set_index("session_id")["score"]
    b = ray_sessions.to_pandas().set_index("session_id")["score"]
    same_ids = set(a.index) == set(b.index)
    diff = (a - b.reindex(a.index)).abs()
    return {"same_session_ids": same_ids, "max_score_diff": float(np.nanmax(diff.to_numpy()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint folder")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the local engine")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs of the local Ray instance")
    parser.add_argument("--lines-per-call", type=int, default=1_000_000,
                        help="Ray engine: lines per scorer call")
    parser.add_argument("--shuffle", default="sort_shuffle_pull_based",
                        help="Ray engine: Ray Data shuffle strategy (e.g. hash_shuffle)")
    parser.add_argument("--engines", default="local,ray", help="which engines to run")
    parser.add_argument("--time-limit", type=int, default=1800, help="seconds for everything")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args(argv)

    def out_of_time(*_):
        raise TimeoutError(f"benchmark stopped after --time-limit {args.time_limit}s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    with tempfile.TemporaryDirectory(prefix="ray_scale_") as tmp:
        folder = Path(tmp)
        (folder / "logs").mkdir()
        started = time.perf_counter()
        files = replicate_hdfs(args.lines, args.files, folder / "logs")
        print(f"wrote {args.lines:,} lines in {len(files)} files "
              f"({sum(p.stat().st_size for p in files) / 1e6:,.0f} MB) "
              f"in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        runs: list[EngineRun] = []
        local_sessions = None
        if "local" in engines:
            run, local_sessions = run_local(files, args.model, folder / "local", args.threads)
            runs.append(run)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"local: {run.lines_per_s:,.0f} lines/s, peak memory {peak_mb:,.0f} MB",
                  file=sys.stderr)
        if "ray" in engines:
            runs.append(run_ray(files, args.model, folder / "ray", args.cpus,
                                args.lines_per_call, args.shuffle))
            print(f"ray: {runs[-1].lines_per_s:,.0f} lines/s", file=sys.stderr)
        check = compare_sessions(local_sessions, folder / "ray") \
            if local_sessions is not None and "ray" in engines else {}
    signal.alarm(0)
    report = {
        "lines": args.lines, "files": len(files), "model": args.model, "cpus": args.cpus,
        "local_threads": args.threads,
        "runs": [{**asdict(r), "lines_per_s": round(r.lines_per_s, 1)} for r in runs],
        **check,
    }
    by_engine = {r.engine: r for r in runs}
    if len(by_engine) == 2:
        # > 1: Ray is slower (its overhead); < 1: faster.
        report["overhead_ratio"] = round(by_engine["ray"].seconds / by_engine["local"].seconds, 2)
    print(f"{'engine':<8}{'lines':>12}{'sessions':>10}{'seconds':>10}{'lines/s':>12}")
    for r in runs:
        extra = f"  (+{r.startup_seconds:.1f}s ray.init)" if r.engine == "ray" else ""
        print(f"{r.engine:<8}{r.lines:>12,}{r.sessions:>10,}{r.seconds:>10.1f}"
              f"{r.lines_per_s:>12,.0f}{extra}")
    if "overhead_ratio" in report:
        print(f"overhead ratio (ray seconds / local seconds): {report['overhead_ratio']}; "
              f"same sessions: {check['same_session_ids']}, "
              f"max session-score difference {check['max_score_diff']:.2e}")
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
