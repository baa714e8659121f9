"""``tinylogbert parse``: how a log is understood, line by line, before any model reads it.

``tinylogbert parse LOG --out PARSED.csv`` writes one row per input line, in order, like loghub's
``*_structured.csv``: ``line_no``, the parsed fields (``timestamp``, ``level``, ``component``,
``message``, then the format's own fields such as ``Pid`` or ``Node``; ``label`` for labelled
formats), ``parse_ok`` (false: the line did not fit and its whole text is the message), ``words``
(the normalised text the model reads) and ``session_id`` (';'-joined when windows overlap).

It takes the path ``score`` takes: ``pipeline.read`` and ``pipeline.parse`` (the one format rule),
then ``build_sessions`` with the options given, or ``SessionConfig()`` (the rule every model
trained without session options uses) when none is given.
"""
from __future__ import annotations

import argparse

import pyarrow as pa

FIXED_COLUMNS = ("line_no", "timestamp", "level", "component", "message")
TAIL_COLUMNS = ("parse_ok", "words", "session_id")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``parse`` to the ``tinylogbert`` command (see ``EXTRA_COMMAND_MODULES``)."""
    from tinylogbert.cli.main import _add_format_options

    p = subparsers.add_parser(
        "parse", help="write how each line of a log is parsed (fields, words, session) to a CSV",
        description="One row per input line, in order: line_no, timestamp, level, component, "
        "message, the format's own fields, parse_ok, the normalised words the model reads and "
        "the session id. Check it before training on a log of your own.",
    )
    p.add_argument("logfile")
    p.add_argument("--out", required=True, help="PARSED.csv to write")
    _add_format_options(p)
    p.set_defaults(func=cmd_parse)


def parsed_table(parsed, index) -> pa.Table:
    """The CSV's columns (see the module docstring) from a parsed log and its sessions."""
    table = parsed.table
    columns = {name: table[name] for name in FIXED_COLUMNS}
    taken = {name.lower() for name in (*FIXED_COLUMNS, "label", *TAIL_COLUMNS)}
    # Fields already in a fixed column (level, component, the time parts) are not repeated.
    skip = taken | {g.lower() for g in parsed.format.timestamp_groups}
    if parsed.fields is not None:
        for name in parsed.fields.column_names:
            if name.lower() not in skip:
                columns[name] = parsed.fields[name]
                skip.add(name.lower())
    if parsed.format.has_label:
        columns["label"] = table["label"]
    columns["parse_ok"] = table["parse_ok"]
    columns["words"] = parsed.words
    columns["session_id"] = index.line_session
    return pa.table(columns)


def cmd_parse(args: argparse.Namespace) -> int:
    import time

    from pyarrow import csv as pacsv
    from tinylogbert import pipeline
    from tinylogbert.cli.main import _session_config, _session_options_given, check_output_file
    from tinylogbert.io.atomic_output import atomic_file
    from tinylogbert.sessions.grouping import SessionConfig, build_sessions

    check_output_file(args.out, "--out")
    started = time.perf_counter()
    lines = pipeline.read(args.logfile)
    parsed = pipeline.parse(lines, args.format)
    index = build_sessions(parsed, _session_config(args) if _session_options_given(args)
                           else SessionConfig())
    with atomic_file(args.out) as partial:  # renamed into place once complete
        pacsv.write_csv(parsed_table(parsed, index), str(partial))
    how = parsed.detection.describe() if parsed.detection else "given"
    plural = "" if len(index) == 1 else "s"
    print(
        f"parsed {len(parsed):,} lines in {time.perf_counter() - started:.1f}s; "
        f"format {parsed.format.name} ({how}); "
        f"{parsed.n_unparsed:,} line{'' if parsed.n_unparsed == 1 else 's'} did not parse "
        "(kept, parse_ok=false); "
        f"{len(index):,} session{plural} ({index.strategy}); wrote {args.out}"
    )
    return 0
