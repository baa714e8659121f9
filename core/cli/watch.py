"""``tinylogbert watch``: score a growing log live (``tail -F``) or a stream on standard input.

Each closed session that is anomalous (every closed session with ``--all``) becomes one JSON
object on one line, flushed at once. Sessions close when complete (a full window), after
``--idle-timeout`` seconds without a line of theirs, at the end of the input, or when the watch
is stopped (SIGINT, SIGTERM: exit 0 once every open session is closed and written). The logic is
``tinylogbert.live``; this module only reads arguments and writes lines.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from pathlib import Path

from tinylogbert.errors import OutputError


def register(subparsers) -> None:
    """Add ``watch`` to the ``tinylogbert`` command (see ``EXTRA_COMMAND_MODULES``)."""
    from tinylogbert.cli.main import _add_format_options
    from tinylogbert.model.checkpoint import DEFAULT_MODEL_DIR

    p = subparsers.add_parser(
        "watch", help="score a growing log live (tail -F) or standard input, one JSON line "
                      "per anomalous session",
        description=__doc__.split("\n\n")[1].replace("\n", " ").replace("``", ""),
    )
    p.add_argument("logfile", metavar="PATH|-",
                   help="the log to follow (rotation and truncation are followed), or - for "
                        "standard input")
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="checkpoint folder")
    _add_format_options(p)
    p.add_argument("--threshold", type=float, help="override the model's session threshold")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="close a session after this many seconds without a line of it "
                        "(default: the format's time window, 60 s for most formats)")
    p.add_argument("--out", default="-", metavar="EVENTS.jsonl|-",
                   help="where the events go, one JSON object per line (appended; default -: "
                        "standard output)")
    p.add_argument("--all", action="store_true", help="write every closed session, not only "
                                                      "the anomalous ones")
    p.add_argument("--lines", action="store_true",
                   help="also write an event (\"event\": \"line\") for every line over the "
                        "model's line threshold, even when its session is not anomalous")
    p.add_argument("--from-start", action="store_true",
                   help="read the file from its first line (default: from its end, like tail -F; "
                        "with --no-follow always from its first line)")
    p.add_argument("--no-follow", action="store_true",
                   help="read the file from its first line to its end and stop, instead of waiting "
                        "for more")
    p.add_argument("--max-open-sessions", type=int, default=10_000, metavar="N",
                   help="at most this many open sessions; beyond it the least recently active "
                        "ones are closed first (counted as forced) (default 10000)")
    p.add_argument("--max-session-lines", type=int, default=100_000, metavar="N",
                   help="a session this long is closed (counted as forced) (default 100000)")
    p.add_argument("--top-lines", type=int, default=3, metavar="K",
                   help="lines that weigh most, per event (default 3)")
    p.add_argument("--poll", type=float, default=0.2, metavar="SECONDS",
                   help="how often to look for new lines when none came (default 0.2)")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto",
                   help="as in score")
    p.add_argument("--threads", type=int, default=0, help="torch or ONNX Runtime threads")
    from tinylogbert.cli.watch_extras import add_watch_options

    add_watch_options(p)  # --log-format, --metrics-port, --state, alert sinks
    p.set_defaults(func=cmd_watch)


class _Stop:
    """SIGINT / SIGTERM set a flag; the loop closes every open session and ends."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._set)

    def _set(self, signum, _frame) -> None:
        self.signal = signum

    def __call__(self) -> bool:
        return self.signal is not None

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def cmd_watch(args: argparse.Namespace) -> int:
    from tinylogbert.cli.main import (
        _load_detector,
        _session_config,
        _session_options_given,
        check_output_file,
        warn,
    )
    from tinylogbert.io.log_reader import check_readable
    from tinylogbert.cli.log_output import emit, set_log_format
    from tinylogbert.cli.watch_extras import WatchExtras
    from tinylogbert.live.follow import follow, head_lines, read_stream
    from tinylogbert.live.session_tracker import DETECT_LINES, SessionTracker

    set_log_format(args.log_format)

    if args.idle_timeout is not None and args.idle_timeout <= 0:
        raise OutputError("--idle-timeout must be positive")
    if args.poll <= 0:
        raise OutputError("--poll must be positive")
    stdin = args.logfile == "-"
    if not stdin:
        check_readable(args.logfile)
    if args.out != "-":
        check_output_file(args.out, "--out")
    sessions = _session_config(args) if _session_options_given(args) else None
    detector = _load_detector(args.model, args.runtime, args.threads)
    source_name = "<stdin>" if stdin else str(args.logfile)
    extras = WatchExtras(args, source_name)
    tracker = SessionTracker(
        detector, args.format, sessions, args.threshold, args.idle_timeout,
        args.max_open_sessions, args.max_session_lines, emit_all=args.all,
        top_lines=args.top_lines, source=source_name, on_warning=extras.warning_hook(warn),
        emit_lines=args.lines,
        keep_text=extras.state is not None,  # (--state saves the open sessions' lines)
    )
    extras.instrument(tracker)
    # --no-follow from the end would read nothing: it reads the file as it is, from line 1.
    from_start = args.from_start or args.no_follow
    if not stdin:  # the same format check whichever line the watch starts from
        tracker.check_format(head_lines(args.logfile, DETECT_LINES))
    stop = _Stop()
    out = sys.stdout if args.out == "-" else open(Path(args.out), "a", encoding="utf-8")  # noqa: SIM115
    try:
        if stdin:
            chunks = read_stream(sys.stdin.fileno(), args.poll, stop)
            start = "standard input"
        else:
            chunks, resumed = extras.resume(tracker, None if out is sys.stdout else out,
                                            not args.no_follow, args.poll, stop)
            chunks = chunks or follow(args.logfile, from_start, not args.no_follow,
                                      args.poll, stop)
            start = f"{args.logfile} ({'from its first line' if from_start else 'from its end'}" \
                    f"{', to its end' if args.no_follow else ''})"
        emit(f"watching {start}; model {args.model}; stop with Ctrl-C")
        started = time.perf_counter()

        def write(events: list[dict]) -> None:
            for event in events:
                out.write(json.dumps(_clean(event), default=_json_default) + "\n")
            if events:
                out.flush()

        if not stdin:
            write(resumed)
        for chunk in chunks:
            write(tracker.feed(chunk.lines, chunk.first_line_no))
            if chunk.event in ("rotated", "truncated"):
                emit(f"watch: {source_name} was {chunk.event}; following the new file from "
                     "line 1", source=source_name, event=chunk.event)
                write(tracker.restart(chunk.event))
            if chunk.caught_up and not stop():
                write(tracker.close_idle())
            extras.checkpoint(tracker, None if out is sys.stdout else out, chunk)
        if not extras.keeps_sessions_open(stop()):
            write(tracker.close_all("signal" if stop() else "end"))
        extras.checkpoint(tracker, None if out is sys.stdout else out)
    finally:
        stop.restore()
        extras.close()
        if out is not sys.stdout:
            out.close()
    s = tracker.stats
    ended = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "stopped (SIGTERM)"}.get(
        stop.signal, "input ended")
    emit(f"watch: {ended} after {time.perf_counter() - started:.1f}s; {s.lines:,} lines, "
         f"{s.sessions_closed:,} sessions closed ({s.anomalous:,} anomalous, "
         f"{s.forced_closed:,} forced closed by --max-open-sessions/--max-session-lines), "
         f"{s.emitted:,} events written", lines=s.lines, sessions_closed=s.sessions_closed,
         anomalous=s.anomalous, events=s.emitted)
    return 0


def main(argv: list[str] | None = None) -> int:
    from tinylogbert.cli.main import run_reporting_errors

    parser = argparse.ArgumentParser(prog="python -m tinylogbert.cli.watch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["watch", *(sys.argv[1:] if argv is None else argv)])
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
