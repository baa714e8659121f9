"""``tinylogbert feedback``: mark false alarms as normal, list and remove the marks.

``tinylogbert feedback --model DIR --log LOG --normal ID [ID ...]`` records the sessions ``ID`` of
``LOG`` (sessions as ``score`` makes them: the model's format and session rule unless the format
options say otherwise) in ``DIR/feedback.json`` and updates the checkpoint's manifest; every later
``score`` (and the API, the dashboard) then leaves those sessions and sessions like them unflagged,
with the entry's id in ``suppressed_by``. ``--list`` shows the entries, ``--remove ID`` drops one.
See ``feedback.py`` for what "like them" means (``--match``; for windows, whose ids are
positions, a mark follows its lines when the log shifts by up to a quarter window).
"""
from __future__ import annotations

import argparse

from tinylogbert.errors import TinyLogBERTError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``feedback`` to the ``tinylogbert`` command (see ``EXTRA_COMMAND_MODULES``)."""
    from tinylogbert.cli.main import _add_format_options
    from tinylogbert.model.checkpoint import DEFAULT_MODEL_DIR

    p = subparsers.add_parser(
        "feedback", help="mark sessions of a log as normal (false alarms); list or remove marks",
        description="Stored with the model (feedback.json, covered by its manifest) and applied "
        "by every later score: the marked sessions, and sessions with the same sequence of "
        "normalised lines (--match set: the same set of lines), are no longer flagged; the "
        "column suppressed_by names the entry. Windows (ids like L201-220 are positions) match "
        "by content: with --match sequence also a window holding the marked lines shifted by "
        "up to a quarter window (a shared run of 3/4 of it, in order).",
    )
    p.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="checkpoint folder (written)")
    p.add_argument("--log", help="the log the sessions are in (with --normal)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--normal", nargs="+", metavar="ID", help="session ids to mark as normal")
    what.add_argument("--list", action="store_true", help="list the feedback entries")
    what.add_argument("--remove", metavar="ENTRY_ID", help="remove a feedback entry (e.g. fb-0001)")
    p.add_argument("--match", choices=["sequence", "set"], default="sequence",
                   help="sessions like a marked one: the same sequence of normalised lines "
                        "(default; windows: also shifted by up to a quarter window) or the same "
                        "set of them")
    _add_format_options(p)
    p.set_defaults(func=cmd_feedback)


def describe(entry) -> str:
    return (f"{entry.id}  {entry.created}  session {entry.session_id} of {entry.source}  "
            f"match {entry.match}: {len(entry.lines)} line{'' if len(entry.lines) == 1 else 's'}"
            + (f", first '{entry.lines[0]}'" if entry.lines else ""))


def cmd_feedback(args: argparse.Namespace) -> int:
    from tinylogbert.cli.main import _session_config, _session_options_given
    from tinylogbert.model.checkpoint import check_folder
    from tinylogbert.scoring.feedback import mark_normal, read_feedback, remove_entry

    if args.list:
        folder = check_folder(args.model)
        feedback = read_feedback(folder)
        for entry in feedback.entries:
            print(describe(entry))
        print(f"{len(feedback)} feedback entr{'y' if len(feedback) == 1 else 'ies'} in {folder}")
        return 0
    if args.remove:
        feedback = remove_entry(args.model, args.remove)
        print(f"removed {args.remove}; {len(feedback)} entr{'y' if len(feedback) == 1 else 'ies'} "
              "left")
        return 0
    if not args.log:
        raise TinyLogBERTError("--normal needs --log LOG: the log the sessions are in")
    sessions = _session_config(args) if _session_options_given(args) else None
    feedback, entries = mark_normal(args.model, args.log, args.normal, log_format=args.format,
                                    sessions=sessions, match=args.match)
    for sid, entry in zip(args.normal, entries):
        print(f"{sid}: {entry.id} (match {entry.match}, {len(entry.lines)} lines)")
    print(f"{len(feedback)} feedback entr{'y' if len(feedback) == 1 else 'ies'} in {args.model}; "
          "later scores leave these sessions and those like them unflagged (suppressed_by)")
    return 0
