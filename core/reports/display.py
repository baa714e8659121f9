"""How numbers and counts read to a person, the same in the CLI, ``evaluate`` and the dashboard.

Why one place: the CLI printed the session threshold with three decimals, ``evaluate`` with four
(and another number), the dashboard with four; a user comparing them saw three thresholds for one
model. Every front end formats a threshold with ``format_threshold`` and counts with ``plural``.
"""
from __future__ import annotations

import math

THRESHOLD_DECIMALS = 4


def format_threshold(value: float) -> str:
    """A session or line threshold as every front end shows it (``6.6379``; ``inf`` as is)."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{THRESHOLD_DECIMALS}f}"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 session``, ``2 sessions``, ``1,024 lines``; ``many`` for irregular plurals."""
    word = noun if count == 1 else (many or f"{noun}s")
    return f"{count:,} {word}"
