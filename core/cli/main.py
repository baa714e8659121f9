"""``tinylogbert`` command line: a thin layer over ``core``; errors are one line, never a traceback.

Exit codes: 0 success, 2 a problem with the input or settings (the message says which), 1 a bug
(set ``TINYLOGBERT_DEBUG=1`` to see its traceback).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from tinylogbert import __version__
from tinylogbert.cli.common import (
    PhaseBar,
    _in_background,
    _load_detector,
    report_scored,
    warn,
)
from tinylogbert.cli.ray_options import add_ray_arguments
from tinylogbert.errors import OutputError, TinyLogBERTError
from tinylogbert.io.atomic_output import as_write_error, atomic_files, write_errors
from tinylogbert.model.checkpoint import DEFAULT_MODEL_DIR
from tinylogbert.reports.display import format_threshold

# ``tinylogbert bench`` writes here (relative to the working folder, git-ignored), never over the
# tracked results in benchmarks/results; --out-dir chooses another folder.
DEFAULT_BENCH_DIR = Path("tinylogbert-bench")


def check_output_file(path: str, flag: str) -> None:
    """Fail before the work, not after minutes of it, when ``path`` cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; give a file name, e.g. {target / 'out.csv'}")
    parent = target.parent
    if not parent.exists():
        raise OutputError(f"{flag} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise OutputError(f"{flag} {path}: not writable")


def check_output_folder(path: str, flag: str) -> None:
    """A checkpoint folder to write: new, empty, or an earlier checkpoint (replaced), never a file
    or a folder of other things."""
    from tinylogbert.model.checkpoint import DETECTOR_FILE

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{flag} {path}: is a file; give a folder for the checkpoint")
    if target.is_dir() and any(target.iterdir()) and not (target / DETECTOR_FILE).exists():
        raise OutputError(f"{flag} {path}: the folder holds other files; give a new or empty "
                          "folder (or an earlier checkpoint, which is replaced)")
    existing = next(p for p in [target, *target.parents] if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise OutputError(f"{flag} {path}: {existing} is not writable")


def _add_format_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto",
                   help="'auto' (detect), a format name (see 'tinylogbert formats'), a template "
                        "like '<Date> <Time> <Level>: <Content>', a regex with named groups, or "
                        "'json' / 'json:message=KEY,time=KEY'")
    p.add_argument("--sessions", default="auto", choices=["auto", "id", "window", "time"],
                   help="how lines become sessions (auto: an id in the line if the format has one, "
                        "else windows of lines)")
    p.add_argument("--session-id", metavar="REGEX",
                   help="session ids: a regex (its match, its group 'id' or its only group), "
                        "or a parsed field such as '<Node>'")
    p.add_argument("--window", type=int, default=0, metavar="LINES", help="lines per window")
    p.add_argument("--step", type=int, default=0, metavar="LINES",
                   help="lines between window starts (default: the window size)")
    p.add_argument("--time-window", type=float, default=0.0, metavar="SECONDS",
                   help="seconds per time window (0: the format's default)")
    p.add_argument("--time-step", type=float, default=0.0, metavar="SECONDS")


def _session_config(args: argparse.Namespace):
    from tinylogbert.sessions.grouping import SessionConfig

    return SessionConfig(
        by=args.sessions, id_pattern=args.session_id, window_size=args.window,
        window_step=args.step, time_window=args.time_window, time_step=args.time_step,
    )


def _session_options_given(args: argparse.Namespace) -> bool:
    return (args.sessions != "auto" or args.session_id or args.window or args.step
            or args.time_window or args.time_step)


def cmd_train(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "--out")
    if args.init_from:
        from tinylogbert.model.checkpoint import check_init_from

        args.init_from = str(check_init_from(args.init_from))
        # Belt and braces: whatever the folder holds, nothing is fetched from the hub.
        os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from tinylogbert.model.tinylogbert_model import ModelConfig
    from tinylogbert.model.training import TrainConfig
    from tinylogbert.scoring.detector import TinyLogBERTDetector
    from tinylogbert.scoring.fit_check import training_warnings

    model = ModelConfig(
        hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
        intermediate_size=args.intermediate or 4 * args.hidden,
    )
    training = TrainConfig(
        epochs=args.epochs, head_epochs=args.head_epochs, batch_size=args.batch_size,
        learning_rate=args.lr, seed=args.seed, steps_per_epoch=args.steps_per_epoch,
        clean_epochs=args.clean_epochs,
    )
    contamination = args.contamination if args.contamination == "auto" else float(args.contamination)
    if not math.isfinite(args.head_weight) or args.head_weight < 0:
        raise TinyLogBERTError(f"--head-weight {args.head_weight}: give a number >= 0")
    detector = TinyLogBERTDetector(
        log_format=args.format, sessions=_session_config(args), model_config=model,
        training=training,
        vocab_size=args.vocab_size, contamination=contamination, init_from=args.init_from,
        masks=tuple(args.mask or ()), num_threads=args.threads, head_weight=args.head_weight,
    )
    bar = PhaseBar(args.quiet)
    started = time.perf_counter()
    try:
        detector.fit(args.logfile, on_progress=bar)
    finally:
        bar.close()
    out = detector.save(args.out)
    summary = detector.training_summary_
    for message in training_warnings(summary):
        warn(message)
    print(
        f"trained on {summary['lines']:,} lines, {summary['sessions']:,} sessions "
        f"({summary['distinct_sessions']:,} distinct) in {time.perf_counter() - started:.1f}s; "
        f"format {summary['format']}; threshold {format_threshold(detector.threshold_)}; "
        f"saved to {out}"
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from tinylogbert import pipeline
    from tinylogbert.cli.ray_options import check_engine_options, describe_summary, score_with_ray
    from tinylogbert.model.checkpoint import trained_format
    from tinylogbert.sessions.grouping import SessionConfig, build_sessions

    check_engine_options(args, args.logfile)
    if args.engine != "ray":  # Ray's --out is a folder, checked by the Ray engine
        check_output_file(args.out, "--out")
    if args.sessions_out:
        check_output_file(args.sessions_out, "--sessions-out")
    sessions = _session_config(args) if _session_options_given(args) else None
    if args.engine == "ray":
        summary = score_with_ray(
            args.logfile, args.model, args.out, address=args.address, csv=args.csv,
            log_format=args.format, sessions=sessions, threshold=args.threshold,
            threads=args.threads, scorers=args.scorers, lines_per_call=args.lines_per_call,
        )
        print(describe_summary(summary))
        for message in summary["warnings"]:
            warn(message)
        return 0
    from tinylogbert.cli.streaming import score_streaming, wants_streaming

    if wants_streaming(args, sessions):
        return score_streaming(args, sessions)
    started = time.perf_counter()
    # Importing torch and transformers and loading the model take seconds: do it in the
    # background while the log is read and parsed (Arrow kernels, which release the GIL).
    loading = _in_background(_load_detector, args.model, args.runtime, args.threads)
    lines = pipeline.read(args.logfile[0])
    parsed = pipeline.parse(lines, args.format, trained_format(args.model))
    # Sessions too, with the options given or the default every checkpoint trained without
    # session options uses; a checkpoint with other settings builds its own (cached per config).
    build_sessions(parsed, sessions or SessionConfig())
    waiting = time.perf_counter()
    detector = loading()
    waited = time.perf_counter() - waiting
    scored = pipeline.score_parsed(
        detector, parsed, lines,
        pipeline.ScoreOptions(args.format, sessions, args.threshold, embeddings=False),
    )
    for message in scored.warnings:
        warn(message)
    result = scored.result
    # Both files under temporary names, renamed into place once both are complete.
    with atomic_files(args.out, args.sessions_out) as (lines_tmp, sessions_tmp):
        with write_errors(args.out):
            result.write_lines_csv(lines_tmp)
        if sessions_tmp is not None:
            with write_errors(args.sessions_out):
                result.write_sessions_csv(sessions_tmp)
    # A freshly loaded detector's sequence cache is empty: its misses are what the model read.
    report_scored(result.summary(), time.perf_counter() - started, waited,
                  detector._cache().misses)
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from tinylogbert.model.onnx_runtime import export_checkpoint

    started = time.perf_counter()
    path = export_checkpoint(args.model)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f}s; checkpoint manifest updated")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd
    from tinylogbert.errors import LabelError
    from tinylogbert.reports.evaluate_threshold import evaluation_threshold
    from tinylogbert.scoring.evaluate import (
        align_labels,
        coverage_warnings,
        evaluate_scores,
        read_labels,
    )

    path = Path(args.scores)
    if not path.exists():
        raise LabelError(f"{path}: no such scores file")
    try:
        scores = pd.read_csv(path, dtype={"session_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path}: not a scores CSV ({exc})") from None
    id_col = "line_no" if args.level == "line" else "session_id"
    if args.level == "session" and "line_no" in scores.columns:
        raise LabelError(f"{path}: this is a LINES CSV (it has a line_no column); give the "
                         "SESSIONS CSV (score --sessions-out) or use --level line")
    for col in (id_col, "score"):
        if col not in scores.columns:
            raise LabelError(f"{path}: missing column {col!r} (is it the "
                             f"{'LINES' if args.level == 'line' else 'SESSIONS'} CSV?)")
    if args.labels:
        what = "lines" if args.level == "line" else "sessions"
        labels = align_labels(scores[id_col].astype(str).to_numpy(),
                              read_labels(args.labels, level=args.level), what=what)
        for message in coverage_warnings(labels, what):
            warn(message)
    elif "label" in scores.columns:
        labels = scores["label"].fillna(-1).to_numpy().astype(int)
    else:
        raise LabelError("give --labels LABELS.csv (or score a log with inline labels)")
    values = scores["score"].to_numpy(dtype=float)
    threshold = evaluation_threshold(scores, args.level, args.model, args.threshold, str(path))
    ev = evaluate_scores(values, labels, threshold, level=args.level)
    if args.json:
        print(json.dumps(ev.to_dict()))
    else:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        print(f"{args.level}s: {ev.n:,} labelled ({ev.n_anomalies:,} anomalous), "
              f"{ev.n_flagged:,} flagged at threshold {format_threshold(ev.threshold)}")
        print(f"ROC-AUC {fmt(ev.roc_auc)}  PR-AUC {fmt(ev.pr_auc)}  precision {ev.precision:.4f}  "
              f"recall {ev.recall:.4f}  F1 {ev.f1:.4f}")
        print(f"best F1 {fmt(ev.best_f1)} (threshold chosen on these labels: an upper bound)")
    return 0


def build_parser(with_bench: bool = True) -> argparse.ArgumentParser:
    """The CLI's parser; ``with_bench=False`` leaves the benchmarks unimported (``bench``
    then only names itself in ``--help``): they are a tool of the repository, not the library."""
    parser = argparse.ArgumentParser(
        prog="tinylogbert", description="Unsupervised log anomaly detection with a tiny BERT."
    )
    parser.add_argument("--version", action="version", version=f"tinylogbert {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model on an unlabeled log")
    p.add_argument("logfile")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    _add_format_options(p)
    p.add_argument("--epochs", type=int, default=5, help="masked-line-modelling epochs")
    p.add_argument("--clean-epochs", type=int, default=0,
                   help="extra epochs on the training sessions the model does not flag (0: off)")
    p.add_argument("--head-epochs", type=int, default=2, help="anomaly-head epochs")
    p.add_argument("--head-weight", type=float, default=0.0, metavar="W",
                   help="the anomaly head's share of the session score (default 0: README's "
                        "ablation says where it helps and where it does not)")
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the sessions")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=0, help="0: 4 x hidden")
    p.add_argument("--contamination", default="auto",
                   help="expected share of anomalies, or 'auto' (robust deviation rule)")
    p.add_argument("--init-from", metavar="HF_FOLDER",
                   help="start the encoder from a local Hugging Face BERT folder holding "
                        "config.json and model.safetensors (offline; no pickled weights)")
    p.add_argument("--mask", action="append", metavar="PATTERN[=>REPLACEMENT]",
                   help="a masking rule of your own over the normalised words (RE2), e.g. "
                        "'user \\w+=>user'; repeatable, saved with the model")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score a log with a trained model")
    p.add_argument("logfile", nargs="+",
                   help="the log (--engine ray: any number of files, folders or globs)")
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="checkpoint folder")
    p.add_argument("--out", required=True,
                   help="LINES.csv: one row per input line (--engine ray: a folder for "
                        "Parquet lines/ and sessions/, CSV with --csv, and summary.json)")
    p.add_argument("--sessions-out", help="SESSIONS.csv: one row per session")
    p.add_argument("--threshold", type=float, help="override the model's session threshold")
    p.add_argument("--threads", type=int, default=0,
                   help="torch or ONNX Runtime threads (--engine ray: per scoring actor)")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto",
                   help="onnx: the checkpoint's model.onnx in ONNX Runtime, without importing "
                        "torch; auto (default): onnx when onnxruntime is installed and the "
                        "checkpoint has model.onnx, else torch")
    p.add_argument("--stream", choices=["auto", "on", "off"], default="auto",
                   help="score in bounded memory, writing sessions as they close (the same "
                        "files, byte for byte); auto (default): for logs over 64 MiB "
                        "(gzip: 6.4 MiB) or when --chunk-lines is given; not for time windows")
    p.add_argument("--chunk-lines", type=int, default=0, metavar="LINES",
                   help="lines read, parsed and scored per step when streaming (default "
                        "32,768); giving it streams")
    _add_format_options(p)
    add_ray_arguments(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("export-onnx",
                       help="write a checkpoint's model.onnx (scoring without torch) and its "
                            "manifest entry; for checkpoints saved without it")
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="checkpoint folder")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("evaluate", help="ROC-AUC, PR-AUC and F1 of scores against labels")
    p.add_argument("--scores", required=True, help="SESSIONS.csv (or LINES.csv with --level line)")
    p.add_argument("--labels", help="label CSV: BlockId,Label / session_id,label / line_no,label")
    p.add_argument("--level", choices=["session", "line"], default="session")
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR),
                   help="the model that scored the CSV: its threshold (session, or line with "
                        "--level line) is the one evaluated")
    p.add_argument("--threshold", type=float,
                   help="evaluate at this threshold instead (e.g. the one given to score)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    for register in _extra_commands(with_bench):
        register(sub)
    if "bench" in sub.choices:  # its results go to a folder of their own, not the tracked ones
        bench = sub.choices["bench"]
        bench.set_defaults(out_dir=DEFAULT_BENCH_DIR)
        bench.description = (bench.description or "").replace(
            "benchmarks/results/", f"{DEFAULT_BENCH_DIR}/ (--out-dir) ")
        for action in bench._actions:
            if action.dest == "out_dir":
                action.help = f"folder for NAME.json and NAME.md (default: ./{DEFAULT_BENCH_DIR}/)"
    return parser


# Sub-commands that live beside the module they drive; each module has ``register(subparsers)``.
EXTRA_COMMAND_MODULES: tuple[str, ...] = ("tinylogbert.cli.formats", "tinylogbert.cli.parse",
                                          "tinylogbert.cli.serve", "tinylogbert.cli.watch",
                                          "tinylogbert.cli.feedback", "tinylogbert.cli.adapt",
                                          "tinylogbert.cli.review")
BENCH_MODULE = "benchmarks.bench_cli"
# The benchmarks are not installed with the library: ``bench`` finds them in the source tree.
SOURCE_TREE = Path(__file__).resolve().parents[2]


def _extra_commands(with_bench: bool = True):
    import importlib

    out = [importlib.import_module(name).register for name in EXTRA_COMMAND_MODULES]
    out.append(_bench_register() if with_bench else _bench_placeholder)
    return out


def _bench_register():
    """``benchmarks.bench_cli.register``: imported as it is where the benchmarks are importable
    (the repository root is the working folder), else loaded from the source tree as the
    package ``benchmarks`` (its own spec; ``sys.path`` is left alone); outside a checkout, a
    ``bench`` that says where they are."""
    import importlib
    import importlib.util

    try:
        return importlib.import_module(BENCH_MODULE).register
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", BENCH_MODULE):
            raise
    init = SOURCE_TREE / "benchmarks" / "__init__.py"
    if not init.is_file():
        return _bench_unavailable
    spec = importlib.util.spec_from_file_location(
        "benchmarks", init, submodule_search_locations=[str(init.parent)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = package
    spec.loader.exec_module(package)
    return importlib.import_module(BENCH_MODULE).register


def _bench_unavailable(subparsers) -> None:
    """``bench`` outside a source checkout: say where the benchmarks are instead of failing."""
    def run(_: argparse.Namespace) -> int:
        raise TinyLogBERTError("the benchmarks live in the source tree: run tinylogbert bench "
                               "from a clone of the repository (pip install -e .)")
    parser = subparsers.add_parser("bench", help="the benchmarks (in a source checkout only)")
    parser.set_defaults(func=run)


def _bench_placeholder(subparsers) -> None:
    """``bench`` in ``--help`` without importing the benchmarks (``main`` loads them only to run
    ``bench``)."""
    subparsers.add_parser("bench", help="reproduce the HDFS benchmark table (TinyLogBERT vs "
                                        "baselines vs LogLead), or with --suite every "
                                        "development log (in a source checkout)")


def run_reporting_errors(run, *args) -> int:
    """Call ``run(*args)``; turn every failure into one line on stderr and an exit code."""
    try:
        return int(run(*args) or 0)
    except TinyLogBERTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `tinylogbert formats | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; score the log in parts or use --engine ray", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line unless debugging
        written = as_write_error(exc, getattr(exc, "filename", None) or "an output")
        if written is not None:  # a full disk or a quota outside the atomic writers: the user's
            print(f"error: {written}", file=sys.stderr)
            return 2
        if os.environ.get("TINYLOGBERT_DEBUG"):
            raise
        message = " ".join(str(exc).split())
        print(f"internal error: {type(exc).__name__}: {message} "
              "(set TINYLOGBERT_DEBUG=1 for a traceback and please report it)", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that no later flush reports the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(with_bench="bench" in words).parse_args(argv)
    return run_reporting_errors(args.func, args)


def ignore_file_size_signal() -> None:
    """Past the file-size limit (``ulimit -f``, RLIMIT_FSIZE) the kernel sends SIGXFSZ, whose
    default action kills the process with no message and leaves the temporary files. Ignored,
    the write fails with EFBIG instead, which the atomic writers turn into one clear error and
    clean up after. Set at the CLI's entry (the process's owner), not in the library, whose
    host program may want the signal."""
    import signal

    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def entry() -> None:
    """The ``tinylogbert`` command. Once the output is flushed it exits without the
    interpreter's teardown, which after importing transformers' modeling stack takes ~1.1 s
    (measured) — longer than scoring 100,000 lines. Not when Ray was started: its exit hooks
    stop its processes."""
    ignore_file_size_signal()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # e.g. a closed pipe (`tinylogbert formats | head -1`): nothing to save
            pass
    if "ray" in sys.modules:
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
