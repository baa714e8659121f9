"""The HDFS benchmark: one command, every method, one table (``python -m benchmarks.hdfs``).

Sessions (blocks) are split by first appearance (default 50/50); every method trains on the first
part's lines *without labels* and scores the later blocks; each is judged on the same labelled
test sessions by the same code. Writes ``benchmarks/results/<name>.json`` (numbers, config,
versions, timings) and ``<name>.md`` (the README table), and prints the table.

    python -m benchmarks.hdfs                       # sample_data/, full-size TinyLogBERT
    python -m benchmarks.hdfs --quick               # tiny model: a smoke test of the harness
    python -m benchmarks.hdfs --methods baselines,loglead
    python -m benchmarks.hdfs --log my.log --labels my_labels.csv
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TextIO

from tinylogbert.cli.main import run_reporting_errors
from tinylogbert.io.atomic_output import write_text

from .report import MethodResult, Skipped, markdown_report, package_versions, write_json

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
METHODS = ("tinylogbert", "checkpoint", "baselines", "loglead")
VERSIONED_PACKAGES = ("tinylogbert", "numpy", "scikit-learn", "torch", "transformers", "pyarrow",
                      "drain3", "loglead", "polars")


@dataclass(frozen=True)
class BenchmarkConfig:
    log: Path = SAMPLE / "HDFS_sample.log.gz"
    labels: Path = SAMPLE / "HDFS_sample_labels.csv"
    train_fraction: float = 0.5
    log_format: str = "auto"
    session_id: str | None = None
    methods: tuple[str, ...] = METHODS
    templates: tuple[str, ...] = ("words", "drain3")
    quick: bool = False
    epochs: int = 5
    head_epochs: int | None = None  # None: the detector's own default (TrainConfig)
    steps_per_epoch: int = 0
    batch_size: int = 32
    clean_epochs: int = 0
    robust_prior: bool = True
    seed: int = 0
    threads: int = 0
    contamination: float | str = "auto"
    checkpoint: Path = ROOT / "checkpoint"
    heldout_log: Path = SAMPLE / "HDFS_heldout.log.gz"
    heldout_labels: Path = SAMPLE / "HDFS_heldout_labels.csv"
    out_dir: Path = ROOT / "benchmarks" / "results"
    name: str = "hdfs"

    def to_dict(self) -> dict:
        return {k: _shown(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def _shown(path: Path) -> str:
    """Paths inside the repository are written relative to it, so results files are portable."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _csv_choice(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        unknown = [t for t in items if t not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(
                f"choose from {','.join(allowed)} (comma-separated), got {text!r}"
            )
        return items
    return parse


def _contamination(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'auto' or a share in (0, 0.5), got {text!r}") from None
    if not 0.0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"contamination must be in (0, 0.5), got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``python -m benchmarks.hdfs`` and ``tinylogbert bench``."""
    d = BenchmarkConfig()
    data = parser.add_argument_group("data")
    data.add_argument("--log", type=Path, default=d.log, help="labelled log (default: sample)")
    data.add_argument("--labels", type=Path, default=d.labels,
                      help="session labels CSV (BlockId,Label)")
    data.add_argument("--train-fraction", type=float, default=d.train_fraction,
                      help="share of sessions, by first appearance, used for training")
    data.add_argument("--format", dest="log_format", default=d.log_format,
                      help="log format: 'auto', a name, or a '<Date> <Time> <Content>' template")
    data.add_argument("--session-id", metavar="REGEX",
                      help="regex of session ids (default: the format's, e.g. HDFS block ids)")
    run = parser.add_argument_group("what to run")
    run.add_argument("--methods", type=_csv_choice(METHODS), default=d.methods,
                     help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    run.add_argument("--templates", type=_csv_choice(("words", "drain3")), default=d.templates,
                     help="template sources for the baselines: words (core's normalised words), "
                          "drain3 (default: both)")
    run.add_argument("--seed", type=int, default=d.seed)
    run.add_argument("--threads", type=int, default=d.threads,
                     help="torch threads for TinyLogBERT (0: torch's default)")
    run.add_argument("--contamination", type=_contamination, default=d.contamination,
                     help="label-free threshold rule for every method: 'auto' (median + 4 robust "
                          "SD of training scores) or a share, e.g. 0.03 (training quantile)")
    model = parser.add_argument_group("TinyLogBERT")
    model.add_argument("--quick", action="store_true",
                       help="tiny model, a few steps: tests the harness, not the model")
    model.add_argument("--epochs", type=int, default=d.epochs)
    model.add_argument("--head-epochs", type=int, default=d.head_epochs,
                       help="anomaly-head epochs (default: the detector's own)")
    model.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    model.add_argument("--batch-size", type=int, default=d.batch_size)
    model.add_argument("--clean-epochs", type=int, default=d.clean_epochs,
                       help="extra epochs on the training sessions the model does not flag "
                            "(0: off)")
    model.add_argument("--no-robust-prior", dest="robust_prior", action="store_false",
                       help="count line frequencies over all training sessions, flagged or not")
    model.add_argument("--checkpoint", type=Path, default=d.checkpoint,
                       help="shipped model to judge on the held-out blocks (default: checkpoint/)")
    model.add_argument("--heldout-log", type=Path, default=d.heldout_log)
    model.add_argument("--heldout-labels", type=Path, default=d.heldout_labels)
    out = parser.add_argument_group("output")
    out.add_argument("--out-dir", type=Path, default=d.out_dir)
    out.add_argument("--name", default=d.name, help="results file stem: NAME.json, NAME.md")


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    known = BenchmarkConfig.__dataclass_fields__
    return replace(BenchmarkConfig(), **{k: v for k, v in vars(args).items() if k in known})


def run_benchmark(config: BenchmarkConfig, command: str, progress: TextIO | None = None) -> dict:
    """Run every selected method; write ``NAME.json`` and ``NAME.md``; return the JSON payload."""
    from .baselines import run_baselines, threshold_rule_text
    from .data import load_benchmark_data
    from .loglead_detectors import run_loglead
    from .tinylogbert_rows import TinyLogBERTSettings, run_checkpoint, run_tinylogbert

    def say(message: str) -> None:
        print(message, file=progress or sys.stderr, flush=True)

    started = time.perf_counter()
    data = load_benchmark_data(config.log, config.labels, config.train_fraction,
                               config.log_format, config.session_id)
    summary = {**data.summary(), "log": _shown(config.log), "labels": _shown(config.labels)}
    say(f"data: {summary['split']}; {summary['test_anomalies']} anomalous test sessions")
    results: list[MethodResult] = []
    skipped: list[Skipped] = []
    # The TinyLogBERT settings are the config's fields of the same names.
    settings = TinyLogBERTSettings(
        **{f.name: getattr(config, f.name) for f in fields(TinyLogBERTSettings)}
    )
    if "tinylogbert" in config.methods:
        say(f"TinyLogBERT: training on {len(data.train_lines):,} lines ({settings.describe()})")
        results += run_tinylogbert(data, settings)
    if "checkpoint" in config.methods:
        say(f"shipped checkpoint: {config.checkpoint} on {config.heldout_log}")
        rows, missed = run_checkpoint(config.checkpoint, config.heldout_log,
                                      config.heldout_labels, config.threads)
        results += rows
        skipped += missed
    if "baselines" in config.methods:
        say(f"baselines on templates: {', '.join(config.templates)}")
        results += run_baselines(data, config.templates, config.seed, config.contamination)
    if "loglead" in config.methods:
        say("LogLead detectors")
        rows, missed = run_loglead(data, config.seed, config.contamination)
        results += rows
        skipped += missed
    for s in skipped:
        say(f"skipped {s.method}: {s.reason}")

    notes = [
        (f"Label-free threshold of the baselines and LogLead: "
         f"{threshold_rule_text(config.contamination)}, on their own training scores. "
         "TinyLogBERT uses its own (the same rule, on its training sessions)."),
        ("Train s includes parsing and template mining of the train lines; score s covers the "
         "test lines end to end (parsing, templates or tokenising, sessions, scoring); "
         "lines/s = test lines / score s, on this machine."),
        ("Reads: `words` = core's normalised words as templates; `drain3` = Drain3 (default "
         "config) mined on train lines, matched on test lines; `drain` = LogLead's own Drain "
         "parsing; `lines` = the raw lines."),
    ]
    own = [r for r in results if "f1_own_rule" in r.extra]
    if own:
        notes.append("LogLead with its own default decision rules (`pred_ano`), F1: " + "; ".join(
            f"{r.method.removeprefix('LogLead ')} ({r.features}) {r.extra['f1_own_rule']:.3f}"
            for r in own))
    if config.quick:
        notes.append("QUICK RUN: TinyLogBERT is a tiny smoke-test model here; do not quote.")
    payload = {
        "benchmark": config.name,
        "command": command,
        "config": config.to_dict(),
        "versions": package_versions(VERSIONED_PACKAGES),
        "data": summary,
        "results": [r.to_dict() for r in results],
        "skipped": [asdict(s) for s in skipped],
        "notes": notes,
        "seconds_total": round(time.perf_counter() - started, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    markdown = markdown_report(f"Benchmark on {config.log.name}", command, summary, results,
                               skipped, notes)
    write_json(config.out_dir / f"{config.name}.json", payload)
    write_text(config.out_dir / f"{config.name}.md", markdown)  # atomic, as the JSON
    print(markdown)
    say(f"wrote {config.out_dir / (config.name + '.json')} and .md "
        f"in {payload['seconds_total']:.0f}s")
    return payload


def command_line(prog: str, config: BenchmarkConfig) -> str:
    """The command that reproduces ``config``: ``prog`` plus every option not at its default."""
    default = BenchmarkConfig()
    parts = [prog]
    for name in BenchmarkConfig.__dataclass_fields__:
        value = getattr(config, name)
        if value == getattr(default, name):
            continue
        flag = "--format" if name == "log_format" else "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
            continue
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        parts += [flag, shlex.quote(text)]
    return " ".join(parts)


def run_from_args(args: argparse.Namespace, prog: str) -> int:
    config = config_from_args(args)
    run_benchmark(config, command_line(prog, config))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hdfs",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors(run_from_args, args, "python -m benchmarks.hdfs")


if __name__ == "__main__":
    sys.exit(main())
