"""``tinylogbert score --stream``: the CLI's side of ``streaming`` (which path, and the report).

Kept apart from ``cli.py`` so that the command line's one scoring function stays the in-memory
path's, and this one can change without touching it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tinylogbert.errors import FormatError
from tinylogbert.model.checkpoint import trained_format, trained_sessions
from tinylogbert.sessions.grouping import SessionConfig


def wants_streaming(args: argparse.Namespace, sessions: SessionConfig | None) -> bool:
    """``--stream on`` always; ``auto`` for a big file or a given ``--chunk-lines``, unless the
    session rule is time windows (in memory only); ``off`` never."""
    from tinylogbert.batch.streaming import supports, worth_streaming

    if args.chunk_lines < 0:
        raise FormatError("--chunk-lines must be at least 1")
    if args.stream == "off":
        if args.chunk_lines:
            raise FormatError("--chunk-lines is for streaming; drop it or --stream off")
        return False
    rule = sessions or trained_sessions(args.model)
    if args.stream == "on":
        if rule is not None and not supports(rule):
            raise FormatError("time windows are scored in memory only; use --stream off "
                              "(or --sessions window)")
        return True
    if rule is None or not supports(rule):
        return False
    return bool(args.chunk_lines) or worth_streaming(args.logfile[0])


def score_streaming(args: argparse.Namespace, sessions: SessionConfig | None) -> int:
    """Passes 0 and 1 (survey, parse, spill) while the model loads, then pass 2."""
    from tinylogbert.batch.streaming import DEFAULT_CHUNK_LINES, StreamConfig, spill
    from tinylogbert.cli.common import _in_background, _load_detector, report_scored, warn

    started = time.perf_counter()
    loading = _in_background(_load_detector, args.model, args.runtime, args.threads)
    rule = sessions or trained_sessions(args.model) or SessionConfig()
    # The parsed chunks go beside the output, not to TMPDIR (often a small RAM disk).
    config = StreamConfig(chunk_lines=args.chunk_lines or DEFAULT_CHUNK_LINES,
                          spill_dir=Path(args.out).resolve().parent)
    with spill(args.logfile[0], args.format, trained_format(args.model), rule,
               config) as spilled:
        waiting = time.perf_counter()
        detector = loading()
        waited = time.perf_counter() - waiting
        summary = spilled.score(detector, args.out, args.sessions_out, args.threshold)
    for message in summary.warnings:
        warn(message)
    report_scored(summary.summary(), time.perf_counter() - started, waited,
                  summary.sequences_scored,
                  f"; streamed in {summary.chunks:,} chunks, at most "
                  f"{summary.max_held_lines:,} lines held at once (as codes)")
    return 0
