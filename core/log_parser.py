"""Parse lines into records: every input line becomes exactly one row, parsed or flagged.

A line that does not fit the format is *kept*: its whole text becomes the message and
``parse_ok`` is False, so it is still scored and still in the output (no line is ever dropped).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import FormatError, LogInputError
from .log_formats import GENERIC, TIME_FIELDS, LogFormat, available_formats, get_format
from .log_reader import LogLines
from .normalize import normalize_messages

DETECT_SAMPLE = 2000
# A format must parse at least this share of the sample to beat the generic fallback.
MIN_DETECT_RATE = 0.5

LINE_COLUMNS = ("line_no", "timestamp", "level", "component", "message", "label", "parse_ok")


@dataclass(frozen=True)
class FormatGuess:
    format: LogFormat
    match_rate: float
    n_sampled: int

    def describe(self) -> str:
        return f"{self.format.name}: {self.match_rate:.1%} of {self.n_sampled:,} sampled lines"


@dataclass(frozen=True)
class ParsedLog:
    """One row per input line (``table``), plus the normalised words the model reads."""

    table: pa.Table  # LINE_COLUMNS
    words: pa.Array  # normalised text per line ('' when nothing is left after masking)
    format: LogFormat
    detection: FormatGuess | None = None
    source: str = "<input>"

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def n_unparsed(self) -> int:
        return int(pc.sum(pc.invert(self.table["parse_ok"])).as_py() or 0)

    def unparsed_examples(self, k: int = 5) -> list[tuple[int, str]]:
        bad = pc.filter(self.table, pc.invert(self.table["parse_ok"])).slice(0, k)
        return list(zip(bad["line_no"].to_pylist(), bad["message"].to_pylist()))

    @property
    def has_labels(self) -> bool:
        return self.table["label"].null_count < self.table.num_rows

    def line_is_anomaly_label(self) -> np.ndarray:
        """Inline labels as 0/1 (-1 where a line carries none)."""
        label = self.table["label"]
        out = np.full(len(label), -1, dtype=np.int8)
        valid = pc.is_valid(label).to_numpy(zero_copy_only=False)
        normal = pc.equal(label, self.format.normal_label).to_numpy(zero_copy_only=False)
        out[valid] = np.where(normal[valid], 0, 1)
        return out


def _sample(lines: pa.Array, k: int) -> pa.Array:
    if len(lines) <= k:
        return lines
    idx = np.linspace(0, len(lines) - 1, k).astype(np.int64)
    return lines.take(pa.array(idx))


def _match_rate(sample: pa.Array, fmt: LogFormat) -> float:
    nonempty = pc.filter(sample, pc.greater(pc.utf8_length(sample), 0))
    if len(nonempty) == 0:
        return 0.0
    try:
        hits = pc.match_substring_regex(nonempty, pattern=fmt.regex)
        return float(pc.mean(pc.cast(hits, pa.float64())).as_py())
    except pa.ArrowInvalid:  # regex RE2 cannot compile: use Python's engine
        rx = re.compile(fmt.regex)
        return float(np.mean([rx.match(s) is not None for s in nonempty.to_pylist()]))


def detect_format(lines: LogLines, candidates: list[LogFormat] | None = None) -> FormatGuess:
    """Pick the registered format that parses the most sampled lines (ties: more fields wins)."""
    sample = _sample(lines.lines, DETECT_SAMPLE)
    best: FormatGuess | None = None
    for fmt in candidates or available_formats():
        if fmt.name == GENERIC.name:
            continue
        rate = _match_rate(sample, fmt)
        key = (round(rate, 3), len(fmt.groups))
        if best is None or key > (round(best.match_rate, 3), len(best.format.groups)):
            best = FormatGuess(fmt, rate, len(sample))
    if best is None or best.match_rate < MIN_DETECT_RATE:
        return FormatGuess(GENERIC, 1.0, len(sample))
    return best


def _extract(lines: pa.Array, fmt: LogFormat) -> pa.StructArray:
    try:
        return pc.extract_regex(lines, pattern=fmt.regex)
    except pa.ArrowInvalid:
        rx = re.compile(fmt.regex)
        names = list(rx.groupindex)
        rows = [rx.match(s) for s in lines.to_pylist()]
        arrays = [
            pa.array([m.group(n) if m else None for m in rows], type=pa.large_string())
            for n in names
        ]
        mask = pa.array([m is None for m in rows])
        return pa.StructArray.from_arrays(arrays, names=names, mask=mask)


def parse_log(lines: LogLines, fmt: str | LogFormat = "auto") -> ParsedLog:
    """Parse every line with ``fmt`` (``'auto'``: detect) and normalise its words."""
    if len(lines) == 0:
        raise LogInputError(f"{lines.source}: the log has no lines")
    detection = None
    if isinstance(fmt, str) and fmt.strip().lower() == "auto":
        detection = detect_format(lines)
        fmt = detection.format
    else:
        fmt = get_format(fmt)
    raw = pc.cast(lines.lines, pa.large_string())
    struct = _extract(raw, fmt)
    ok = pc.is_valid(struct)
    null = pa.scalar(None, pa.large_string())

    def column(name: str) -> pa.Array:
        child = _group(struct, fmt, name)
        if child is None:
            return pa.nulls(len(raw), pa.large_string())
        return pc.if_else(ok, child, null)

    message = pc.if_else(ok, _group(struct, fmt, "content"), raw)
    time_parts = [column(g.lower()) for g in fmt.groups if g.lower() in TIME_FIELDS]
    if len(time_parts) > 1:
        timestamp = pc.binary_join_element_wise(*time_parts, pa.scalar(" ", pa.large_string()))
    else:
        timestamp = time_parts[0] if time_parts else pa.nulls(len(raw), pa.large_string())
    component = column("component")
    table = pa.table(
        {
            "line_no": pa.array(lines.line_no),
            "timestamp": timestamp,
            "level": column("level"),
            "component": component,
            "message": message,
            "label": column("label"),
            "parse_ok": ok,
        }
    )
    words = normalize_messages(component, message)
    return ParsedLog(table=table, words=words, format=fmt, detection=detection, source=lines.source)


def _group(struct: pa.StructArray, fmt: LogFormat, name: str) -> pa.Array | None:
    """A named group's column from ``extract_regex`` output, matched case-insensitively."""
    for group in fmt.groups:
        if group.lower() == name:
            return pc.cast(struct.field(group), pa.large_string())
    return None


def require_some_parsed(parsed: ParsedLog) -> None:
    """Raise when a named (non-generic) format parsed nothing: almost surely the wrong format."""
    if parsed.format.name != GENERIC.name and parsed.n_unparsed == len(parsed):
        raise FormatError(
            f"{parsed.source}: no line matches format {parsed.format.name!r}; "
            "try --format auto or give the format as '<Date> <Time> <Level>: <Content>'"
        )
