"""Group lines into sessions: by an id in the line (HDFS blocks), else by windows.

A session is what the model reads as one sequence, and what most log benchmarks label. A line may
belong to several sessions (an HDFS line naming two blocks; overlapping windows); every line
belongs to at least one, so every line gets a score.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert.errors import FormatError
from tinylogbert.io.log_formats import FIELD_REFERENCE
from tinylogbert.io.log_parser import ParsedLog
from tinylogbert.io.safe_regex import compile_linear

STRATEGIES = ("auto", "id", "window", "time")
# With 'auto', an id pattern is used when at least this share of lines carries an id.
MIN_ID_COVERAGE = 0.5


@dataclass(frozen=True)
class SessionConfig:
    """How lines become sessions. Zero values mean "the format's default".

    ``id_pattern`` is a regex whose matches in a message are session ids (a named group ``id``
    keeps only that part: ``instance: (?P<id>[0-9a-f-]+)``), or ``<Field>`` to use a parsed field
    (``<Node>``, a JSON key) as the id.
    """

    by: str = "auto"
    id_pattern: str | None = None
    window_size: int = 0  # lines per window ('window')
    window_step: int = 0  # lines between window starts; 0 = window_size (no overlap)
    time_window: float = 0.0  # seconds per window ('time'); 0 = the format's default
    time_step: float = 0.0  # seconds between window starts; 0 = time_window

    def __post_init__(self) -> None:
        if self.by not in STRATEGIES:
            raise FormatError(f"unknown session strategy {self.by!r}; use one of {STRATEGIES}")
        if self.window_size < 0 or self.window_step < 0:
            raise FormatError("window size and step must be positive")
        if self.time_window < 0 or self.time_step < 0:
            raise FormatError("time window and step must be positive")
        if self.id_pattern and not FIELD_REFERENCE.match(self.id_pattern):
            compile_linear(self.id_pattern, "session id pattern")


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
    """Assign every line of ``parsed`` to one or more sessions (built once per config)."""
    index = parsed.session_cache.get(config)
    if index is None:
        index = parsed.session_cache[config] = _build_sessions(parsed, config)
    return index


# Keys that name a request or trace in JSON/logfmt records, most telling first (a trace spans
# services and requests; a span is only a piece of one).
TRACE_ID_KEYS = ("trace_id", "traceId", "trace.id", "traceid", "otelTraceID", "request_id",
                 "requestId", "request.id", "req_id", "x-request-id", "correlation_id",
                 "correlationId", "span_id", "spanId")


@dataclass(frozen=True)
class IdKeyChoice:
    """The trace/request id key sessions follow, and the share of lines carrying it."""

    key: str
    share: float

    def describe(self) -> str:
        return (f"sessions by <{self.key}>: {self.share:.1%} of the first 5,000 lines carry it "
                f"(the usual trace/request id key most lines carry; >= {MIN_ID_COVERAGE:.0%} "
                "needed)")


def trace_id_choice(parsed: ParsedLog) -> IdKeyChoice | None:
    """The usual id key (``TRACE_ID_KEYS``) most lines of a JSON or logfmt log carry, when at
    least ``MIN_ID_COVERAGE`` do; the first listed wins a tie. Lines without it are grouped as
    lines without an id always are (runs of ``ORPHAN_GROUP``)."""
    if parsed.fields is None:
        return None
    best: IdKeyChoice | None = None
    for key in TRACE_ID_KEYS:
        if parsed.field(key) is None:
            continue
        share = _id_coverage(parsed, f"<{key}>")
        if share >= MIN_ID_COVERAGE and (best is None or share > best.share):
            best = IdKeyChoice(key, share)
    return best


def resolve_rule(parsed: ParsedLog, config: SessionConfig) -> tuple[str, str | None]:
    """The strategy (``'id'``, ``'window'`` or ``'time'``) and id pattern that ``config`` means
    for ``parsed``: ``'auto'`` is decided on its first 5,000 lines. (``watch`` decides once, on
    the first lines it reads, with this same rule.)"""
    pattern = config.id_pattern or parsed.format.session_pattern
    if pattern is None and parsed.field("session") is not None:
        pattern = "<session>"  # the format has an explicit session field
    if pattern is None and config.by in ("auto", "id"):
        choice = trace_id_choice(parsed)
        if choice is not None:
            pattern = f"<{choice.key}>"
    by = config.by
    if by == "auto":
        by = "id" if pattern and _id_coverage(parsed, pattern) >= MIN_ID_COVERAGE else "window"
    if by == "id" and not pattern:
        raise FormatError(
            f"format {parsed.format.name!r} has no session id; give --session-id REGEX "
            "(or '<Field>') or use --sessions window"
        )
    return by, pattern


def _build_sessions(parsed: ParsedLog, config: SessionConfig) -> SessionIndex:
    by, pattern = resolve_rule(parsed, config)
    if by == "id":
        return _by_id(parsed, pattern)
    if by == "time":
        return _by_time(parsed, config)
    size = config.window_size or parsed.format.window_size
    return _by_count(len(parsed), size, config.window_step or size, parsed)


def _field_column(parsed: ParsedLog, name: str) -> pa.Array:
    column = parsed.field(name)
    if column is None:
        known = ", ".join(f"<{c}>" for c in (parsed.fields.column_names if parsed.fields else []))
        raise FormatError(
            f"session id <{name}>: format {parsed.format.name!r} has no field {name!r} "
            f"(its fields: {known or 'none'})"
        )
    return column


def _id_coverage(parsed: ParsedLog, pattern: str) -> float:
    """Share of (the first 5,000) lines that carry a session id."""
    field = FIELD_REFERENCE.match(pattern)
    if field:
        if parsed.field(field.group(1)) is None:
            return 0.0
        values = _field_column(parsed, field.group(1)).slice(0, 5000)
        present = _present(values)
        if parsed.event_of is not None:  # a stack trace's lines follow their event's id
            present = present[parsed.event_of[:5000] == np.arange(len(present))]
        return float(np.mean(present)) if len(present) else 0.0
    sample = parsed.table["message"].combine_chunks().slice(0, 5000)
    try:
        hits = pc.match_substring_regex(sample, pattern)
    except pa.ArrowInvalid:  # unnamed groups: google-re2 (linear time, like Arrow's RE2)
        rx = compile_linear(pattern, "session id pattern")
        return float(np.mean([bool(rx.search(s or "")) for s in sample.to_pylist()]))
    return float(pc.mean(pc.cast(hits, pa.float64())).as_py() or 0.0)


def _present(values: pa.Array) -> np.ndarray:
    """True where a field holds a non-blank value."""
    filled = pc.utf8_trim_whitespace(pc.fill_null(pc.cast(values, pa.large_string()), ""))
    return pc.greater(pc.utf8_length(filled), 0).to_numpy(zero_copy_only=False)


def _from_membership(
    line_idx: np.ndarray, sid: pa.Array | np.ndarray, n_lines: int, strategy: str
) -> SessionIndex:
    """Build a SessionIndex from (line, session id) pairs; ids stay Arrow strings throughout,
    since a million Python string objects would cost more than everything else here."""
    if not isinstance(sid, (pa.Array, pa.ChunkedArray)):
        sid = pa.array(sid, type=pa.large_string())
    sid = pc.cast(sid, pa.large_string())
    if isinstance(sid, pa.ChunkedArray):
        sid = sid.combine_chunks()
    by_line = np.argsort(line_idx, kind="stable")
    line_idx = line_idx[by_line]
    sid = sid.take(pa.array(by_line))
    encoded = sid.dictionary_encode()  # codes in order of first appearance, by line
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    order = np.argsort(codes, kind="stable")  # line order kept within each session
    counts = np.bincount(codes, minlength=len(ids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if len(line_idx) == n_lines:  # every line in exactly one session: the ids are the column
        line_session = sid
    else:  # the ids a line belongs to, ';'-joined
        per_line = pd.Series(ids[codes], index=line_idx)
        line_session = pa.array(
            per_line.groupby(level=0, sort=True).agg(";".join)
            .reindex(range(n_lines), fill_value="").to_numpy(),
            type=pa.large_string(),
        )
    return SessionIndex(
        ids=ids,
        offsets=offsets,
        members=line_idx[order].astype(np.int64),
        line_session=line_session,
        strategy=strategy,
    )


def id_members(parsed: ParsedLog, pattern: str) -> tuple[np.ndarray, pa.Array | np.ndarray, str]:
    """(line index, session id) pairs of the lines that carry an id, and the strategy's name."""
    field = FIELD_REFERENCE.match(pattern)
    if field:
        values = _field_column(parsed, field.group(1))
        line_idx = np.flatnonzero(_present(values))
        sid = values.take(pa.array(line_idx)).to_numpy(zero_copy_only=False).astype(object)
        return line_idx, sid, f"id field <{field.group(1)}>"
    line_idx, sid = _ids_from_regex(parsed.table["message"].combine_chunks(), pattern)
    return line_idx, sid, f"id /{pattern}/"


def _follow_events(parsed: ParsedLog, line_idx: np.ndarray, sid) -> tuple[np.ndarray, pa.Array]:
    return follow_events(parsed.event_of, line_idx, sid)


def follow_events(head: np.ndarray | None, line_idx: np.ndarray,
                  sid) -> tuple[np.ndarray, pa.Array]:
    """Continuation rows (a stack trace's lines) take the session ids of the row they continue
    (``head``: ``ParsedLog.event_of``), instead of their own (they rarely carry a trace id).
    Streaming calls it on a chunk, with ``head`` local to it."""
    sid = pc.cast(sid if isinstance(sid, pa.Array) else pa.array(sid), pa.large_string())
    if head is None:
        return line_idx, sid
    rows = np.flatnonzero(head != np.arange(len(head)))
    keep = np.flatnonzero(head[line_idx] == line_idx)
    line_idx, sid = line_idx[keep], sid.take(pa.array(keep))
    order = np.argsort(line_idx, kind="stable")
    by_line = line_idx[order]
    lo = np.searchsorted(by_line, head[rows], side="left")
    counts = np.searchsorted(by_line, head[rows], side="right") - lo
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    take = order[starts + np.arange(int(counts.sum()))]
    return (np.concatenate([line_idx, np.repeat(rows, counts)]),
            pa.concat_arrays([sid, sid.take(pa.array(take, type=pa.int64()))]))


def _by_id(parsed: ParsedLog, pattern: str) -> SessionIndex:
    n = len(parsed)
    line_idx, sid, strategy = id_members(parsed, pattern)
    line_idx, sid = _follow_events(parsed, line_idx, sid)
    covered = np.zeros(n, dtype=bool)
    covered[line_idx] = True
    orphans = np.flatnonzero(~covered)
    if len(orphans):
        # Lines without an id still get scored: consecutive runs of them form their own sessions.
        line_idx = np.concatenate([line_idx, orphans])
        sid = pa.concat_arrays([
            pc.cast(sid if isinstance(sid, pa.Array) else pa.array(sid), pa.large_string()),
            pa.array(_orphan_ids(orphans, parsed), type=pa.large_string()),
        ])
    return _from_membership(line_idx.astype(np.int64), sid, n, strategy)


def _ids_from_regex(message: pa.Array, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(line index, session id) pairs: every distinct match in every line (blank ids dropped).

    Vectorised with Arrow's RE2 for lines holding one id; google-re2 (same linear-time engine)
    for lines holding several, and for patterns whose id is an unnamed group.
    """
    rx = compile_linear(pattern, "session id pattern")
    group: str | int = "id" if "id" in rx.groupindex else (1 if rx.groups else 0)
    try:
        counts = pc.count_substring_regex(message, pattern).to_numpy(zero_copy_only=False)
        if group == 1:
            raise pa.ArrowInvalid("unnamed id group")
        wrapped = pattern if group == "id" else f"(?P<id>{pattern})"
        first = pc.extract_regex(message, wrapped).field("id")
    except pa.ArrowInvalid:
        counts = np.full(len(message), 2)  # 'several': every line goes through Python
        first = None
    single = np.flatnonzero(counts == 1)
    multi = np.flatnonzero(counts > 1)
    if first is not None and len(multi):
        # A line that names one id twice (HDFS: "Deleting block blk_1 file .../blk_1") is a
        # single-id line too: its first and last matches are equal (greedy ``.*`` finds the last).
        twice = multi[counts[multi] == 2]
        last = pc.extract_regex(message.take(pa.array(twice)), f"(?s:.*){wrapped}").field("id")
        same = pc.fill_null(pc.equal(first.take(pa.array(twice)), last), False)
        same = same.to_numpy(zero_copy_only=False)
        single = np.sort(np.concatenate([single, twice[same]]))
        multi = np.setdiff1d(multi, twice[same], assume_unique=True)
    line_idx = [single]
    ids = [pc.cast(first, pa.large_string()).take(pa.array(single))
           if first is not None else pa.array([], type=pa.large_string())]
    if len(multi):
        texts = message.take(pa.array(multi)).to_pylist()
        extra_lines, extra_ids = [], []
        for i, text in zip(multi, texts):
            for sid in dict.fromkeys(m.group(group) for m in rx.finditer(text or "")):
                extra_lines.append(i)
                extra_ids.append(sid)
        line_idx.append(np.asarray(extra_lines, dtype=np.int64))
        ids.append(pa.array(extra_ids, type=pa.large_string()))
    all_lines = np.concatenate(line_idx).astype(np.int64)
    all_ids = pa.concat_arrays(ids)
    keep = pc.fill_null(pc.greater(pc.utf8_length(all_ids), 0), False)
    return all_lines[keep.to_numpy(zero_copy_only=False)], all_ids.filter(keep)


# Lines without an id form sessions of this many (in line order, wherever they stand).
ORPHAN_GROUP = 20


def _orphan_ids(orphans: np.ndarray, parsed: ParsedLog, size: int = ORPHAN_GROUP) -> np.ndarray:
    line_no = parsed.table["line_no"].to_numpy()
    group = np.arange(len(orphans)) // size
    starts = line_no[orphans[np.searchsorted(group, group, side="left")]]
    ends = line_no[orphans[np.searchsorted(group, group, side="right") - 1]]
    return np.array([f"no-id:{a}-{b}" for a, b in zip(starts, ends)], dtype=object)


def _window_ids(starts: np.ndarray, ends: np.ndarray, line_no: np.ndarray) -> np.ndarray:
    return np.array([f"L{line_no[a]}-{line_no[b]}" for a, b in zip(starts, ends)], dtype=object)


def window_starts(n: int, size: int, step: int) -> np.ndarray:
    """First line index of every window over ``n`` lines (``streaming`` needs them without a
    parsed log)."""
    if size <= 0:
        raise FormatError("window size must be positive")
    if step > size:
        raise FormatError(
            f"window step ({step}) is larger than the window ({size}): lines between windows "
            "would be left out"
        )
    starts = np.arange(0, max(n - size, 0) + 1, step)
    if starts[-1] + size < n:  # a last, shorter window so no tail line is left out
        starts = np.append(starts, starts[-1] + step)
    return starts


def _by_count(n: int, size: int, step: int, parsed: ParsedLog) -> SessionIndex:
    starts = window_starts(n, size, step)
    ends = np.minimum(starts + size, n) - 1
    ids = _window_ids(starts, ends, parsed.table["line_no"].to_numpy())
    lens = ends - starts + 1
    line_idx = np.concatenate([np.arange(a, b + 1) for a, b in zip(starts, ends)])
    sid = np.repeat(ids, lens)
    # A stack trace cut by a window's end stays with its event: its lines join the window(s) of
    # the line they continue (time windows need nothing: untimed lines follow the line above).
    line_idx, sid = _follow_events(parsed, line_idx, sid)
    return _from_membership(line_idx.astype(np.int64), sid, n,
                            f"windows of {size} lines (step {step})")


def parse_times(parsed: ParsedLog) -> np.ndarray:
    """Seconds since the epoch per line (NaN where the timestamp is missing or unreadable)."""
    return timestamps_to_seconds(parsed.table["timestamp"].to_pandas(), parsed.format.time_format)


def timestamps_to_seconds(ts: pd.Series, time_format: str | None = None) -> np.ndarray:
    """Read timestamp strings: with ``time_format`` (strptime, 'epoch', 'ISO8601', 'mixed') first,
    then, for what that leaves unread, as epoch numbers or any date pandas recognises.

    Zone-aware times are converted to UTC; naive ones are taken as they are.
    """
    ts = ts.astype(object).where(ts.notna(), None)
    seconds = np.full(len(ts), np.nan)
    present = np.array([isinstance(v, str) and bool(v.strip()) for v in ts], dtype=bool)
    if not present.any():
        return seconds
    if time_format and time_format != "epoch":
        try:
            times = pd.to_datetime(ts, format=time_format, errors="coerce", utc=True)
            seconds = _epoch_seconds(times)
        except (ValueError, TypeError):
            pass  # a format pandas rejects: fall back to guessing below
    todo = present & np.isnan(seconds)
    if todo.any():
        values = ts[todo]
        uniques = pd.unique(values)  # timestamps repeat: read each distinct one once
        numbers = pd.to_numeric(pd.Series(uniques), errors="coerce").to_numpy(dtype=np.float64)
        guessed = _epoch_from_number(numbers)
        words = np.isnan(guessed)
        if words.any():
            texts = pd.Series(uniques[words])
            try:
                times = pd.to_datetime(texts, format="mixed", errors="coerce", utc=True)
                guessed[words] = _epoch_seconds(times)
            except (ValueError, TypeError, OverflowError):
                pass
        lookup = dict(zip(uniques, guessed))
        seconds[todo] = np.array([lookup[v] for v in values], dtype=np.float64)
    return seconds


def _epoch_seconds(times: pd.Series) -> np.ndarray:
    delta = (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return np.array(delta.to_numpy(dtype=np.float64, na_value=np.nan))  # a writable copy


def _epoch_from_number(numbers: np.ndarray) -> np.ndarray:
    """Epoch seconds from epoch numbers in s, ms, us or ns (told apart by magnitude)."""
    out = numbers.copy()
    for limit, scale in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):
        big = np.abs(out) >= limit
        out[big] = out[big] / scale
    return out


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
    span = config.time_window or parsed.format.time_window
    step = config.time_step or span
    if step > span:
        raise FormatError(
            f"time step ({step:g}s) is larger than the time window ({span:g}s): lines between "
            "windows would be left out"
        )
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
