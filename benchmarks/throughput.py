"""Scoring throughput of ``tinylogbert score`` on inputs whose sessions are realistic, beside
Drain3's parse rate over the same file, with the scoring process's peak memory.

    python -m benchmarks.throughput --lines 1000000 --model checkpoint
    python -m benchmarks.throughput --inputs hdfs --lines 10000000 --memory-goal-mb 1536

Inputs (``--inputs``, each ``--lines`` long):

- ``hdfs``: the later HDFS blocks (``sample_data/HDFS_heldout.log.gz``, not the training sample)
  repeated, each copy's block ids renamed (``blk_123`` -> ``blk_07123``), so that every copy is new
  blocks that open and close within it;
- ``bgl``: ``BGL_2k`` repeated, scored in the windows of a model trained on BGL: a tiny model
  (one layer, hidden 64, 40 steps) trained here in seconds (``--bgl-model`` reuses one); its
  scores mean little, its cost per line is what is measured — and it is *smaller* than the HDFS
  checkpoint, so its rate flatters;
- ``unique``: the HDFS blocks of ``hdfs`` with every line dropped or doubled with probability
  0.1 each (a seeded draw per line), so that few sessions repeat a sequence;
- ``long-open``: the renamed copies of ``hdfs`` dealt line by line, so that every copy's blocks
  are open at once, across the whole file (as in the full HDFS_v1 capture); what it measures is
  the streaming path's peak RSS (``--inputs long-open --stream on --no-drain3``).

Per input, ``tinylogbert score`` runs end to end as a user runs it (a fresh process: start-up,
model load, file in -> LINES.csv out), its peak RSS read by ``wait4`` in a small launcher
process; its report says how many
distinct session sequences the model read, so the share the sequence cache saved is printed.
Drain3's bare ``TemplateMiner().add_log_message`` (default config, in-process) then mines the
same file's messages (parsed chunk by chunk, parsing not timed): the cost of *only parsing* with
the field's standard parser; the ratio is TinyLogBERT's lines/s over Drain3's.
"""
from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinylogbert.errors import LogInputError, TinyLogBERTError

from .report import package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
HDFS_SOURCE = ROOT / "sample_data" / "HDFS_heldout.log.gz"
BGL_SOURCE = ROOT / "sample_data" / "loghub_2k" / "BGL_2k.log.gz"
DEFAULT_SOURCE = HDFS_SOURCE  # kept for callers of the one-input version
DEFAULT_MODEL = ROOT / "checkpoint"
INPUTS = ("hdfs", "bgl", "unique", "long-open")
DEFAULT_INPUTS = INPUTS[:3]  # long-open is a memory case: asked for by name
BLOCK_ID = re.compile(rb"blk_(-?)(\d+)")
BGL_WINDOW = 20
PERTURB_SHARE = 0.1  # 'unique': share of lines dropped, and of lines doubled
REPORT_SEQUENCES = re.compile(r"in ([\d,]+) sessions.*; ([\d,]+) distinct session sequences")


@dataclass
class InputRun:
    """One input scored end to end, and Drain3 on the same file."""

    name: str
    lines: int
    megabytes: float
    score_seconds: float  # wall clock of the `tinylogbert score` process
    score_lines_per_second: float
    peak_rss_mb: float  # of that process (wait4's ru_maxrss)
    sessions: int
    model_sequences: int  # distinct session sequences the model read
    cache_saved: float  # 1 - model_sequences / sessions
    score_report: str  # what `tinylogbert score` printed about itself
    drain3_seconds: float | None = None
    drain3_lines_per_second: float | None = None
    drain3_clusters: int | None = None
    ratio: float | None = None  # score lines/s over Drain3 lines/s
    load_before: float = 0.0  # 1-minute load average when the scoring started
    note: str = ""

    def summary(self) -> str:
        drain = ""
        if self.drain3_lines_per_second:
            drain = (f"; Drain3 {self.drain3_lines_per_second:,.0f} lines/s "
                     f"({self.drain3_clusters} clusters), ratio {self.ratio:.2f}")
        return (f"{self.name:<7} {self.lines:>11,} lines ({self.megabytes:,.0f} MB): "
                f"{self.score_seconds:,.1f} s = {self.score_lines_per_second:,.0f} lines/s, "
                f"peak RSS {self.peak_rss_mb:,.0f} MB, {self.sessions:,} sessions, the model "
                f"read {self.model_sequences:,} sequences (cache saved "
                f"{self.cache_saved:.1%}){drain}; load {self.load_before:.1f}")


@dataclass
class ThroughputResult:
    model: str
    threads: int
    stream: str
    runs: list[InputRun] = field(default_factory=list)
    memory_goal_mb: float | None = None

    def summary(self) -> str:
        lines = [run.summary() for run in self.runs]
        if self.memory_goal_mb:
            worst = max(run.peak_rss_mb for run in self.runs)
            verdict = "met" if worst <= self.memory_goal_mb else "NOT met"
            lines.append(f"memory goal {self.memory_goal_mb:,.0f} MB: {verdict} "
                         f"(highest peak {worst:,.0f} MB)")
        return "\n".join(lines)


# ---- inputs -----------------------------------------------------------------------------------
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


def _written(handle) -> None:
    # On disk before any timing starts: the kernel writing back 141 MB of dirty pages during
    # the timed run measured 0.6-1.5 s slower end to end on this 2-core machine.
    handle.flush()
    os.fsync(handle.fileno())


def replicate(source_lines: list[bytes], n_lines: int, out: Path, rename: bool = True) -> int:
    """Write ``n_lines`` lines: copies of the source (block ids renamed per copy unless
    ``rename`` is False); returns the number of copies."""
    if n_lines < 1:
        raise LogInputError("--lines must be at least 1")
    copies = -(-n_lines // len(source_lines))
    width = len(str(copies - 1))
    text = b"\n".join(source_lines) + b"\n"
    written = 0
    with open(out, "wb") as handle:
        for copy in range(copies):
            renamed = text
            if rename:
                prefix = f"{copy:0{width}d}".encode()
                renamed = BLOCK_ID.sub(rb"blk_\g<1>" + prefix + rb"\g<2>", text)
            take = min(len(source_lines), n_lines - written)
            if take < len(source_lines):
                renamed = b"\n".join(renamed.split(b"\n")[:take]) + b"\n"
            handle.write(renamed)
            written += take
        _written(handle)
    return copies


def replicate_interleaved(source_lines: list[bytes], n_lines: int, out: Path,
                          slab: int = 4096) -> int:
    """``replicate``'s renamed copies dealt line by line (copy 0's line 1, copy 1's line 1, ...),
    so every copy's blocks are open at once and stay open for the whole file: the long-open
    case. Written a slab of source lines at a time; returns the number of copies."""
    if n_lines < 1:
        raise LogInputError("--lines must be at least 1")
    copies = -(-n_lines // len(source_lines))
    width = len(str(copies - 1))
    written = 0
    with open(out, "wb") as handle:
        for lo in range(0, len(source_lines), slab):
            text = b"\n".join(source_lines[lo:lo + slab])
            dealt = [renamed(text, f"{copy:0{width}d}").split(b"\n") for copy in range(copies)]
            rows = [copy_lines[j] for j in range(len(dealt[0])) for copy_lines in dealt]
            # the last copy is cut short in ``replicate``; here the last lines of the file are
            rows = rows[:max(0, n_lines - written)]
            if rows:
                handle.write(b"\n".join(rows) + b"\n")
            written += len(rows)
        _written(handle)
    return copies


def replicate_perturbed(source_lines: list[bytes], n_lines: int, out: Path,
                        share: float = PERTURB_SHARE, seed: int = 0) -> int:
    """``replicate`` with renamed blocks, each line dropped with probability ``share`` and
    doubled with probability ``share`` (one seeded draw per line), so sessions seldom repeat."""
    if n_lines < 1:
        raise LogInputError("--lines must be at least 1")
    rng = random.Random(seed)
    width = len(str(max(-(-n_lines // len(source_lines)) * 2, 1)))
    written = copy = 0
    with open(out, "wb") as handle:
        while written < n_lines:
            block = perturbed(source_lines, rng, share)[:n_lines - written]
            handle.write(renamed(b"\n".join(block) + b"\n", f"{copy:0{width}d}"))
            written += len(block)
            copy += 1
        _written(handle)
    return copy


def perturbed(lines: list[bytes], rng: random.Random, share: float = PERTURB_SHARE) -> list[bytes]:
    """Each line dropped with probability ``share``, doubled with probability ``share``."""
    out = []
    for line in lines:
        draw = rng.random()
        out.extend([line] * (0 if draw < share else 2 if draw < 2 * share else 1))
    return out


def renamed(text: bytes, prefix: str) -> bytes:
    """``text`` with every block id prefixed (``blk_123`` -> ``blk_<prefix>123``)."""
    return BLOCK_ID.sub(rb"blk_\g<1>" + prefix.encode() + rb"\g<2>", text)


def train_bgl_model(folder: Path, source: Path = BGL_SOURCE) -> Path:
    """A tiny BGL model in seconds (1 layer, hidden 64, 40 steps, windows of 20 lines), saved
    with its model.onnx like the shipped checkpoint, so both score with ONNX Runtime."""
    from tinylogbert.model.tinylogbert_model import ModelConfig
    from tinylogbert.model.training import TrainConfig
    from tinylogbert.scoring.detector import TinyLogBERTDetector
    from tinylogbert.sessions.grouping import SessionConfig

    detector = TinyLogBERTDetector(
        sessions=SessionConfig(by="window", window_size=BGL_WINDOW),
        model_config=ModelConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=128),
        training=TrainConfig(epochs=1, head_epochs=1, steps_per_epoch=40, batch_size=16),
        vocab_size=300,
    )
    return detector.fit(source).save(folder)


# ---- measuring ----------------------------------------------------------------------------------
# Runs the command and writes its peak RSS (KB) to argv[1]. A process started straight from a
# big one (this benchmark, after Drain3 or training) would report the parent's RSS as its own:
# the kernel keeps the high-water mark of the memory it had before exec. This launcher is small.
_LAUNCHER = (
    "import os, sys\n"
    "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS MB, the finished process) of ``command`` run in ``ROOT``."""
    with tempfile.TemporaryDirectory(prefix="tinylogbert-rss-") as tmp:
        peak_file = Path(tmp) / "peak"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak_file), *command],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        peak_kb = float(peak_file.read_text()) if peak_file.exists() else float("nan")
    return seconds, peak_kb / 1024, subprocess.CompletedProcess(
        command, done.returncode, done.stdout, done.stderr)


def time_score(log: Path, model: Path, out_csv: Path, threads: int,
               stream: str = "auto") -> tuple[float, float, str]:
    """(seconds, peak RSS MB, report) of ``tinylogbert score`` in a fresh interpreter."""
    command = [sys.executable, "-m", "tinylogbert.cli.main", "score", str(log), "--model", str(model),
               "--out", str(out_csv), "--stream", stream]
    if threads:
        command += ["--threads", str(threads)]
    seconds, peak_mb, done = run_measured(command)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise TinyLogBERTError(f"tinylogbert score failed (exit {done.returncode}): {last}")
    return seconds, peak_mb, done.stdout.strip()


def count_csv_rows(path: Path) -> int:
    """Data rows of a CSV without quoted newlines (LINES.csv: one per input line)."""
    count = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            count += block.count(b"\n")
    return count - 1  # the header


def time_drain3(log: Path) -> tuple[float, int, int]:
    """(seconds, lines, clusters) of Drain3 mining the messages of ``log``, parsed chunk by
    chunk (bounded memory; parsing not timed)."""
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig
    from tinylogbert.batch import streaming
    from tinylogbert.io.log_parser import detect_format

    miner = TemplateMiner(config=TemplateMinerConfig())  # Drain3's defaults, no drain3.ini
    add = miner.add_log_message
    survey = streaming.survey_log(Path(log), str(log))
    fmt = detect_format(survey.sample).format
    seconds = 0.0
    n = 0
    for lines, _, _ in streaming.line_chunks(Path(log), 262_144):
        parsed = streaming.parse_lines(lines, fmt, str(log))
        messages = [m or "" for m in parsed.table["message"].to_pylist()]
        started = time.perf_counter()
        for message in messages:
            add(message)
        seconds += time.perf_counter() - started
        n += len(messages)
    return seconds, n, len(miner.drain.clusters)


def _sequences(report: str) -> tuple[int, int]:
    found = REPORT_SEQUENCES.search(report)
    if not found:
        raise TinyLogBERTError(f"cannot read sessions and sequences from: {report!r}")
    return tuple(int(g.replace(",", "")) for g in found.groups())  # type: ignore[return-value]


def make_input(name: str, n_lines: int, work_dir: Path, hdfs: Path = HDFS_SOURCE) -> Path:
    log = work_dir / f"{name}_{n_lines}.log"
    if name == "hdfs":
        replicate(read_source_lines(hdfs), n_lines, log)
    elif name == "bgl":
        replicate(read_source_lines(BGL_SOURCE), n_lines, log, rename=False)
    elif name == "unique":
        replicate_perturbed(read_source_lines(hdfs), n_lines, log)
    elif name == "long-open":
        replicate_interleaved(read_source_lines(hdfs), n_lines, log)
    else:
        raise LogInputError(f"unknown input {name!r}; use {', '.join(INPUTS)}")
    return log


def run_input(name: str, n_lines: int, model: Path, threads: int, work_dir: Path,
              stream: str = "auto", drain3: bool = True, note: str = "",
              hdfs: Path = HDFS_SOURCE) -> InputRun:
    log = make_input(name, n_lines, work_dir, hdfs)
    out_csv = work_dir / f"{name}_lines.csv"
    print(f"{name}: scoring {n_lines:,} lines with {model} ...", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    seconds, peak_mb, report = time_score(log, model, out_csv, threads, stream)
    rows = count_csv_rows(out_csv)
    if rows != n_lines:
        raise TinyLogBERTError(f"LINES.csv has {rows:,} rows for {n_lines:,} input lines")
    out_csv.unlink()
    sessions, sequences = _sequences(report)
    run = InputRun(
        name=name, lines=n_lines, megabytes=log.stat().st_size / 1e6, score_seconds=seconds,
        score_lines_per_second=n_lines / seconds, peak_rss_mb=peak_mb, sessions=sessions,
        model_sequences=sequences, cache_saved=1 - sequences / max(sessions, 1),
        score_report=report, load_before=load, note=note,
    )
    if drain3:
        print(f"{name}: Drain3 on the same lines ...", file=sys.stderr, flush=True)
        d_seconds, d_lines, clusters = time_drain3(log)
        run.drain3_seconds, run.drain3_clusters = d_seconds, clusters
        run.drain3_lines_per_second = d_lines / d_seconds
        run.ratio = run.score_lines_per_second / run.drain3_lines_per_second
    log.unlink()
    return run


def run(inputs: list[str], n_lines: int, model: Path, threads: int, work_dir: Path,
        bgl_model: Path | None = None, stream: str = "auto", drain3: bool = True,
        memory_goal_mb: float | None = None, source: Path = HDFS_SOURCE) -> ThroughputResult:
    from tinylogbert.model.checkpoint import check_folder

    check_folder(model)  # fail before writing a million lines, not after
    result = ThroughputResult(model=str(model), threads=threads, stream=stream,
                              memory_goal_mb=memory_goal_mb)
    for name in inputs:
        use, note = model, ""
        if name == "bgl":
            if bgl_model is None:
                print("bgl: training a tiny BGL model ...", file=sys.stderr, flush=True)
                bgl_model = train_bgl_model(work_dir / "bgl_model")
                note = "tiny BGL model trained here (1 layer, hidden 64, 40 steps)"
            else:
                check_folder(bgl_model)
                note = f"BGL model {bgl_model}"
            use = bgl_model
        result.runs.append(run_input(name, n_lines, use, threads, work_dir, stream, drain3,
                                     note, source))
        print(result.runs[-1].summary(), file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per input")
    parser.add_argument("--inputs", default=",".join(DEFAULT_INPUTS),
                        help=f"comma-separated, of {', '.join(INPUTS)}")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help="checkpoint folder (HDFS inputs)")
    parser.add_argument("--source", type=Path, default=HDFS_SOURCE,
                        help="HDFS log replicated for the hdfs and unique inputs")
    parser.add_argument("--bgl-model", type=Path, help="a BGL checkpoint (default: train a "
                                                       "tiny one in the work folder)")
    parser.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                        help="passed to tinylogbert score")
    parser.add_argument("--threads", type=int, default=0, help="scoring threads (0: default)")
    parser.add_argument("--no-drain3", action="store_true", help="skip Drain3 (memory checks)")
    parser.add_argument("--memory-goal-mb", type=float,
                        help="say whether every scoring process peaked at or below this")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the inputs' folder here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "throughput.json", help="results JSON")
    args = parser.parse_args(argv)
    inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    try:
        unknown = [name for name in inputs if name not in INPUTS]
        if unknown or not inputs:
            raise LogInputError(f"--inputs: unknown {', '.join(unknown) or '(none)'}; use "
                                f"{', '.join(INPUTS)}")
        options = {"bgl_model": args.bgl_model, "stream": args.stream,
                   "drain3": not args.no_drain3, "memory_goal_mb": args.memory_goal_mb,
                   "source": args.source}
        if args.work_dir:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            result = run(inputs, args.lines, args.model, args.threads, args.work_dir, **options)
        else:
            with tempfile.TemporaryDirectory(prefix="tinylogbert-throughput-") as tmp:
                result = run(inputs, args.lines, args.model, args.threads, Path(tmp), **options)
    except (TinyLogBERTError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    write_json(args.out, {
        "benchmark": "throughput",
        "command": "python -m benchmarks.throughput " + " ".join(argv or sys.argv[1:]),
        "result": asdict(result),
        "versions": package_versions(("tinylogbert", "onnxruntime", "torch", "pyarrow",
                                      "drain3")),
        "cpus": os.cpu_count(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
