"""``watch``'s service options, kept out of ``watch.py``: JSON logs, a metrics port, a state
folder for restarts, and alert sinks. ``watch.py`` adds them with ``add_watch_options``.
"""
from __future__ import annotations

import argparse

from tinylogbert.cli.log_output import LOG_FORMATS


def add_watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                   help="what goes to stderr: text lines, or one JSON object per line (for a "
                        "journal or a log store) (default text)")
