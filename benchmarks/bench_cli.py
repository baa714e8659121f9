"""``tinylogbert bench``: the HDFS benchmark as a sub-command (same options as ``benchmarks.hdfs``).

Registered by ``core.cli`` through ``EXTRA_COMMAND_MODULES = ("benchmarks.bench_cli", ...)``;
errors are ``TinyLogBERTError`` and reach the user as one line through ``core.cli.main``.
"""
from __future__ import annotations

import argparse

from .hdfs import add_arguments, run_from_args


def cmd_bench(args: argparse.Namespace) -> int:
    return run_from_args(args, "tinylogbert bench")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="reproduce the HDFS benchmark table (TinyLogBERT vs baselines vs LogLead)",
        description="Chronological split by session, unlabeled training, every method side by "
                    "side; writes benchmarks/results/NAME.json and NAME.md.",
    )
    add_arguments(parser)
    parser.set_defaults(func=cmd_bench)
