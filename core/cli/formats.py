"""``tinylogbert formats``: list the known log formats, or say which one a log is written in.

The answer to "how do I run this on my logs?" starts here: ``formats --detect my.log`` shows the
format auto-detection would pick, how well it parses, the runners-up, and lines that do not parse;
``--format '<Date> <Time> <Level>: <Content>'`` tries a format of one's own on the same log.
"""
from __future__ import annotations

import argparse
import textwrap

from tinylogbert.io.log_formats import FIELD_REFERENCE, LogFormat, available_formats

WIDTH = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "formats", help="list the log formats, or detect which one a log file uses",
        description="Without arguments: the registry of log formats, with an example line each. "
        "With --detect LOGFILE: the format auto-detection picks for it and the runners-up.",
    )
    p.add_argument("--detect", metavar="LOGFILE", help="detect the format of this log")
    p.add_argument("--format", metavar="FORMAT",
                   help="with --detect: try this format instead (a name, a template like "
                        "'<Date> <Time> <Level>: <Content>', or a regex with named groups)")
    p.add_argument("--top", type=int, default=3, metavar="N",
                   help="with --detect: how many candidate formats to show (default 3)")
    p.add_argument("--examples", type=int, default=3, metavar="N",
                   help="with --detect: how many unparsed lines to show (default 3)")
    p.set_defaults(func=cmd_formats)


def cmd_formats(args: argparse.Namespace) -> int:
    if args.detect:
        print(detection_report(args.detect, args.format, args.top, args.examples))
    elif args.format:
        from tinylogbert.io.log_formats import get_format

        print(describe_format(get_format(args.format)))
    else:
        print(registry_listing())
    return 0


def sessions_default(fmt: LogFormat) -> str:
    """How ``--sessions auto`` groups this format's lines, in words."""
    if fmt.session_pattern:
        field = FIELD_REFERENCE.match(fmt.session_pattern)
        where = f"field <{field.group(1)}>" if field else f"/{fmt.session_pattern}/"
        return f"by id {where} when most lines carry one, else windows of {fmt.window_size} lines"
    return f"windows of {fmt.window_size} lines (time windows: {fmt.time_window:g}s)"


def describe_format(fmt: LogFormat) -> str:
    names = fmt.name + (f" (also: {', '.join(fmt.aliases)})" if fmt.aliases else "")
    rows = [names]
    if fmt.description:
        rows.append(textwrap.fill(fmt.description, WIDTH, initial_indent="  ",
                                  subsequent_indent="  "))
    if fmt.is_jsonl:
        keys = fmt.json_keys
        rows.append(f"  keys     message: {'/'.join(keys.message)}; time: {'/'.join(keys.time)}; "
                    f"level: {'/'.join(keys.level)}; component: {'/'.join(keys.component)}")
    elif fmt.template:
        rows.append(f"  template {fmt.template}")
    else:
        rows.append(f"  regex    {fmt.regex}")
    if fmt.has_label:
        rows.append(f"  labels   inline (first field; '{fmt.normal_label}' = normal): kept out of "
                    "the model's input, used by 'evaluate --level line'")
    rows.append(f"  sessions {sessions_default(fmt)}")
    if fmt.example:
        rows.append("  example  " + textwrap.shorten(fmt.example, WIDTH - 11, placeholder=" ..."))
    return "\n".join(rows)


def registry_listing() -> str:
    blocks = [describe_format(fmt) for fmt in available_formats()]
    footer = (
        "Use --format NAME, --format auto (the default: detected), a template such as "
        "--format '<Date> <Time> <Level>: <Content>' (loghub style), a regex with named groups "
        "(Content required; Level, Component, Label, Date/Time/... used), or "
        "--format 'json:message=event,time=ts'. Any format above also reads logs whose lines "
        "start with a loghub label ('NAME+label'). Try one on your log: "
        "tinylogbert formats --detect LOGFILE [--format FORMAT]."
    )
    return "\n\n".join(blocks + [textwrap.fill(footer, WIDTH)])


def detection_report(path: str, fmt_spec: str | None = None, top: int = 3,
                     examples: int = 3) -> str:
    """Detection (or a given format) on one log: the verdict, candidates, whole-file parse rate."""
    from tinylogbert.io.log_parser import FormatGuess, parse_log, rank_formats
    from tinylogbert.io.log_reader import read_log_file

    lines = read_log_file(path)
    rows: list[str] = []
    if fmt_spec:
        from tinylogbert.io.log_formats import get_format

        fmt = get_format(fmt_spec)
        ranked = rank_formats(lines, [fmt])
        guess = next((g for g in ranked if g.format.name == fmt.name),
                     FormatGuess(fmt, 0.0, min(len(lines), 2000)))
        rows.append(guess.describe())
        parsed = parse_log(lines, fmt)
    else:
        parsed = parse_log(lines, "auto")
        rows.append(parsed.detection.describe())
        rows.append(f"top {top} candidates:")
        for i, g in enumerate(rank_formats(lines)[:top], start=1):
            rows.append(f"  {i}. {g.format.name:<22} {g.match_rate:6.1%}")
    fmt = parsed.format
    n_ok = len(parsed) - parsed.n_unparsed
    rows.append(
        f"whole file: {n_ok:,} of {len(parsed):,} lines parse as {fmt.name!r} "
        f"({parsed.n_unparsed:,} kept whole, parse_ok=false)"
    )
    n_continuing = int(parsed.continuing.sum())
    if n_continuing:
        rows.append(f"  {n_continuing:,} of them continue the event above them (stack traces): "
                    "they join its session")
    if parsed.has_labels:
        labels = parsed.line_is_anomaly_label()
        rows.append(f"inline labels: {int((labels == 1).sum()):,} alert lines, "
                    f"{int((labels == 0).sum()):,} normal (kept out of the model's input)")
    from tinylogbert.sessions.grouping import build_sessions, trace_id_choice

    index = build_sessions(parsed)
    choice = trace_id_choice(parsed) if parsed.format.session_pattern is None else None
    if choice is not None:
        rows.append(choice.describe())
    plural = "" if len(index) == 1 else "s"
    rows.append(f"sessions (--sessions auto): {len(index):,} session{plural}, {index.strategy}")
    for line_no, text in parsed.unparsed_examples(examples):
        rows.append(f"  unparsed line {line_no}: "
                    + textwrap.shorten(text or "(empty)", WIDTH - 30, placeholder=" ..."))
    return "\n".join(rows)
