"""``tinylogbert score --engine ray``: the command line of ``tinylogbert.batch.ray_engine``.

``tinylogbert.cli.main`` owns the ``score`` sub-command: it adds these options with ``add_ray_arguments`` and,
for ``--engine ray``, calls ``score_with_ray``. Ray is imported only then, so the base install
(without the ``[ray]`` extra) never needs it.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from tinylogbert.cli.progress import stderr_is_terminal
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.reports.display import format_threshold
from tinylogbert.sessions.grouping import SessionConfig

INSTALL_HINT = "pip install -e '.[ray]'"


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``score`` options that choose and configure the engine."""
    parser.add_argument(
        "--engine", choices=["local", "ray"], default="local",
        help="local: one log in this process; ray: many files, folders or globs on Ray Data "
             "(a local Ray, or a cluster with --address); --out is then a folder",
    )
    parser.add_argument(
        "--address", metavar="auto|ray://HOST:10001",
        help="--engine ray: join this Ray cluster instead of starting one on this machine",
    )
    parser.add_argument("--csv", action="store_true",
                        help="--engine ray: also write CSV beside the Parquet")
    parser.add_argument("--scorers", type=int, default=0, metavar="N",
                        help="--engine ray: scoring actors (0: as many as the CPUs allow)")
    parser.add_argument("--lines-per-call", type=int, default=1_000_000, metavar="LINES",
                        help="--engine ray: at most this many lines (whole sessions) per "
                             "scoring call; bigger calls reuse more work and take about 1 GB "
                             "per million lines")


def check_engine_options(args: argparse.Namespace, inputs: Sequence[str]) -> None:
    """Refuse option mixes that would silently do something else than asked."""
    if args.engine == "ray":
        if getattr(args, "sessions_out", None):
            raise TinyLogBERTError(
                "--sessions-out is for the local engine; --engine ray writes sessions/ into --out"
            )
        return
    if len(inputs) > 1:
        raise TinyLogBERTError(
            f"{len(inputs)} inputs: the local engine scores one log; use --engine ray for many "
            "files, folders or globs"
        )
    for option in ("address", "csv"):
        if getattr(args, option, None):
            raise TinyLogBERTError(f"--{option} needs --engine ray")


def score_with_ray(
    inputs: list[str],
    model: str,
    out_dir: str,
    address: str | None = None,
    csv: bool = False,
    log_format: str = "auto",
    sessions: SessionConfig | None = None,
    threshold: float | None = None,
    threads: int = 0,
    scorers: int = 0,
    lines_per_call: int = 1_000_000,
    progress: bool | None = None,
) -> dict:
    """Score ``inputs`` (files, folders, globs) on Ray into ``out_dir``; the summary as a dict."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise TinyLogBERTError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
    from tinylogbert.batch.ray_engine import RayScoreConfig, score_files

    config = RayScoreConfig(
        model=model, log_format=log_format, sessions=sessions, threshold=threshold, csv=csv,
        address=address, scorers=scorers, threads_per_scorer=max(threads, 1),
        lines_per_call=lines_per_call,
        progress=stderr_is_terminal() if progress is None else progress,
    )
    return score_files(inputs, out_dir, config).to_dict()


def describe_summary(summary: dict) -> str:
    """One line for the terminal, like the local engine's."""
    return (
        f"scored {summary['lines']:,} lines of {summary['files']:,} files in "
        f"{summary['sessions']:,} sessions in {summary['seconds']:.1f}s "
        f"({summary['lines_per_s']:,.0f} lines/s, Ray); format {summary['format']}; "
        f"{summary['unparsed_lines']:,} lines did not parse (kept, parse_ok=false); "
        f"{summary['anomalous_sessions']:,} sessions above threshold "
        f"{format_threshold(summary['threshold'])}; "
        f"results in {summary['outputs']['lines'].rsplit('/', 1)[0]}"
    )
