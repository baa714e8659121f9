"""``tinylogbert bench``: the HDFS benchmark as a sub-command (same options as ``benchmarks.hdfs``),
and with ``--suite`` the development suite over every development log (``benchmarks.suite``).

Registered by ``tinylogbert.cli.main`` through ``EXTRA_COMMAND_MODULES = ("benchmarks.bench_cli", ...)``;
errors are ``TinyLogBERTError`` and reach the user as one line through ``tinylogbert.cli.main.main``.
"""
from __future__ import annotations

import argparse

from .hdfs import add_arguments, run_from_args


def cmd_bench(args: argparse.Namespace) -> int:
    if args.suite:
        from benchmarks import suite

        return suite.run_from_args(args, "tinylogbert bench --suite")
    return run_from_args(args, "tinylogbert bench")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="reproduce the HDFS benchmark table (TinyLogBERT vs baselines vs LogLead), "
                      "or with --suite every development log",
        description="Chronological split by session, unlabeled training, every method side by "
                    "side; writes benchmarks/results/NAME.json and NAME.md (--suite: suite.json "
                    "and suite.md).",
    )
    add_arguments(parser)
    suite = parser.add_argument_group("development suite (--suite)")
    suite.add_argument("--suite", action="store_true",
                       help="run every development log (HDFS, BGL_2k, Thunderbird_2k) with its "
                            "peers over several seeds instead of the HDFS table")
    suite.add_argument("--logs", default="hdfs,bgl,thunderbird",
                       help="with --suite: comma-separated development logs")
    suite.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                       help="with --suite: TinyLogBERT seeds")
    suite.add_argument("--axes", default="base,evolution,faults",
                       help="with --suite: base, evolution (reworded variants), faults "
                            "(injected fault bursts); default all")
    suite.add_argument("--merge", action="store_true",
                       help="with --suite: keep the other logs' runs of the suite.json in "
                            "--out-dir")
    parser.set_defaults(func=cmd_bench)
