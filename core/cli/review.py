"""``tinylogbert review SESSIONS.csv --top 20``: the next best thing to labels.

Without labels ``evaluate`` has nothing to measure; what a user can do is read the sessions that
score highest and mark the false alarms. This lists them from the ``SESSIONS.csv`` that ``score``
wrote, each with its grade, first and last time, the explanation and the ``tinylogbert feedback``
command that marks it normal, so reading and marking is one pass.
"""
from __future__ import annotations

import argparse
import math
import shlex

from tinylogbert.errors import TinyLogBERTError

REQUIRED = ("session_id", "score")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``review`` to the ``tinylogbert`` command (see ``EXTRA_COMMAND_MODULES``)."""
    from tinylogbert.model.checkpoint import DEFAULT_MODEL_DIR

    p = subparsers.add_parser(
        "review", help="list the top sessions of a SESSIONS.csv with their explanations and "
                       "the feedback command that marks each one normal",
        description=__doc__.split("\n\n")[1].replace("\n", " ").replace("``", ""),
    )
    p.add_argument("sessions", metavar="SESSIONS.csv", help="written by tinylogbert score "
                                                           "--sessions-out")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="how many sessions, highest score first (default 20)")
    p.add_argument("--log", default="LOG", help="the scored log, for the feedback commands "
                                                "(default: the placeholder LOG)")
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR),
                   help="the model that scored it, for the feedback commands")
    p.set_defaults(func=cmd_review)


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def review_lines(frame, top: int, log: str, model: str) -> list[str]:
    """The listing, one block per session (see the module docstring)."""
    shown = frame.sort_values("score", ascending=False, kind="stable").head(top)
    feedback = f"tinylogbert feedback --model {shlex.quote(model)} --log {shlex.quote(log)}"
    out = []
    for rank, row in enumerate(shown.itertuples(index=False), start=1):
        r = row._asdict()
        flagged = str(r.get("is_anomaly", "")).lower() in ("true", "1")
        grade = _text(r.get("grade")) or _text(r.get("severity")) or "?"
        lines = (f"{int(r['n_lines']):,} lines" if _text(r.get("n_lines")) else "")
        first, last = _text(r.get("first_time")), _text(r.get("last_time"))
        span = f"{first} .. {last}" if first or last else "(no times: rescore with this version)"
        out.append(f"#{rank}  {r['session_id']}  score {float(r['score']):.4f}  grade {grade}"
                   f"{'  FLAGGED' if flagged else ''}  {lines}  {span}".rstrip())
        if "first_line_no" in r and _text(r.get("top_line_no")):
            out.append(f"    first line {int(r['first_line_no']):,}, weighs most: line "
                       f"{int(r['top_line_no']):,}")
        why = _text(r.get("explanation")) or "(no explanation column: rescore with this version)"
        out.append(f"    why: {why}")
        marked = _text(r.get("suppressed_by"))
        if marked:
            out.append(f"    already marked normal ({marked})")
        else:
            out.append(f"    mark normal: {feedback} --normal {shlex.quote(str(r['session_id']))}")
    return out


def cmd_review(args: argparse.Namespace) -> int:
    import pandas as pd

    from tinylogbert.io.log_reader import check_readable

    if args.top < 1:
        raise TinyLogBERTError(f"--top {args.top}: must be at least 1")
    path = check_readable(args.sessions)
    try:
        frame = pd.read_csv(path, dtype={"session_id": str, "suppressed_by": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TinyLogBERTError(f"{args.sessions}: not a SESSIONS.csv ({exc})") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TinyLogBERTError(f"{args.sessions}: no {', '.join(missing)} column: give the "
                               "SESSIONS.csv that tinylogbert score --sessions-out writes")
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    for line in review_lines(frame, args.top, args.log, args.model):
        print(line)
    flagged = (frame["is_anomaly"].astype(str).str.lower().isin(["true", "1"]).sum()
               if "is_anomaly" in frame.columns else 0)
    print(f"{min(args.top, len(frame)):,} of {len(frame):,} sessions shown, highest score first "
          f"({flagged:,} flagged). Several at once: tinylogbert feedback --model "
          f"{shlex.quote(args.model)} --log {shlex.quote(args.log)} --normal ID [ID ...]")
    return 0
