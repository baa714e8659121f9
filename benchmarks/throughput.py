"""Scoring throughput of ``tinylogbert score`` on a million HDFS lines, beside Drain3's parse rate.

    python -m benchmarks.throughput --lines 1000000 --model checkpoint

The sample is replicated until it has ``--lines`` lines; each copy's block ids get a fixed-width
copy prefix (``blk_123`` -> ``blk_07123``), so sessions stay distinct and every copy is scored as
new blocks, not folded into old ones. ``tinylogbert score`` is timed end to end as a user runs it
(a subprocess: start-up, model load, file in -> LINES.csv out), and Drain3's bare
``TemplateMiner().add_log_message`` (default config, in-process, no I/O) over the same lines'
messages: the cost of *only parsing* them with the field's standard parser, for scale.
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tinylogbert.errors import LogInputError, TinyLogBERTError

from .report import package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT / "sample_data" / "HDFS_sample.log.gz"
DEFAULT_MODEL = ROOT / "checkpoint"
BLOCK_ID = re.compile(rb"blk_(-?)(\d+)")


@dataclass
class ThroughputResult:
    lines: int
    megabytes: float
    copies: int
    model: str
    threads: int
    score_seconds: float  # wall clock of the `tinylogbert score` subprocess
    score_lines_per_second: float
    score_report: str  # what `tinylogbert score` printed about itself
    drain3_seconds: float
    drain3_lines_per_second: float
    drain3_clusters: int

    def summary(self) -> str:
        return (
            f"{self.lines:,} HDFS lines ({self.megabytes:,.0f} MB, {self.copies} renamed copies)\n"
            f"tinylogbert score (end to end, {self.threads or 'default'} threads): "
            f"{self.score_seconds:,.1f} s = {self.score_lines_per_second:,.0f} lines/s\n"
            f"Drain3 add_log_message (bare, default config): {self.drain3_seconds:,.1f} s = "
            f"{self.drain3_lines_per_second:,.0f} lines/s ({self.drain3_clusters} clusters)"
        )


def read_source_lines(source: Path) -> list[bytes]:
    if not source.exists():
        raise LogInputError(f"{source}: no such file")
    data = source.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = data.splitlines()
    if not lines:
        raise LogInputError(f"{source}: the log is empty")
    return lines


def replicate(source_lines: list[bytes], n_lines: int, out: Path) -> int:
    """Write ``n_lines`` lines: copies of the source with per-copy block ids; returns copies."""
    if n_lines < 1:
        raise LogInputError("--lines must be at least 1")
    copies = -(-n_lines // len(source_lines))
    width = len(str(copies - 1))
    text = b"\n".join(source_lines) + b"\n"
    written = 0
    with open(out, "wb") as handle:
        for copy in range(copies):
            prefix = f"{copy:0{width}d}".encode()
            renamed = BLOCK_ID.sub(rb"blk_\g<1>" + prefix + rb"\g<2>", text)
            take = min(len(source_lines), n_lines - written)
            if take < len(source_lines):
                renamed = b"\n".join(renamed.split(b"\n")[:take]) + b"\n"
            handle.write(renamed)
            written += take
        # On disk before any timing starts: the kernel writing back 141 MB of dirty pages
        # during the timed run measured 0.6-1.5 s slower end to end on this 2-core machine.
        handle.flush()
        os.fsync(handle.fileno())
    return copies


def time_score(log: Path, model: Path, out_csv: Path, threads: int) -> tuple[float, str]:
    """Wall-clock seconds of ``tinylogbert score`` (the CLI's code, in a fresh interpreter)."""
    command = [sys.executable, "-m", "tinylogbert.cli.main", "score", str(log), "--model", str(model),
               "--out", str(out_csv)]
    if threads:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TinyLogBERTError(f"tinylogbert score failed (exit {done.returncode}): {last}")
    return seconds, done.stdout.strip()


def count_csv_rows(path: Path) -> int:
    """Data rows of a CSV without quoted newlines (LINES.csv: one per input line)."""
    count = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            count += block.count(b"\n")
    return count - 1  # the header


def time_drain3(log: Path) -> tuple[float, int, int]:
    """(seconds, lines, clusters) of Drain3 mining the messages of ``log``; parsing not timed."""
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig
    from tinylogbert.io.log_parser import parse_log
    from tinylogbert.io.log_reader import read_log_file

    messages = [m or "" for m in parse_log(read_log_file(log)).table["message"].to_pylist()]
    miner = TemplateMiner(config=TemplateMinerConfig())  # Drain3's defaults, no drain3.ini
    add = miner.add_log_message
    started = time.perf_counter()
    for message in messages:
        add(message)
    return time.perf_counter() - started, len(messages), len(miner.drain.clusters)


def run(source: Path, n_lines: int, model: Path, threads: int, work_dir: Path) -> ThroughputResult:
    from tinylogbert.model.checkpoint import check_folder

    check_folder(model)  # fail before writing a million lines, not after
    log = work_dir / f"hdfs_{n_lines}.log"
    copies = replicate(read_source_lines(source), n_lines, log)
    out_csv = work_dir / "lines.csv"
    print(f"scoring {n_lines:,} lines with {model} ...", file=sys.stderr, flush=True)
    score_seconds, report = time_score(log, model, out_csv, threads)
    rows = count_csv_rows(out_csv)
    if rows != n_lines:
        raise TinyLogBERTError(f"LINES.csv has {rows:,} rows for {n_lines:,} input lines")
    print("Drain3 on the same lines ...", file=sys.stderr, flush=True)
    drain_seconds, drain_lines, clusters = time_drain3(log)
    return ThroughputResult(
        lines=n_lines, megabytes=log.stat().st_size / 1e6, copies=copies, model=str(model),
        threads=threads, score_seconds=score_seconds,
        score_lines_per_second=n_lines / score_seconds, score_report=report,
        drain3_seconds=drain_seconds, drain3_lines_per_second=drain_lines / drain_seconds,
        drain3_clusters=clusters,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint folder")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="HDFS log to replicate")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the replicated log and LINES.csv here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "throughput.json", help="results JSON")
    args = parser.parse_args(argv)
    try:
        if args.work_dir:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            result = run(args.source, args.lines, args.model, args.threads, args.work_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="tinylogbert-throughput-") as tmp:
                result = run(args.source, args.lines, args.model, args.threads, Path(tmp))
    except TinyLogBERTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    write_json(args.out, {
        "benchmark": "throughput",
        "command": "python -m benchmarks.throughput " + " ".join(argv or sys.argv[1:]),
        "result": asdict(result),
        "versions": package_versions(("tinylogbert", "torch", "pyarrow", "drain3")),
        "cpus": os.cpu_count(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
