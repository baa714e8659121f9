"""Parse lines into records: every input line becomes exactly one row, parsed or flagged.

A line that does not fit the format is *kept*: its whole text becomes the message and
``parse_ok`` is False, so it is still scored and still in the output (no line is ever dropped).
In a labelled format (label first, loghub style) such a line still loses its leading label, so a
label can never reach the model, parsed line or not.
"""
from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert.errors import FormatError, LogInputError
from tinylogbert.io.log_formats import (
    GENERIC,
    LABEL_SUFFIX,
    LABEL_VALUE,
    LOGFMT_KEY,
    LOGFMT_LINE,
    LOGFMT_VALUE,
    NUMERIC_LEVELS,
    SYSLOG_SEVERITIES,
    JsonKeys,
    LogFormat,
    available_formats,
    get_format,
)
from tinylogbert.io.log_reader import LogLines
from tinylogbert.io.normalize import normalize_messages
from tinylogbert.io.safe_regex import compile_linear

DETECT_SAMPLE = 2000
# A format must parse at least this share of the sample to beat the generic fallback.
MIN_DETECT_RATE = 0.5
MIN_EVENT_SHARE = 0.05  # stack-trace lines are set aside for detection while 5% of lines are not
# An inline label is only believed when at least this share of labelled lines says "normal":
# otherwise an upper-case first word (a level, a host) would pass for a label and be stripped.
MIN_NORMAL_LABEL_SHARE = 0.05
# JSON lines: at most this many extra keys are kept as fields (for --session-id '<key>').
MAX_JSON_FIELDS = 64

LINE_COLUMNS = ("line_no", "timestamp", "level", "component", "message", "label", "parse_ok")
_LARGE_NULL = pa.scalar(None, pa.large_string())


@dataclass(frozen=True)
class FormatGuess:
    format: LogFormat
    match_rate: float
    n_sampled: int
    # Sampled lines that look like a stack trace's (frames, 'Caused by:', exception lines): they
    # continue an event whatever the format, so formats are judged on the other lines.
    n_set_aside: int = 0

    def describe(self) -> str:
        judged = self.n_sampled - self.n_set_aside
        text = f"{self.format.name}: {self.match_rate:.1%} of {judged:,} sampled lines"
        if self.n_set_aside:
            noun = "line" if self.n_set_aside == 1 else "lines"
            # No parentheses: this text sits inside the parentheses of `parse`'s summary line.
            text += f", {self.n_set_aside:,} stack-trace {noun} set aside"
        return text


@dataclass(frozen=True)
class ParsedLog:
    """One row per input line (``table``), plus the normalised words the model reads."""

    table: pa.Table  # LINE_COLUMNS
    words: pa.Array  # normalised text per line ('' when nothing is left after masking)
    format: LogFormat
    detection: FormatGuess | None = None
    source: str = "<input>"
    # Every parsed field but the content and label (regex groups, JSON keys), by its own name:
    # what ``--session-id '<Node>'`` reads. Never part of the model's input.
    fields: pa.Table | None = None
    # Sessions already built from this log, by SessionConfig (``sessions.build_sessions``), so
    # that a caller may build them early (the CLI does, while the model loads) at no extra cost.
    # Row index of the event each row belongs to (a stack trace's lines: the line they follow),
    # None when every row is its own event. Rows are never joined: one row per input line.
    event_of: np.ndarray | None = None
    session_cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def n_unparsed(self) -> int:
        return int(pc.sum(pc.invert(self.table["parse_ok"])).as_py() or 0)

    @property
    def continuing(self) -> np.ndarray:
        """Per row: whether it continues the event above it (a stack trace's line)."""
        if self.event_of is None:
            return np.zeros(len(self), dtype=bool)
        return self.event_of != np.arange(len(self))

    def unparsed_examples(self, k: int = 5) -> list[tuple[int, str]]:
        """The first ``k`` lines the format did not parse, leaving out the stack traces' lines
        (they did not parse because they continue an event, not because they are malformed)."""
        bad = pc.and_(pc.invert(self.table["parse_ok"]), pa.array(~self.continuing))
        rows = pc.filter(self.table, bad).slice(0, k)
        return list(zip(rows["line_no"].to_pylist(), rows["message"].to_pylist()))

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

    def field(self, name: str) -> pa.Array | None:
        """A parsed field's column by name (case-insensitive), or None if the format has none."""
        if self.fields is None:
            return None
        for column in self.fields.column_names:
            if column.lower() == name.lower():
                return self.fields[column].combine_chunks()
        return None


# ---- detection -----------------------------------------------------------------------------------
def _sample(lines: pa.Array, k: int) -> pa.Array:
    if len(lines) <= k:
        return lines
    idx = np.linspace(0, len(lines) - 1, k).astype(np.int64)
    return lines.take(pa.array(idx))


def _matches(sample: pa.Array, regex: str) -> np.ndarray:
    try:
        hits = pc.match_substring_regex(sample, pattern=regex)
        return hits.to_numpy(zero_copy_only=False).astype(bool)
    except pa.ArrowInvalid:  # what Arrow's kernel does not take (unnamed groups): google-re2
        rx = compile_linear(regex, "format regex")
        return np.array([rx.match(s) is not None for s in sample.to_pylist()], dtype=bool)


def _json_objects(sample: pa.Array) -> np.ndarray:
    return np.array([_load_object(s) is not None for s in sample.to_pylist()], dtype=bool)


def _match_rate(sample: pa.Array, fmt: LogFormat) -> float:
    """Share of the non-empty sampled lines that ``fmt`` parses."""
    if len(sample) == 0:
        return 0.0
    json_objects = fmt.is_jsonl and fmt.record_syntax == "json"
    hits = _json_objects(sample) if json_objects else _matches(sample, fmt.regex)
    if fmt.name.endswith(LABEL_SUFFIX) and not _plausible_labels(sample, hits, fmt):
        return 0.0
    return float(hits.mean())


def _plausible_labels(sample: pa.Array, hits: np.ndarray, fmt: LogFormat) -> bool:
    """An inferred label column must say "normal" now and then (see MIN_NORMAL_LABEL_SHARE)."""
    if not hits.any():
        return False
    first = pc.utf8_split_whitespace(pc.filter(sample, pa.array(hits)), max_splits=1)
    first = pc.list_element(first, 0)
    share = float(pc.mean(pc.cast(pc.equal(first, fmt.normal_label), pa.float64())).as_py() or 0)
    return share >= MIN_NORMAL_LABEL_SHARE


def _candidates(formats: list[LogFormat]) -> list[LogFormat]:
    """The given formats, plus each label-less one behind a loghub label (``linux+label``)."""
    out = []
    for fmt in formats:
        if fmt.name == GENERIC.name:
            continue
        out.append(fmt)
        if not fmt.has_label and not fmt.is_jsonl and fmt.regex.startswith("^"):
            out.append(fmt.with_inline_label())
    return out


def _detection_sample(lines: LogLines) -> tuple[pa.Array, int, int]:
    """The sampled lines that formats are judged on, how many were sampled, and how many of them
    were set aside as stack-trace lines.

    Judged: the non-empty lines, less those that look like a stack trace's (a Java service's log
    can be four fifths frames, which no header format parses: it would fall to generic, and
    its events would not be joined). When such lines are nearly all of the sample (a log whose
    every line is indented), they are its lines, and all are judged."""
    sample = _sample(lines.lines, DETECT_SAMPLE)
    nonempty = pc.filter(sample, pc.greater(pc.utf8_length(sample), 0))
    trace = _matches(nonempty, CONTINUATION) | _matches(nonempty, EXCEPTION_LINE)
    if trace.any() and (~trace).sum() >= MIN_EVENT_SHARE * len(nonempty):
        return pc.filter(nonempty, pa.array(~trace)), len(sample), int(trace.sum())
    return nonempty, len(sample), 0


def rank_formats(lines: LogLines, candidates: list[LogFormat] | None = None) -> list[FormatGuess]:
    """Every candidate format with its match rate on a sample, best first.

    Ranking: the share of lines parsed (to 0.1 %), then a format over its ``+label`` variant, then
    specificity (more typed fields). The generic fallback is not ranked.
    """
    nonempty, n_sampled, aside = _detection_sample(lines)
    guesses = [
        FormatGuess(fmt, _match_rate(nonempty, fmt), n_sampled, aside)
        for fmt in _candidates(candidates or available_formats())
    ]
    return sorted(
        guesses,
        key=lambda g: (round(g.match_rate, 3), not g.format.name.endswith(LABEL_SUFFIX),
                       g.format.specificity),
        reverse=True,
    )


def _preferred_format(lines: LogLines, prefer: LogFormat | None) -> FormatGuess | None:
    """``prefer`` (a trained model's own format) when it parses every sampled non-empty line.

    Why: a model reads lines the way its training log was parsed, and one format check costs a
    fifteenth of ranking them all (the API detects the format of every request)."""
    if prefer is None or prefer.name == GENERIC.name:
        return None
    nonempty, n_sampled, aside = _detection_sample(lines)
    guess = FormatGuess(prefer, _match_rate(nonempty, prefer), n_sampled, aside)
    return guess if guess.match_rate == 1.0 else None


def detect_format(lines: LogLines, candidates: list[LogFormat] | None = None) -> FormatGuess:
    """Pick the format that parses the most sampled lines; generic when none parses half."""
    ranked = rank_formats(lines, candidates)
    if ranked and ranked[0].match_rate >= MIN_DETECT_RATE:
        return ranked[0]
    # Nothing fits, but the lines may still carry loghub labels: strip them, keep the rest whole.
    labelled = GENERIC.with_inline_label()
    nonempty, n_sampled, aside = _detection_sample(lines)
    rate = _match_rate(nonempty, labelled)
    if rate >= MIN_DETECT_RATE:
        return FormatGuess(labelled, rate, n_sampled, aside)
    return FormatGuess(GENERIC, 1.0, n_sampled)


# ---- parsing -------------------------------------------------------------------------------------
@dataclass
class _Records:
    """What a format extracted from every line (None where a line did not parse)."""

    ok: pa.Array  # bool
    message: pa.Array
    timestamp: pa.Array
    level: pa.Array
    component: pa.Array
    label: pa.Array
    fields: pa.Table | None


_REST = "(?P<Content>.*)$"  # how most formats end: the message is the rest of the line


def _extract(lines: pa.Array, fmt: LogFormat) -> pa.StructArray:
    header = _header_regex(fmt.regex)
    if header is not None:
        try:
            return _extract_header_then_rest(lines, header)
        except pa.ArrowInvalid:
            pass  # the general path says why
    try:
        return pc.extract_regex(lines, pattern=fmt.regex)
    except pa.ArrowInvalid:  # unnamed groups: google-re2, linear time like Arrow's RE2
        rx = compile_linear(fmt.regex, f"regex of format {fmt.name!r}")
        names = sorted(rx.groupindex, key=rx.groupindex.__getitem__)  # as they appear
        rows = [rx.match(s) for s in lines.to_pylist()]
        arrays = [
            pa.array([m.group(n) if m else None for m in rows], type=pa.large_string())
            for n in names
        ]
        mask = pa.array([m is None for m in rows])
        return pa.StructArray.from_arrays(arrays, names=names, mask=mask)


def _header_regex(regex: str) -> str | None:
    """The regex without its last group when that group is ``Content`` taking the rest of the
    line (None otherwise). A line has no newline, so ``.*$`` always matches what the header
    leaves: the line matches the format exactly when its header does."""
    if not regex.endswith(_REST) or regex.count("(?P<Content>") != 1:
        return None
    return regex[:-len(_REST)]


def _extract_header_then_rest(lines: pa.Array, header: str) -> pa.StructArray:
    """``extract_regex`` of ``header + (?P<Content>.*)$``, in half the time: RE2 captures only
    the header's groups, and the message is what deleting the header's match leaves (group 0
    alone, which RE2 finds without the capturing engine). Same struct: the same fields, the
    same rows missing."""
    struct = pc.extract_regex(lines, pattern=header)
    rest = pc.replace_substring_regex(lines, pattern=header, replacement="", max_replacements=1)
    names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
    return pa.StructArray.from_arrays(
        [struct.field(i) for i in range(len(names))] + [rest],
        names=[*names, "Content"], mask=pc.is_null(struct))


def _regex_records(raw: pa.Array, fmt: LogFormat) -> _Records:
    struct = _extract(raw, fmt)
    ok = pc.is_valid(struct)
    columns = {}
    for name in fmt.groups:
        column = pc.cast(struct.field(name), pa.large_string())
        if name.lower() != "content":
            # RE2 reports an optional group that took no part as '': make it missing.
            ok_here = pc.and_(ok, pc.not_equal(column, ""))
        else:
            ok_here = ok
        columns[name] = pc.if_else(ok_here, column, _LARGE_NULL)
    by_lower = {name.lower(): column for name, column in columns.items()}
    nulls = pa.nulls(len(raw), pa.large_string())
    message = pc.if_else(ok, by_lower["content"], raw)
    label = by_lower.get("label", nulls)
    if fmt.has_label and fmt.label_leads:
        # A labelled line that does not parse still starts with its label: take it off.
        lead = pc.extract_regex(raw, pattern=rf"^(?P<label>{LABEL_VALUE})(?:\s+|$)(?P<rest>.*)$")
        found = pc.and_(pc.invert(ok), pc.is_valid(lead))
        label = pc.if_else(found, lead.field("label"), label)
        message = pc.if_else(found, lead.field("rest"), message)
    time_parts = [columns[g] for g in fmt.timestamp_groups]
    if len(time_parts) > 1:
        # Optional time groups (absent = null) are skipped rather than nulling the whole stamp.
        # (Filled and trimmed by hand: null_handling='skip' returns short arrays in pyarrow 26.)
        joined = pc.binary_join_element_wise(
            *(pc.fill_null(part, "") for part in time_parts), pa.scalar(" ", pa.large_string())
        )
        joined = pc.utf8_trim_whitespace(pc.replace_substring_regex(joined, r"\s{2,}", " "))
        timestamp = pc.if_else(pc.and_(ok, pc.not_equal(joined, "")), joined, _LARGE_NULL)
    else:
        timestamp = time_parts[0] if time_parts else nulls
    level = by_lower.get("level", nulls)
    if "pri" in by_lower:  # syslog <PRI>: the severity is PRI % 8
        pri = pc.cast(by_lower["pri"], pa.int64())
        severity = pc.if_else(pc.less_equal(pri, 191), pc.bit_wise_and(pri, 7), None)
        level = pc.cast(pa.array(SYSLOG_SEVERITIES, pa.large_string()).take(severity),
                        pa.large_string())
    extra = {n: c for n, c in columns.items() if n.lower() not in {"content", "label"}}
    return _Records(
        ok=ok, message=message, timestamp=timestamp, level=level,
        component=by_lower.get("component", nulls), label=label,
        fields=pa.table(extra) if extra else None,
    )


def _load_object(line: str | None) -> dict | None:
    text = (line or "").strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_LOGFMT_LINE = compile_linear(LOGFMT_LINE, "logfmt line")
_LOGFMT_PAIR = compile_linear(rf"({LOGFMT_KEY})=({LOGFMT_VALUE})", "logfmt pair")


def _load_logfmt(line: str | None) -> dict | None:
    """``key=value`` pairs of a logfmt line (quoted values unescaped), None if it is not one."""
    if not line or _LOGFMT_LINE.fullmatch(line) is None:
        return None
    record = {}
    for match in _LOGFMT_PAIR.finditer(line):
        value = match.group(2)
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        record[match.group(1)] = value
    return record


def _level_name(value: object) -> str:
    """A level as a name: numbers 0-7 are syslog severities, 10-60 pino/bunyan levels."""
    text = _as_text(value)
    if text.isdigit():
        number = int(text)
        if number < len(SYSLOG_SEVERITIES):
            return SYSLOG_SEVERITIES[number]
        return NUMERIC_LEVELS.get(number, text)
    return text


def _lookup(record: dict, keys: tuple[str, ...]) -> tuple[str | None, object]:
    """The first of ``keys`` present in ``record`` (``a.b`` looks inside ``a``)."""
    for key in keys:
        value: object = record
        for part in key.split(".") if key not in record else (key,):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            if value is not None and not isinstance(value, dict):
                return key, value
    return None, None


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _strings(values: list) -> pa.Array:
    return pa.array(values, type=pa.large_string())


def _json_records(raw: pa.Array, keys: JsonKeys, syntax: str = "json") -> _Records:
    """Parse JSON objects (or logfmt pairs); a record without a message field is scored as
    ``key=value`` text."""
    load = _load_logfmt if syntax == "logfmt" else _load_object
    n = len(raw)
    ok = np.zeros(n, dtype=bool)
    parts = {role: [None] * n for role in ("message", "timestamp", "level", "component")}
    extra: dict[str, list] = {}
    for i, line in enumerate(raw.to_pylist()):
        record = load(line)
        if record is None:
            continue
        ok[i] = True
        used = set()
        for role, candidates in (("timestamp", keys.time), ("level", keys.level),
                                 ("component", keys.component), ("message", keys.message)):
            key, value = _lookup(record, candidates)
            if key is not None:
                parts[role][i] = _level_name(value) if role == "level" else _as_text(value)
                used.add(key.split(".")[0])
        if parts["message"][i] is None:
            parts["message"][i] = " ".join(
                f"{k}={_as_text(v)}" for k, v in record.items() if k not in used
            )
        for key, value in record.items():
            if isinstance(value, (str, int, float, bool)) and (
                key in extra or len(extra) < MAX_JSON_FIELDS
            ):
                extra.setdefault(key, [None] * n)[i] = str(value)
    raw_large = pc.cast(raw, pa.large_string())
    ok_arr = pa.array(ok)
    return _Records(
        ok=ok_arr,
        message=pc.if_else(ok_arr, _strings(parts["message"]), raw_large),
        timestamp=_strings(parts["timestamp"]),
        level=_strings(parts["level"]),
        component=_strings(parts["component"]),
        label=pa.nulls(n, pa.large_string()),
        fields=pa.table({k: _strings(v) for k, v in extra.items()}) if extra else None,
    )


def _cri_records(raw: pa.Array, fmt: LogFormat) -> _Records:
    """Kubernetes CRI: each F record ends a message, which starts at the P (partial) records of
    its stream before it; the F row carries the joined message (the P rows keep their own
    fragment, so every line stays a row). A JSON or logfmt message gives level, component,
    message and its keys (as fields), one level further."""
    base = _regex_records(raw, fmt)
    n = len(raw)
    ok = base.ok.to_numpy(zero_copy_only=False)
    tags = base.fields["Tag"].to_pylist()
    streams = base.fields["Stream"].to_pylist()
    fragments = base.message.to_pylist()
    messages = list(fragments)
    level: list = [None] * n
    component: list = [None] * n
    extra: dict[str, list] = {}
    pending: dict[str, list[int]] = {}
    keys = JsonKeys()
    for i in range(n):
        if not ok[i]:
            continue
        if tags[i] == "P":
            pending.setdefault(streams[i], []).append(i)
            continue
        rows = pending.pop(streams[i], None)
        text = "".join(fragments[j] or "" for j in rows) + (fragments[i] or "") if rows else (
            fragments[i] or "")
        messages[i] = text
        head = text.lstrip()[:1]
        record = _load_object(text) if head == "{" else (_load_logfmt(text) if "=" in text
                                                         else None)
        if not record:
            continue
        _, value = _lookup(record, keys.level)
        level[i] = _level_name(value) if value is not None else None
        _, value = _lookup(record, keys.component)
        component[i] = _as_text(value) if value is not None else None
        _, value = _lookup(record, keys.message)
        if value is not None:
            messages[i] = _as_text(value)
        for key, value in record.items():
            if key in ("Timestamp", "Stream", "Tag"):
                continue
            if isinstance(value, (str, int, float, bool)) and (
                key in extra or len(extra) < MAX_JSON_FIELDS
            ):
                column = extra.setdefault(key, [None] * n)
                # The P rows of the message carry its keys too (a trace id puts them in the
                # message's session, not in one of their own).
                for j in [*(rows or ()), i]:
                    column[j] = str(value)
    fields = base.fields
    for key, values in extra.items():
        fields = fields.append_column(key, _strings(values))
    return dataclasses.replace(
        base, message=_strings(messages), level=_strings(level),
        component=_strings(component), fields=fields,
    )


def parse_log(
    lines: LogLines, fmt: str | LogFormat = "auto", prefer: LogFormat | None = None
) -> ParsedLog:
    """Parse every line with ``fmt`` and normalise its words. ``'auto'`` detects the format,
    taking ``prefer`` (a trained model's format) first if it parses every sampled line."""
    if len(lines) == 0:
        raise LogInputError(f"{lines.source}: the log has no lines")
    detection = None
    if isinstance(fmt, str) and fmt.strip().lower() == "auto":
        detection = _preferred_format(lines, prefer) or detect_format(lines)
        fmt = detection.format
    else:
        fmt = get_format(fmt)
    raw = pc.cast(lines.lines, pa.large_string())
    workers = os.cpu_count() or 1
    size = min(max(-(-len(raw) // workers), MIN_PARSE_CHUNK), MAX_PARSE_CHUNK)
    if fmt.joins_partials:  # partial records join across any slice boundary: one slice
        size = max(len(raw), 1)
    pieces = [raw.slice(start, size) for start in range(0, len(raw), size)]
    if len(pieces) == 1:
        parts = [_parse_piece(pieces[0], fmt)]
    else:  # Arrow kernels release the GIL: slices of a big log parse on every core
        with ThreadPoolExecutor(max_workers=min(len(pieces), workers)) as pool:
            parts = list(pool.map(lambda piece: _parse_piece(piece, fmt), pieces))
    table = pa.concat_tables([part[0] for part in parts]).combine_chunks()
    table = table.add_column(0, "line_no", pa.array(lines.line_no))
    words = pa.concat_arrays([part[1] for part in parts])
    fields = concat_fields([part[2] for part in parts], [part[0].num_rows for part in parts])
    return ParsedLog(
        table=table, words=words, format=fmt, detection=detection, source=lines.source,
        fields=fields, event_of=_continuations(table, fmt, fields),
    )


def concat_fields(parts: list[pa.Table | None], rows: list[int]) -> pa.Table | None:
    """The fields of a log parsed in slices. A slice none of whose lines has a field (a JSON
    log's slice holding only a stack trace) stands as nulls, so rows stay aligned."""
    known = [part for part in parts if part is not None]
    if not known:
        return None
    schema = known[0].schema
    return pa.concat_tables(
        [part if part is not None else
         pa.table({name: pa.nulls(n, kind) for name, kind in zip(schema.names, schema.types)})
         for part, n in zip(parts, rows)], promote_options="default")


# A line that continues the event before it: a Java frame or 'Caused by:', '... N more', a
# Python traceback's lines, or (in raw text) any indented line.
CONTINUATION = (r"^(?:\s*at [\w$.<>/]+\(|\s*\.\.\. \d+ more|Caused by: |\s*Suppressed: |"
                r"Traceback \(most recent call last\)|\s+File \"|\s+\S)")
# An exception line ('java.lang.X: msg', 'ValueError: boom') continues an event when a
# continuation line stands next to it.
EXCEPTION_LINE = r"^[\w$]+(?:\.[\w$]+)*(?:Exception|Error)(?::|$)"


@dataclass(frozen=True)
class ContinuationMarks:
    """Per row: ``strong``, a line that continues the event above it whatever stands next to it
    (a frame, 'Caused by:'); ``exception``, one that does when a strong row stands next to it.
    Both are the row's own: a log cut in slices (streaming) marks each slice alone and joins
    them with ``continuing_rows``."""

    strong: np.ndarray
    exception: np.ndarray


def continuation_marks(table: pa.Table, fmt: LogFormat,
                       fields: pa.Table | None) -> ContinuationMarks | None:
    """The rows' continuation marks (None: no row can continue an event).

    Only rows that did not parse are candidates, or every row where messages are raw output
    (generic, CRI), so a format's own lines never pay for the check."""
    n = table.num_rows
    ok = table["parse_ok"].to_numpy(zero_copy_only=False)
    candidate = np.ones(n, dtype=bool) if fmt.raw_messages else ~ok
    if fmt.joins_partials and fields is not None:  # a partial record is a fragment, not a line
        candidate &= ~pc.fill_null(pc.equal(fields["Tag"], "P"), False).to_numpy(
            zero_copy_only=False)
    rows = np.flatnonzero(candidate)
    if len(rows) == 0:
        return None
    message = table["message"].combine_chunks().take(pa.array(rows))
    strong = np.zeros(n, dtype=bool)
    exception = np.zeros(n, dtype=bool)
    strong[rows] = _matches(message, CONTINUATION)
    exception[rows] = _matches(message, EXCEPTION_LINE)
    return ContinuationMarks(strong, exception)


def continuing_rows(marks: ContinuationMarks, strong_before: bool = False,
                    strong_after: bool = False, log_start: bool = True) -> np.ndarray:
    """Rows that continue the event before them. ``strong_before``/``strong_after``: whether
    the rows just outside these (the slices next to this one) are strong; the log's first row
    (``log_start``) continues nothing."""
    strong, exception = marks.strong, marks.exception
    near = np.zeros(len(strong), dtype=bool)
    near[:-1] |= strong[1:]
    near[1:] |= strong[:-1]
    if len(near):
        near[0] |= strong_before
        near[-1] |= strong_after
    cont = strong | (exception & near)
    if log_start and len(cont):
        cont[0] = False
    return cont


def _continuations(table: pa.Table, fmt: LogFormat, fields: pa.Table | None) -> np.ndarray | None:
    """Rows that continue the event before them (multi-line stack traces), as ``event_of``."""
    marks = continuation_marks(table, fmt, fields)
    if marks is None:
        return None
    cont = continuing_rows(marks)
    if not cont.any():
        return None
    index = np.arange(table.num_rows)
    return np.maximum.accumulate(np.where(cont, -1, index))


# One slice per core, within these bounds. Few, big slices: every kernel call must take the GIL
# back, which costs milliseconds while another thread holds it (the CLI loads the model while it
# parses). Measured, 1M HDFS lines end to end on 2 cores: 10.9 s with 64k-line slices, 9.7 s with
# 256k. The upper bound keeps the intermediate arrays of the slices in flight bounded.
MIN_PARSE_CHUNK = 65_536
MAX_PARSE_CHUNK = 1_048_576


def _parse_piece(raw: pa.Array, fmt: LogFormat) -> tuple[pa.Table, pa.Array, pa.Table | None]:
    """Records and model words of one slice of lines (no ``line_no``: the caller adds it)."""
    if fmt.is_jsonl:
        records = _json_records(raw, fmt.json_keys, fmt.record_syntax)
    elif fmt.joins_partials:
        records = _cri_records(raw, fmt)
    else:
        records = _regex_records(raw, fmt)
    table = pa.table(
        {
            "timestamp": records.timestamp,
            "level": records.level,
            "component": records.component,
            "message": records.message,
            "label": records.label,
            "parse_ok": records.ok,
        }
    )
    # The model reads the component and the message only: never the label or other fields.
    words = normalize_messages(records.component, records.message)
    return table, words, records.fields


def require_some_parsed(parsed: ParsedLog) -> None:
    """Raise when a named (non-generic) format parsed nothing: almost surely the wrong format."""
    if parsed.format.name != GENERIC.name and parsed.n_unparsed == len(parsed):
        raise FormatError(
            f"{parsed.source}: no line matches format {parsed.format.name!r}; "
            "try --format auto or give the format as '<Date> <Time> <Level>: <Content>'"
        )

