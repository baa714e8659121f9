"""A scored log over time: lines, sessions and flags per period, and where new lines first appear.

Why buckets of a "nice" width chosen from the span (10 minutes, an hour, a day...) rather than a
fixed count: a period a person can name ("between 20:00 and 21:00") is what one looks up in
other systems. A log without readable timestamps is cut into equal runs of lines instead, so the
same view still says *where* in the file things happen.

Split in two so the threshold slider stays cheap: ``make_buckets`` (which period each line and
session falls in) depends only on the log; ``bucket_counts`` counts the flags of a result judged
at any threshold with a few bincounts. A session counts in one period: where it starts, or where
its top line (the line that weighs most in its score, ``top_line_no``) is: for HDFS, whose blocks
are all allocated in the first minutes, the second says when the trouble showed.
"""
from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tinylogbert.reports.templates_table import TemplateIndex
from tinylogbert.scoring.results import ScoreResult
from tinylogbert.sessions.grouping import timestamps_to_seconds

MAX_BUCKETS = 150
# Lines must carry a readable time at least this often for periods of time (else runs of lines):
# a handful of timed lines would put the whole log into a few periods.
MIN_TIMED_SHARE = 0.5
MINUTE, HOUR, DAY = 60, 3600, 86400
TIME_WIDTHS: tuple[tuple[int, str], ...] = (
    (1, "second"), (10, "10 seconds"), (30, "30 seconds"), (MINUTE, "minute"),
    (5 * MINUTE, "5 minutes"), (10 * MINUTE, "10 minutes"), (15 * MINUTE, "15 minutes"),
    (30 * MINUTE, "30 minutes"), (HOUR, "hour"), (3 * HOUR, "3 hours"), (6 * HOUR, "6 hours"),
    (12 * HOUR, "12 hours"), (DAY, "day"), (7 * DAY, "week"),
)
WEEK_ORIGIN = -3 * DAY  # 1969-12-29, a Monday: weeks start on Mondays

SESSION_PLACES = ("top", "start")  # a session's period: of its top line, or of its first line
COUNT_COLUMNS = ["bucket", "start", "end", "label", "lines", "anomalous_lines", "flagged_lines",
                 "sessions", "flagged_sessions", "new_templates"]


def line_times(timestamps: pd.Series, time_format: str | None = None,
               year: int | None = None) -> np.ndarray:
    """Seconds since the epoch per line (NaN where unreadable), read as time windows read them
    (``sessions.timestamps_to_seconds``; naive times taken as they are). A format without a
    year (syslog's ``%b %d %H:%M:%S``) reads as 1900: with ``year``, the log's last line is put
    in that year and each earlier line a year back for every time the months go backwards."""
    seconds = timestamps_to_seconds(timestamps, time_format)
    if year is None or not time_format or not lacks_year(time_format):
        return seconds
    return with_year(seconds, year)


def lacks_year(time_format: str | None) -> bool:
    """Whether a strptime format has no year, so that its times read as 1900."""
    return bool(time_format) and time_format not in ("epoch", "ISO8601", "mixed") and \
        "%Y" not in time_format and "%y" not in time_format


def with_year(seconds: np.ndarray, year: int) -> np.ndarray:
    """Times read without a year (as 1900) moved to ``year``, rolling back a year before each
    place where the month goes backwards (December, then January: a new year)."""
    valid = np.flatnonzero(~np.isnan(seconds))
    if not len(valid):
        return seconds
    times = pd.to_datetime(seconds[valid], unit="s")
    months = np.asarray(times.month)
    rollovers = np.concatenate([[0], np.cumsum(np.diff(months) < 0)])
    years = year - (rollovers[-1] - rollovers) - np.asarray(times.year)
    out = seconds.copy()
    shifted = np.empty(len(valid))
    for shift in np.unique(years):
        pick = years == shift
        moved = pd.Series(times[pick]) + pd.DateOffset(years=int(shift))
        shifted[pick] = (moved - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    out[valid] = shifted
    return out


@dataclass(frozen=True)
class Buckets:
    """Consecutive periods of a log: of time (``mode='time'``, ``starts`` in epoch seconds) or of
    line order (``mode='lines'``, ``starts`` 1-based line numbers)."""

    mode: str
    width: int  # seconds, or lines
    unit: str  # "10 minutes", "500 lines": what one bucket is
    starts: np.ndarray  # per bucket
    line_bucket: np.ndarray  # per line
    session_start: np.ndarray  # per session: the bucket of its first line
    session_top: np.ndarray  # per session: the bucket of its top line
    n_untimed: int = 0  # lines without a readable time (counted with the line before them)

    @property
    def n(self) -> int:
        return len(self.starts)

    @property
    def ends(self) -> np.ndarray:
        return self.starts + self.width

    def labels(self) -> list[str]:
        """A short name per bucket: its start time, or its range of lines."""
        if self.mode == "lines":
            return [f"lines {int(s):,}–{int(s) + self.width - 1:,}" for s in self.starts]
        pattern = ("%Y-%m-%d" if self.width >= DAY else
                   "%Y-%m-%d %H:%M" if self.width >= MINUTE else "%Y-%m-%d %H:%M:%S")
        return list(pd.to_datetime(self.starts, unit="s").strftime(pattern))

    def session_bucket(self, place: str = "top") -> np.ndarray:
        """Per session, its bucket: of its top line (``'top'``) or first line (``'start'``)."""
        if place not in SESSION_PLACES:
            raise ValueError(f"place must be one of {SESSION_PLACES}, not {place!r}")
        return self.session_top if place == "top" else self.session_start

    def sessions_in(self, bucket: int, place: str = "top") -> np.ndarray:
        """Indices of the sessions placed in ``bucket`` (see ``session_bucket``)."""
        return np.flatnonzero(self.session_bucket(place) == bucket)


def _time_width(span: float, max_buckets: int) -> tuple[int, str]:
    for width, name in TIME_WIDTHS:
        if span / width < max_buckets - 1:  # an unaligned span can touch one bucket more
            return width, name
    weeks = int(np.ceil(span / (7 * DAY) / max_buckets))
    return weeks * 7 * DAY, f"{weeks} weeks"


def _line_width(n_lines: int, max_buckets: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... lines per bucket giving at most ``max_buckets``."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if np.ceil(n_lines / (step * magnitude)) <= max_buckets:
                return step * magnitude
        magnitude *= 10


def make_buckets(result: ScoreResult, seconds: np.ndarray | None,
                 max_buckets: int = MAX_BUCKETS) -> Buckets:
    """Periods for ``result``'s lines; ``seconds`` per line (``line_times``) or None.

    Periods of time when at least ``MIN_TIMED_SHARE`` of the lines have a readable time (a line
    without one goes with the line before it, as in time-window sessions), else runs of lines.
    Empty periods between busy ones are kept: a gap in a log is worth seeing.
    """
    n_lines = result.n_lines
    index = result.sessions
    first_line = index.members[index.offsets[:-1]] if len(index) else np.zeros(0, np.int64)
    top_line = result.session_table["top_line_no"].to_numpy().astype(np.int64) - 1  # 1-based
    timed = np.isfinite(seconds) if seconds is not None else np.zeros(n_lines, dtype=bool)
    if n_lines and timed.mean() >= MIN_TIMED_SHARE:
        filled = pd.Series(np.asarray(seconds, dtype=np.float64)).ffill().bfill().to_numpy()
        low, high = float(filled.min()), float(filled.max())
        width, unit = _time_width(high - low, max_buckets)
        origin = WEEK_ORIGIN if width % (7 * DAY) == 0 else 0
        slot = np.floor((filled - origin) / width).astype(np.int64)
        first_slot = int(slot.min())
        line_bucket = slot - first_slot
        n = int(line_bucket.max()) + 1
        starts = origin + (first_slot + np.arange(n)) * float(width)
        return Buckets("time", width, unit, starts, line_bucket, line_bucket[first_line],
                       line_bucket[top_line], n_untimed=int((~timed).sum()))
    width = _line_width(max(n_lines, 1), max_buckets)
    line_bucket = np.arange(n_lines, dtype=np.int64) // width
    n = int(np.ceil(n_lines / width)) if n_lines else 0
    starts = 1 + np.arange(n, dtype=np.int64) * width
    return Buckets("lines", width, f"{width:,} lines", starts, line_bucket,
                   line_bucket[first_line], line_bucket[top_line])


def first_appearances(result: ScoreResult, buckets: Buckets, templates: TemplateIndex,
                      known: Container[str]) -> pd.DataFrame:
    """The first line of each template that is not in ``known`` (the model's vocabulary), in
    line order: template, line_no, timestamp, bucket, count (its lines in this log)."""
    new = np.array([t not in known for t in templates.texts], dtype=bool)
    first = templates.first_line[new]
    order = np.argsort(first, kind="stable")
    first = first[order]
    lines = result.line_table
    return pd.DataFrame({
        "template": np.asarray(templates.texts, dtype=object)[new][order],
        "line_no": lines["line_no"].to_numpy()[first],
        "timestamp": lines["timestamp"].to_numpy(zero_copy_only=False)[first],
        "bucket": buckets.line_bucket[first],
        "count": templates.count[new][order],
    })


def bucket_counts(buckets: Buckets, result: ScoreResult,
                  new_templates: pd.DataFrame | None = None, place: str = "top") -> pd.DataFrame:
    """Per bucket (``COUNT_COLUMNS``): lines; lines over the model's line threshold
    (``anomalous_lines``); lines of flagged sessions (``flagged_lines``, at ``result``'s
    threshold); sessions placed there (``place``) and how many are flagged; new templates."""
    n = buckets.n
    lines, sessions = result.line_table, result.session_table
    line_flag = lines["is_anomaly"].to_numpy(zero_copy_only=False).astype(np.float64)
    in_flagged = lines["session_is_anomaly"].to_numpy(zero_copy_only=False).astype(np.float64)
    session_flag = sessions["is_anomaly"].to_numpy(zero_copy_only=False).astype(np.float64)

    def per_bucket(where: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(where, weights=weights, minlength=n).astype(np.int64)[:n]

    new = (per_bucket(new_templates["bucket"].to_numpy(dtype=np.int64))
           if new_templates is not None and len(new_templates) else np.zeros(n, dtype=np.int64))
    starts = (pd.to_datetime(buckets.starts, unit="s") if buckets.mode == "time"
              else buckets.starts)
    ends = (pd.to_datetime(buckets.ends, unit="s") if buckets.mode == "time"
            else buckets.ends - 1)
    return pd.DataFrame({
        "bucket": np.arange(n),
        "start": starts,
        "end": ends,
        "label": buckets.labels(),
        "lines": per_bucket(buckets.line_bucket),
        "anomalous_lines": per_bucket(buckets.line_bucket, line_flag),
        "flagged_lines": per_bucket(buckets.line_bucket, in_flagged),
        "sessions": per_bucket(buckets.session_bucket(place)),
        "flagged_sessions": per_bucket(buckets.session_bucket(place), session_flag),
        "new_templates": new,
    }, columns=COUNT_COLUMNS)
