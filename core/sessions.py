"""Group lines into sessions: by an id in the line (HDFS blocks), else by windows.

A session is what the model reads as one sequence, and what most log benchmarks label. A line may
belong to several sessions (an HDFS line naming two blocks; overlapping windows); every line
belongs to at least one, so every line gets a score.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import FormatError
from .log_parser import ParsedLog

STRATEGIES = ("auto", "id", "window", "time")
# With 'auto', an id pattern is used when at least this share of lines carries an id.
MIN_ID_COVERAGE = 0.5


@dataclass(frozen=True)
class SessionConfig:
    """How lines become sessions. Zero values mean "the format's default"."""

    by: str = "auto"
    id_pattern: str | None = None  # regex; each match in a message is a session id
    window_size: int = 0  # lines per window ('window')
    window_step: int = 0  # lines between window starts; 0 = window_size (no overlap)
    time_window: float = 60.0  # seconds per window ('time')
    time_step: float = 0.0  # seconds between window starts; 0 = time_window

    def __post_init__(self) -> None:
        if self.by not in STRATEGIES:
            raise FormatError(f"unknown session strategy {self.by!r}; use one of {STRATEGIES}")
        if self.window_size < 0 or self.window_step < 0:
            raise FormatError("window size and step must be positive")
        if self.time_window <= 0 or self.time_step < 0:
            raise FormatError("time window must be positive")
        if self.id_pattern:
            try:
                re.compile(self.id_pattern)
            except re.error as exc:
                raise FormatError(f"invalid session id pattern ({exc})") from None


@dataclass(frozen=True)
class SessionIndex:
    """Sessions in order of first appearance; ``members[offsets[i]:offsets[i+1]]`` are the
    0-based line indices of session ``i``, in line order."""

    ids: np.ndarray  # object array of str
    offsets: np.ndarray  # int64, len n_sessions + 1
    members: np.ndarray  # int64 line indices
    line_session: pa.Array  # per line: its session id(s), ';'-joined
    strategy: str

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def member_session(self) -> np.ndarray:
        """Session index of every entry of ``members``."""
        return np.repeat(np.arange(len(self.ids)), self.lengths())

    def lines_of(self, i: int) -> np.ndarray:
        return self.members[self.offsets[i] : self.offsets[i + 1]]


def build_sessions(parsed: ParsedLog, config: SessionConfig = SessionConfig()) -> SessionIndex:
    """Assign every line of ``parsed`` to one or more sessions."""
    pattern = config.id_pattern or parsed.format.session_pattern
    by = config.by
    if by == "auto":
        by = "id" if pattern and _id_coverage(parsed, pattern) >= MIN_ID_COVERAGE else "window"
    if by == "id":
        if not pattern:
            raise FormatError(
                f"format {parsed.format.name!r} has no session id; give --session-id REGEX "
                "or use --sessions window"
            )
        return _by_id(parsed, pattern)
    if by == "time":
        return _by_time(parsed, config)
    size = config.window_size or parsed.format.window_size
    return _by_count(len(parsed), size, config.window_step or size, parsed)


def _id_coverage(parsed: ParsedLog, pattern: str) -> float:
    sample = parsed.table["message"].slice(0, 5000)
    return float(pc.mean(pc.cast(pc.match_substring_regex(sample, pattern), pa.float64())).as_py())


def _from_membership(line_idx: np.ndarray, sid: np.ndarray, n_lines: int, strategy: str):
    """Build a SessionIndex from (line, session id) pairs."""
    codes, uniques = pd.factorize(sid)  # codes in order of first appearance
    order = np.lexsort((line_idx, codes))
    members = line_idx[order]
    counts = np.bincount(codes, minlength=len(uniques))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids = np.asarray(uniques, dtype=object)
    # Per-line label: the ids a line belongs to, ';'-joined (almost always exactly one).
    per_line = pd.Series(ids[codes[np.argsort(line_idx, kind="stable")]],
                         index=np.sort(line_idx, kind="stable"))
    if len(per_line) == n_lines:
        joined = per_line.to_numpy()
    else:
        joined = per_line.groupby(level=0, sort=True).agg(";".join).reindex(
            range(n_lines), fill_value=""
        ).to_numpy()
    return SessionIndex(
        ids=ids,
        offsets=offsets,
        members=members.astype(np.int64),
        line_session=pa.array(joined, type=pa.large_string()),
        strategy=strategy,
    )


def _by_id(parsed: ParsedLog, pattern: str) -> SessionIndex:
    message = parsed.table["message"].combine_chunks()
    n = len(message)
    counts = pc.count_substring_regex(message, pattern).to_numpy(zero_copy_only=False)
    first = pc.extract_regex(message, f"(?P<sid>{pattern})").field("sid")
    first = pc.cast(first, pa.large_string()).to_numpy(zero_copy_only=False)
    single = np.flatnonzero(counts == 1)
    line_idx = [single]
    sid = [first[single]]
    multi = np.flatnonzero(counts > 1)
    if len(multi):
        rx = re.compile(pattern)
        extra_lines, extra_ids = [], []
        for i in multi:
            for s in dict.fromkeys(m.group(0) for m in rx.finditer(message[int(i)].as_py())):
                extra_lines.append(i)
                extra_ids.append(s)
        line_idx.append(np.asarray(extra_lines, dtype=np.int64))
        sid.append(np.asarray(extra_ids, dtype=object))
    orphans = np.flatnonzero(counts == 0)
    if len(orphans):
        # Lines without an id still get scored: consecutive runs of them form their own sessions.
        line_idx.append(orphans)
        sid.append(_orphan_ids(orphans, parsed))
    return _from_membership(
        np.concatenate(line_idx), np.concatenate(sid), n, f"id /{pattern}/"
    )


def _orphan_ids(orphans: np.ndarray, parsed: ParsedLog, size: int = 20) -> np.ndarray:
    line_no = parsed.table["line_no"].to_numpy()
    group = np.arange(len(orphans)) // size
    starts = line_no[orphans[np.searchsorted(group, group, side="left")]]
    ends = line_no[orphans[np.searchsorted(group, group, side="right") - 1]]
    return np.array([f"no-id:{a}-{b}" for a, b in zip(starts, ends)], dtype=object)


def _window_ids(starts: np.ndarray, ends: np.ndarray, line_no: np.ndarray) -> np.ndarray:
    return np.array([f"L{line_no[a]}-{line_no[b]}" for a, b in zip(starts, ends)], dtype=object)


def _by_count(n: int, size: int, step: int, parsed: ParsedLog) -> SessionIndex:
    if size <= 0:
        raise FormatError("window size must be positive")
    starts = np.arange(0, max(n - size, 0) + 1, step)
    if starts[-1] + size < n:  # a last, shorter window so no tail line is left out
        starts = np.append(starts, starts[-1] + step)
    ends = np.minimum(starts + size, n) - 1
    ids = _window_ids(starts, ends, parsed.table["line_no"].to_numpy())
    lens = ends - starts + 1
    line_idx = np.concatenate([np.arange(a, b + 1) for a, b in zip(starts, ends)])
    sid = np.repeat(ids, lens)
    return _from_membership(line_idx, sid, n, f"windows of {size} lines (step {step})")


def parse_times(parsed: ParsedLog) -> np.ndarray:
    """Seconds since the epoch per line (NaN where the timestamp is missing or unreadable)."""
    ts = parsed.table["timestamp"].to_pandas()
    fmt = parsed.format.time_format
    try:
        times = pd.to_datetime(ts, format=fmt or "mixed", errors="coerce")
    except (ValueError, TypeError):
        times = pd.Series(pd.NaT, index=ts.index)
    seconds = (times - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


def _by_time(parsed: ParsedLog, config: SessionConfig) -> SessionIndex:
    n = len(parsed)
    seconds = pd.Series(parse_times(parsed))
    if seconds.notna().sum() == 0:
        raise FormatError(
            f"time windows need timestamps, but none of the lines of format "
            f"{parsed.format.name!r} has a readable one; use --sessions window"
        )
    # A line without a readable time belongs with the line before it (or the first timed line).
    seconds = seconds.ffill().bfill().to_numpy()
    span, step = config.time_window, config.time_step or config.time_window
    t0 = seconds.min()
    last_bucket = np.floor((seconds - t0) / step).astype(np.int64)
    # Window k covers [t0 + k*step, t0 + k*step + span): a line is in every k it falls into.
    per_line = int(np.ceil(span / step))
    line_idx, bucket = [], []
    for back in range(per_line):
        k = last_bucket - back
        inside = (k >= 0) & (seconds < t0 + k * step + span)
        line_idx.append(np.flatnonzero(inside))
        bucket.append(k[inside])
    line_idx_arr = np.concatenate(line_idx)
    bucket_arr = np.concatenate(bucket)
    start = pd.to_datetime(t0 + bucket_arr * step, unit="s").strftime("%Y-%m-%dT%H:%M:%S")
    sid = np.asarray(["T" + s for s in start], dtype=object)
    return _from_membership(line_idx_arr, sid, n, f"time windows of {span:g}s (step {step:g}s)")
