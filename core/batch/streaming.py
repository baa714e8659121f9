"""Score a log file in bounded memory: sessions are closed, scored and written as the file is read.

Why: batch scoring held the whole log (1.2-1.6 GB per million lines), so a big log needed a big
machine or Ray. Here memory grows with the number of *sessions* (a few ints and an id each) and
with the lines of the sessions still open, not with the log. The output is the in-memory path's,
byte for byte (LINES.csv and SESSIONS.csv), because every step is that path's own code run on a
slice, and the slices are cut where nothing global changes:

0. **survey** (two cheap reads, no parsing): count the lines, then keep the 2,000 lines the
   in-memory path samples to detect the format (spread over the whole log, so the count comes
   first) and the first 5,000 lines, on which ``sessions.resolve_rule`` decides 'auto';
1. **parse** chunk by chunk (``log_parser``'s code; JSON logs in the in-memory path's own slices),
   give every line its session ids (``sessions.id_members``; lines without an id in groups of
   ``ORPHAN_GROUP``; windows by arithmetic; a stack trace's lines in its event's sessions, also
   across a chunk's end: ``_Events`` carries what the next chunk needs; CRI chunks end where no
   message is open, ``_joined_chunks``) and note each session's
   last line; the parsed chunks are spilled to a temporary Arrow file next to the output, so
   nothing is parsed twice;
2. **score** the spilled chunks in order: a line is final once every session holding it is
   complete; complete sessions are scored in batches by ``TinyLogBERTDetector.score`` (the same
   call, on a sub-log holding exactly their lines); final lines are written in input order and
   session rows in order of first appearance, as the in-memory path orders them.

A line shared by a finished and an open session (overlapping windows; an HDFS line naming two
blocks) waits for both; a finished session is scored when its lines are final, and once more
when some were final before the others (its model results then come from the cache). Held in
memory: the lines from the first line of the oldest session still needed to the current chunk,
so memory stays flat when sessions are short-lived (windows, requests, the benchmark's HDFS
copies) and grows with a session's span when one lives across the whole log.

Not streamed: time windows (their ids need the log's first time before the first line can be
placed), which stay in memory (``supports``). The bytes are identical with ONNX Runtime (the
CLI's default), whose outputs for a sequence do not depend on which sequences share its batch
(``onnx_runtime.ALIGN_FLOATS``); torch's differ by a few 1e-6 between batch compositions, so
with ``runtime='torch'`` a score's last digit may differ from the in-memory run's.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tinylogbert.errors import FormatError, LogInputError
from tinylogbert.io.atomic_output import atomic_files, temp_folder, write_errors
from tinylogbert.io.log_formats import FIELD_REFERENCE, GENERIC, LogFormat, get_format
from tinylogbert.io.log_parser import (
    DETECT_SAMPLE,
    LINE_COLUMNS,
    MAX_PARSE_CHUNK,
    MIN_PARSE_CHUNK,
    FormatGuess,
    ParsedLog,
    _continuations,
    _parse_piece,
    _preferred_format,
    concat_fields,
    continuation_marks,
    continuing_rows,
    detect_format,
)
from tinylogbert.io import log_reader
from tinylogbert.io.log_reader import (
    _BINARY_SAMPLE,
    GZIP_MAGIC,
    LogLines,
    _looks_binary,
    check_readable,
    decode_lines,
    gunzip_blocks,
)
from tinylogbert.scoring.fit_check import new_line_counts
from tinylogbert.sessions.grouping import (
    ORPHAN_GROUP,
    SessionConfig,
    SessionIndex,
    follow_events,
    id_members,
    resolve_rule,
    window_starts,
)

if TYPE_CHECKING:
    from tinylogbert.pipeline import ScoreOptions
    from tinylogbert.scoring.detector import TinyLogBERTDetector

READ_BLOCK = 1 << 24  # bytes read (decompressed) at a time
RULE_LINES = 5000  # what ``resolve_rule`` decides 'auto' on
# The survey's head holds one line more: whether line 5,000 continues an event (a stack trace's
# line, which the id coverage leaves out) depends on the line after it.
HEAD_LINES = RULE_LINES + 1
DEFAULT_SCORE_LINES = 262_144  # a model call's sub-log: ~300 MB at most, whatever the log's size
DEFAULT_CHUNK_LINES = 32_768  # measured on 1M HDFS lines: as fast as 131,072, 25% less peak RSS
# ``tinylogbert score --stream auto`` streams files above this size on disk (gzip: a tenth of
# it): below it the in-memory path is as fast and its memory is a few hundred MB at most.
AUTO_STREAM_BYTES = 64 * 2**20
_ORPHAN_KEY = "\x00orphan:"  # placeholder id of a group of id-less lines, named after pass 1
_SPILL_NAME = "parsed.arrow"
# The spill is written zstd-compressed: measured on 1M HDFS lines (249 MB of columns), writing
# took 0.20 s and reading back 0.10 s, against 0.75 s to write it uncompressed, and it holds
# 18 MB on disk instead of 249 MB (a 10M-line log spilled 2.5 GB next to the output).
_SPILL_CODEC = "zstd" if pa.Codec.is_available("zstd") else None
SPILL_FOLDER = "tinylogbert-stream"  # its temporary name: .tinylogbert-stream.tmp-<pid>-<hex>


@dataclass(frozen=True)
class StreamConfig:
    """How the file is cut; neither setting changes a single output byte."""

    chunk_lines: int = DEFAULT_CHUNK_LINES  # lines parsed, spilled and scored per step
    spill_dir: str | Path | None = None  # the parsed chunks' temporary file (None: TMPDIR)
    score_lines: int = DEFAULT_SCORE_LINES  # most lines per model call (sessions finishing at once)

    def __post_init__(self) -> None:
        if self.chunk_lines < 1:
            raise FormatError("--chunk-lines must be at least 1")
        if self.score_lines < 1:
            raise FormatError("score_lines must be at least 1")


@dataclass
class StreamSummary:
    """What was written, with ``ScoreResult.summary``'s keys, and what memory held."""

    lines: int
    sessions: int
    anomalous_sessions: int
    anomalous_lines: int
    suppressed_sessions: int
    unparsed_lines: int
    threshold: float
    line_threshold: float
    format: str
    sessions_by: str
    warnings: list[str] = field(default_factory=list)
    chunks: int = 0
    max_held_lines: int = 0  # most lines in memory at once (the bounded-memory figure)
    spill_bytes: int = 0
    sequences: int = 0  # session sequences (chunks of sessions) the scoring calls looked up
    sequences_scored: int = 0  # of those, the ones the model ran on (the rest: cache hits)
    merged_runs: int = 0  # model calls whose lines went through the on-disk merge

    def summary(self) -> dict:
        keys = ("lines", "sessions", "anomalous_sessions", "anomalous_lines",
                "suppressed_sessions", "unparsed_lines", "threshold", "line_threshold",
                "format", "sessions_by")
        return {k: getattr(self, k) for k in keys}


def supports(sessions: SessionConfig) -> bool:
    """Whether this session rule can be streamed (all but time windows)."""
    return sessions.by != "time"


def worth_streaming(path: str | Path) -> bool:
    """``--stream auto``'s rule: files whose in-memory scoring would need GBs."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            gz = handle.read(2) == GZIP_MAGIC
    except OSError:
        return False  # reading reports it
    return size > (AUTO_STREAM_BYTES // 10 if gz else AUTO_STREAM_BYTES)


# ---- reading --------------------------------------------------------------------------------------
def _gunzip_blocks(handle: BinaryIO, source: str) -> Iterator[bytes]:
    """``log_reader.gunzip_blocks`` (the in-memory path's decoder and rules, its decompressed-size
    bound included: a bomb is refused, not spilled to disk), in blocks of ``READ_BLOCK``."""
    return gunzip_blocks(handle.read, source, log_reader.DEFAULT_MAX_LOG_BYTES, block=READ_BLOCK)


def _raw_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        gz = handle.read(2) == GZIP_MAGIC
        handle.seek(0)
        if gz:
            yield from _gunzip_blocks(handle, str(path))
        else:
            while block := handle.read(READ_BLOCK):
                yield block


def _line_blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes in blocks that end at a newline (the last one: where the file ends)."""
    carry = b""
    for block in _raw_blocks(path):
        data = carry + block if carry else block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut]
    if carry:
        yield carry


@dataclass
class _Survey:
    n_lines: int
    sample: LogLines  # the lines the in-memory path detects the format on
    head: LogLines  # the first HEAD_LINES lines


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """Device, inode and size: what a rotation (a new file at the path) or a rewrite changes."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size


def survey_log(path: Path, source: str) -> _Survey:
    """Pass 0: the line count, the format-detection sample and the first lines."""
    newlines = 0
    blank = True
    first = bytearray()
    last = b""
    for block in _raw_blocks(path):
        if len(first) < _BINARY_SAMPLE:
            first += block[:_BINARY_SAMPLE - len(first)]
        newlines += block.count(b"\n")
        if blank and block.strip():
            blank = False
        last = block[-1:]
    if blank:
        raise LogInputError(f"{source}: the log is empty")
    if _looks_binary(bytes(first)):
        raise LogInputError(f"{source}: this looks like a binary file, not a text log")
    n = newlines + (last != b"\n")
    # ``log_parser._sample``'s positions over the whole log
    wanted = (np.arange(n) if n <= DETECT_SAMPLE
              else np.linspace(0, n - 1, DETECT_SAMPLE).astype(np.int64))
    sample, head, start = [], [], 0
    for block in _line_blocks(path):
        lines, _, _ = decode_lines(block)
        end = start + len(lines)
        if start < HEAD_LINES:
            head.append(lines.slice(0, HEAD_LINES - start))
        lo, hi = np.searchsorted(wanted, [start, end])
        if hi > lo:
            sample.append(lines.take(pa.array(wanted[lo:hi] - start)))
        start = end
        if start >= n or (start >= HEAD_LINES and hi == len(wanted)):
            break

    def joined(parts: list[pa.Array]) -> LogLines:
        return LogLines(pa.concat_arrays(parts) if parts else pa.array([], pa.large_string()),
                        source=source)

    return _Survey(n_lines=n, sample=joined(sample), head=joined(head))


def line_chunks(path: Path, chunk_lines: int) -> Iterator[tuple[pa.LargeStringArray, int, bool]]:
    """Lines in chunks of exactly ``chunk_lines`` (the last: what is left), with the invalid
    UTF-8 lines counted and whether bytes were replaced."""
    held: list[pa.Array] = []
    n_held = invalid = 0
    replaced = False
    for block in _line_blocks(path):
        lines, bad, rep = decode_lines(block)
        invalid += bad
        replaced |= rep
        held.append(lines)
        n_held += len(lines)
        while n_held >= chunk_lines:
            joined = pa.concat_arrays(held) if len(held) > 1 else held[0]
            yield joined.slice(0, chunk_lines), invalid, replaced
            invalid, replaced = 0, False
            rest = joined.slice(chunk_lines)
            held, n_held = ([rest] if len(rest) else []), len(rest)
    if n_held:
        yield (pa.concat_arrays(held) if len(held) > 1 else held[0]), invalid, replaced


# ---- parsing --------------------------------------------------------------------------------------
def _piece_size(n: int) -> int:
    """``parse_log``'s slice length for a log of ``n`` lines."""
    workers = os.cpu_count() or 1
    return min(max(-(-n // workers), MIN_PARSE_CHUNK), MAX_PARSE_CHUNK)


@dataclass
class _Chunk:
    """One chunk being parsed: its slices' futures, then what they gave."""

    start: int
    futures: list
    invalid: int
    replaced: bool


def _work(raw: pa.Array, fmt: LogFormat, pattern: str | None):
    """One slice: ``_parse_piece``, and the session ids of its lines (``id_members``), in a
    worker thread (Arrow's kernels release the GIL)."""
    table, words, fields = _parse_piece(raw, fmt)
    if pattern is None:
        return table, words, fields, None
    try:
        ids = id_members(ParsedLog(table=table, words=words, format=fmt, fields=fields), pattern)
    except FormatError as exc:  # a field no line of this slice has (JSON keys)
        if not FIELD_REFERENCE.match(pattern):
            raise
        ids = exc
    return table, words, fields, ids


def _submit(pool: ThreadPoolExecutor, lines: pa.Array, fmt: LogFormat, start: int, piece: int,
            pattern: str | None, invalid: int = 0, replaced: bool = False) -> _Chunk:
    raw = pc.cast(lines, pa.large_string())
    futures = [pool.submit(_work, raw.slice(at, piece), fmt, pattern)
               for at in range(0, len(raw), piece)]
    return _Chunk(start, futures, invalid, replaced)


def _collect(chunk: _Chunk, fmt: LogFormat, source: str):
    """``parse_log``'s result for the chunk's lines (numbered from ``chunk.start``), and its
    (line, session id) pairs as ``id_members`` gives them (None: windows; an exception: the id
    field is in none of its slices)."""
    parts = [future.result() for future in chunk.futures]
    table = pa.concat_tables([part[0] for part in parts]).combine_chunks()
    n = table.num_rows
    table = table.add_column(0, "line_no", pa.array(
        np.arange(chunk.start + 1, chunk.start + n + 1, dtype=np.int64)))
    fields = concat_fields([part[2] for part in parts], [part[0].num_rows for part in parts])
    parsed = ParsedLog(table=table, words=pa.concat_arrays([part[1] for part in parts]),
                       format=fmt, source=source, fields=fields)
    ids = [part[3] for part in parts]
    if ids[0] is None:
        return parsed, None
    found = [(at, part) for at, part in zip(np.cumsum([0] + [len(p[1]) for p in parts]), ids)
             if not isinstance(part, Exception)]
    if not found:
        return parsed, ids[0]
    local = np.concatenate([part[0] + at for at, part in found]).astype(np.int64)
    sid = pa.concat_arrays([pc.cast(part[1] if isinstance(part[1], pa.Array)
                                    else pa.array(part[1], type=pa.large_string()),
                                    pa.large_string()) for _, part in found])
    return parsed, (local, sid, found[0][1][2])


def parse_lines(lines: pa.Array, fmt: LogFormat, source: str = "<input>") -> ParsedLog:
    """``parse_log`` of one chunk with a known format (lines numbered from 1), its stack traces'
    lines marked as in ``parse_log``."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parsed = _collect(_submit(pool, lines, fmt, 0, _piece_size(len(lines)), None),
                          fmt, source)[0]
    return ParsedLog(table=parsed.table, words=parsed.words, format=fmt, source=source,
                     fields=parsed.fields,
                     event_of=_continuations(parsed.table, fmt, parsed.fields))


def _first_line_strong(lines: pa.Array, fmt: LogFormat) -> bool:
    """Whether the first of ``lines`` (the next chunk's) continues an event whatever stands next
    to it: a chunk's last row may be an exception line that only a frame below makes one."""
    table, _, fields = _parse_piece(pc.cast(lines.slice(0, 1), pa.large_string()), fmt)
    marks = continuation_marks(table, fmt, fields)
    return marks is not None and bool(marks.strong[0])


@dataclass
class _Events:
    """What a chunk needs from the chunks before it to place its stack-trace lines, as
    ``sessions.follow_events`` places them in memory."""

    strong_last: bool = False  # the previous chunk's last row continues whatever follows it
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # ``codes``: the id sessions of the last event seen (a stack trace that starts a chunk
    # continues it); empty when that event has no id (its trace's lines are then id-less)
    last_event: int = 0  # the last event's line (windows: its windows are the trace's)

    def continuing(self, parsed: ParsedLog, start: int, after: pa.Array | None) -> np.ndarray | None:
        """Rows of this chunk that continue an event (None: none can)."""
        marks = continuation_marks(parsed.table, parsed.format, parsed.fields)
        before, self.strong_last = self.strong_last, marks is not None and bool(marks.strong[-1])
        if marks is None:
            return None
        strong_after = (after is not None and bool(marks.exception[-1]) and not marks.strong[-1]
                        and _first_line_strong(after, parsed.format))
        return continuing_rows(marks, before, strong_after, log_start=start == 0)

    def events_of(self, cont: np.ndarray | None, start: int, m: int) -> np.ndarray:
        """The line of the event each row of this chunk belongs to (``ParsedLog.event_of``)."""
        index = np.arange(start, start + m, dtype=np.int64)
        head = index if cont is None else np.maximum.accumulate(np.where(cont, -1, index))
        head[head < 0] = self.last_event
        if m:
            self.last_event = int(head[-1])
        return head


class _Sessions:
    """Session codes in order of first appearance, with each session's first and last line."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.ids: list[str] = []
        self._first = np.zeros(1024, dtype=np.int64)
        self._last = np.zeros(1024, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def first(self) -> np.ndarray:
        return self._first[:len(self.ids)]

    @property
    def last(self) -> np.ndarray:
        return self._last[:len(self.ids)]

    def codes(self, keys: list[str], first_line: np.ndarray) -> np.ndarray:
        """Codes of ``keys`` (in first-appearance order), new ones numbered on."""
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            code = self.code.get(key)
            if code is None:
                code = self.code[key] = len(self.ids)
                self.ids.append(key)
                if code >= len(self._first):
                    self._first = np.resize(self._first, 2 * len(self._first))
                    self._last = np.resize(self._last, 2 * len(self._last))
                self._first[code] = self._last[code] = first_line[i]
            out[i] = code
        return out

    def saw(self, codes: np.ndarray, lines: np.ndarray) -> None:
        np.maximum.at(self._last, codes, lines)


@dataclass
class _Rule:
    by: str  # 'id' or 'window'
    pattern: str | None
    size: int = 0
    step: int = 0
    n_windows: int = 0
    strategy: str = ""


# ---- the parsed, spilled log ----------------------------------------------------------------------
@dataclass
class SpilledLog:
    """Passes 0 and 1 done: the log parsed into a temporary Arrow file, every line's sessions
    known. ``score`` is pass 2; the folder is removed by ``close`` (or ``with``)."""

    source: str
    format: LogFormat
    detection: FormatGuess | None
    config: SessionConfig
    rule: _Rule
    n_lines: int
    n_unparsed: int
    has_labels: bool
    invalid_lines: int
    replaced_bytes: bool
    ids: np.ndarray  # session id per code (object)
    first: np.ndarray  # first line index per code
    last: np.ndarray  # last line index per code
    folder: Path
    chunks: int
    spill_bytes: int
    chunk_lines: int = DEFAULT_CHUNK_LINES  # lines written per step of a merge
    score_lines: int = DEFAULT_SCORE_LINES
    present: np.ndarray | None = None  # codes that are sessions (None: all; windows: not empty)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def batches(self) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(self.folder / _SPILL_NAME), "rb") as handle:
            reader = pa.ipc.open_stream(handle)
            yield from reader

    def score(
        self, detector: TinyLogBERTDetector, lines_out: str | Path,
        sessions_out: str | Path | None = None, threshold: float | None = None,
    ) -> StreamSummary:
        """Pass 2: score and write (see the module docstring)."""
        return _Scorer(self, detector, lines_out, sessions_out, threshold).run()


def spill(
    path: str | Path, log_format: str | LogFormat = "auto", prefer: LogFormat | None = None,
    sessions: SessionConfig | None = None, config: StreamConfig | None = None,
) -> SpilledLog:
    """Passes 0 and 1 (they need the trained format and session rule, not the model: the CLI
    runs them while the model loads). ``sessions``: the rule to use (None: the format's)."""
    sessions = sessions or SessionConfig()
    config = config or StreamConfig()
    path = check_readable(path)
    source = str(path)
    if not supports(sessions):
        raise FormatError("time windows are scored in memory only; use --stream off")
    identity = _file_identity(path)  # to tell a log rotated or rewritten between the passes
    survey = survey_log(path, source)
    if isinstance(log_format, str) and log_format.strip().lower() == "auto":
        detection = _preferred_format(survey.sample, prefer) or detect_format(survey.sample)
        fmt = detection.format
    else:
        detection, fmt = None, get_format(log_format or "auto")
    head = parse_lines(survey.head.lines, fmt, source)
    by, pattern = resolve_rule(head, sessions)
    rule = _Rule(by=by, pattern=pattern)
    if by == "window":
        rule.size = sessions.window_size or fmt.window_size
        rule.step = sessions.window_step or rule.size
        rule.n_windows = len(window_starts(survey.n_lines, rule.size, rule.step))
        rule.strategy = f"windows of {rule.size} lines (step {rule.step})"
    chunk = config.chunk_lines
    if fmt.is_jsonl:  # JSON fields are kept per parse slice: cut where the in-memory path cuts
        chunk = _piece_size(survey.n_lines)
    # Named with this process's id: a killed run's spill is removed by the next one.
    folder = temp_folder(Path(config.spill_dir or tempfile.gettempdir()) / SPILL_FOLDER)
    try:
        with write_errors(folder / _SPILL_NAME, what=f"the parsed log's temporary copy in "
                                                     f"{folder.parent} (streaming keeps it there)"):
            spilled = _spill(path, source, fmt, detection, sessions, rule, survey.n_lines,
                             chunk, folder)
        if _file_identity(path) != identity:
            raise LogInputError(f"{source}: was replaced or changed while it was read (rotated?); "
                                "score it again, or score a copy")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    spilled.chunk_lines, spilled.score_lines = config.chunk_lines, config.score_lines
    return spilled


def _spill(path: Path, source: str, fmt: LogFormat, detection: FormatGuess | None,
           config: SessionConfig, rule: _Rule, n_expected: int, chunk_lines: int,
           folder: Path) -> SpilledLog:
    registry = _Sessions()
    start = unparsed = invalid = chunks = orphans = 0
    labelled = replaced = False
    orphan_last: dict[int, int] = {}  # orphan group -> its last line number so far
    events = _Events()
    # Windows: a stack trace cut by a window's end stays in its event's windows, so a window may
    # end later than its arithmetic end, or hold no line at all (it is then no session)
    window_seen = np.zeros(rule.n_windows, dtype=bool)
    window_last = np.zeros(rule.n_windows, dtype=np.int64)
    field_error: FormatError | None = None
    field_seen = False
    writer = None
    spill_path = folder / _SPILL_NAME
    sink = pa.OSFile(str(spill_path), "wb")
    workers = os.cpu_count() or 1
    piece = _piece_size(n_expected) if fmt.is_jsonl else max(-(-chunk_lines // workers), 1)
    pattern = rule.pattern if rule.by == "id" else None
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)

    def parsed_chunks():
        """Chunk k+1 is read and parsed while chunk k is numbered and spilled (with k+1's lines:
        whether k's last row continues an event may depend on the line after it)."""
        if fmt.joins_partials:
            yield from _joined_chunks(path, chunk_lines, fmt, source, pool, pattern)
            return
        at, ahead = 0, None
        for lines, bad, rep in line_chunks(path, chunk_lines):
            chunk = _submit(pool, lines, fmt, at, piece, pattern, bad, rep)
            at += len(lines)
            if ahead is not None:
                yield ahead, _collect(ahead, fmt, source), lines
            ahead = chunk
        if ahead is not None:
            yield ahead, _collect(ahead, fmt, source), None

    try:
        for chunk, (parsed, ids), after in parsed_chunks():
            invalid += chunk.invalid
            replaced |= chunk.replaced
            m = len(parsed)
            unparsed += parsed.n_unparsed
            labelled = labelled or parsed.table["label"].null_count < m
            if rule.by == "window":
                line, codes = _window_pairs(
                    start, m, rule, events.events_of(events.continuing(parsed, start, after),
                                                     start, m))
                window_seen[codes] = True
                np.maximum.at(window_last, codes, line)
            else:
                if isinstance(ids, Exception):
                    field_error = field_error or ids
                    local, sid = np.zeros(0, dtype=np.int64), pa.array([], pa.large_string())
                else:
                    local, sid, rule.strategy = ids
                    field_seen = True
                line, codes, orphans = _id_pairs(parsed, local, sid, start, orphans,
                                                 orphan_last, registry,
                                                 events.continuing(parsed, start, after), events)
            counts = np.bincount(line - start, minlength=m)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
            batch = pa.RecordBatch.from_arrays(
                [*(parsed.table[c].combine_chunks() for c in LINE_COLUMNS), parsed.words,
                 pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes))],
                names=[*LINE_COLUMNS, "words", "sessions"],
            )
            if writer is None:
                schema = batch.schema
                writer = pa.ipc.new_stream(
                    sink, schema, options=pa.ipc.IpcWriteOptions(compression=_SPILL_CODEC))
            writer.write_batch(batch if batch.schema == schema else batch.cast(schema))
            start += m
            chunks += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            writer.close()
        sink.close()
    if start != n_expected:  # the file changed between the passes
        raise LogInputError(f"{source}: changed while it was read ({n_expected:,} lines, then "
                            f"{start:,})")
    if rule.by == "id" and FIELD_REFERENCE.match(rule.pattern or "") and not field_seen:
        raise field_error
    if fmt.name != GENERIC.name and unparsed == start:  # ``require_some_parsed``
        raise FormatError(
            f"{source}: no line matches format {fmt.name!r}; "
            "try --format auto or give the format as '<Date> <Time> <Level>: <Content>'"
        )
    present = None
    if rule.by == "window":
        w = np.arange(rule.n_windows, dtype=np.int64)
        first = w * rule.step
        ids = np.array([f"L{a + 1}-{b + 1}" for a, b in
                        zip(first, np.minimum(first + rule.size, start) - 1)], dtype=object)
        last = window_last
        present = None if window_seen.all() else window_seen
    else:
        ids = np.array(registry.ids, dtype=object)
        first, last = registry.first.copy(), registry.last.copy()
        for code, key in enumerate(registry.ids):
            if key.startswith(_ORPHAN_KEY):  # named by their first and last line, as in memory
                group = int(key[len(_ORPHAN_KEY):])
                ids[code] = f"no-id:{first[code] + 1}-{orphan_last[group]}"
    return SpilledLog(
        source=source, format=fmt, detection=detection, config=config, rule=rule, n_lines=start,
        n_unparsed=unparsed, has_labels=labelled, invalid_lines=invalid, replaced_bytes=replaced,
        ids=ids, first=first, last=last, folder=folder, chunks=chunks,
        spill_bytes=spill_path.stat().st_size, present=present,
    )


def _joined_chunks(path: Path, chunk_lines: int, fmt: LogFormat, source: str,
                   pool: ThreadPoolExecutor, pattern: str | None):
    """``parsed_chunks`` for formats whose partial records join the next full one (CRI): a
    message's ``P`` records are joined with the ``F`` after them (and take its keys), so a
    chunk ends where no stream has a message open; the open message's lines, and the lines
    after them, begin the next chunk. One slice per chunk, parsed in turn, as the in-memory
    path parses the whole log in one slice. (A stream whose message never ends holds
    everything after it: as in memory, where the log is one slice.)"""
    at, carry, invalid, replaced = 0, None, 0, False
    chunks = line_chunks(path, chunk_lines)
    read = next(chunks, None)
    while read is not None:
        lines, bad, rep = read
        read = next(chunks, None)
        if carry is not None:
            lines = pa.concat_arrays([carry, pc.cast(lines, carry.type)])
        invalid, replaced = invalid + bad, replaced or rep
        chunk = _submit(pool, lines, fmt, at, max(len(lines), 1), pattern, invalid, replaced)
        parsed, ids = _collect(chunk, fmt, source)
        keep = len(parsed) if read is None else _open_message_start(parsed)
        carry = lines.slice(keep) if keep < len(parsed) else None
        if keep == 0:  # every line is in a message still open: read on
            continue
        if carry is not None:
            parsed, ids = _first_rows(parsed, ids, keep)
        yield chunk, (parsed, ids), carry if carry is not None else (
            read[0] if read is not None else None)
        at += keep
        invalid, replaced = 0, False


def _open_message_start(parsed: ParsedLog) -> int:
    """The first row of a message still open at the chunk's end: a ``P`` record with no ``F``
    of its stream after it (the row count when none is open)."""
    if parsed.fields is None:
        return len(parsed)
    ok = parsed.table["parse_ok"].to_pylist()
    tags, streams = parsed.fields["Tag"].to_pylist(), parsed.fields["Stream"].to_pylist()
    open_at: dict[str, int] = {}
    for i, (good, tag, stream) in enumerate(zip(ok, tags, streams)):
        if not good:
            continue
        if tag == "P":
            open_at.setdefault(stream, i)
        else:
            open_at.pop(stream, None)
    return min(open_at.values(), default=len(parsed))


def _first_rows(parsed: ParsedLog, ids, keep: int):
    """The first ``keep`` rows of a parsed chunk, with their (line, session id) pairs."""
    head = ParsedLog(table=parsed.table.slice(0, keep), words=parsed.words.slice(0, keep),
                     format=parsed.format, source=parsed.source,
                     fields=None if parsed.fields is None else parsed.fields.slice(0, keep))
    if ids is None or isinstance(ids, Exception):
        return head, ids
    local, sid, strategy = ids
    mine = local < keep
    return head, (local[mine], sid.filter(pa.array(mine)), strategy)


def _distinct(codes: np.ndarray) -> np.ndarray:
    """Sorted distinct codes (a bincount over their range: no hashing, no sort)."""
    if not len(codes):
        return codes
    lo = int(codes.min())
    return np.flatnonzero(np.bincount(codes - lo)) + lo


def _window_pairs(start: int, m: int, rule: _Rule,
                  event: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(line, window) of lines ``start .. start + m``, windows ascending per line (as
    ``_by_count`` lists them); a line is in the windows of its event's line (``event``: a stack
    trace's lines follow their event, as ``sessions.follow_events`` places them)."""
    i = np.arange(start, start + m, dtype=np.int64)
    at = i if event is None else event
    lo = np.maximum(0, (at - rule.size) // rule.step + 1)
    hi = np.minimum(at // rule.step, rule.n_windows - 1)
    counts = hi - lo + 1
    line = np.repeat(i, counts)
    ends = np.cumsum(counts)
    rank = np.arange(len(line)) - np.repeat(ends - counts, counts)
    return line, np.repeat(lo, counts) + rank


def _id_pairs(
    parsed: ParsedLog, local: np.ndarray, sid: pa.Array | np.ndarray, start: int, orphans: int,
    orphan_last: dict[int, int], registry: _Sessions, cont: np.ndarray | None = None,
    events: _Events | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(line, session code) of a chunk as ``sessions._by_id`` pairs them, codes numbered in the
    log's order of first appearance; rows that continue an event (``cont``) take its sessions,
    also when it stands in an earlier chunk (``events``); id-less lines form groups of
    ``ORPHAN_GROUP`` across chunks. Returns the pairs and the orphans counted so far."""
    m = len(parsed)
    sid = pc.cast(sid if isinstance(sid, (pa.Array, pa.ChunkedArray)) else
                  pa.array(sid, type=pa.large_string()), pa.large_string())
    if isinstance(sid, pa.ChunkedArray):
        sid = sid.combine_chunks()
    lead = 0  # rows at the chunk's start that continue the previous chunk's last event
    if cont is not None and cont.any():
        lead = int(np.argmin(cont)) if not cont.all() else m
        own = ~cont[local]
        local, sid = local[own], sid.filter(pa.array(own))
        head = np.maximum.accumulate(np.where(cont, -1, np.arange(m)))
        head[:lead] = np.arange(lead)  # placed below, from ``events``
        local, sid = follow_events(head, local, sid)
    carried = events.codes if events is not None and lead else np.zeros(0, dtype=np.int64)
    covered = np.zeros(m, dtype=bool)
    covered[local] = True
    if len(carried):
        covered[:lead] = True
    lonely = np.flatnonzero(~covered)
    n_id = len(local)
    if len(lonely):
        group = (orphans + np.arange(len(lonely))) // ORPHAN_GROUP
        ends = np.r_[np.flatnonzero(np.diff(group)), len(group) - 1]  # each group's last here
        for g, at in zip(group[ends], lonely[ends]):
            orphan_last[int(g)] = int(start + at + 1)
        keys = pa.array([f"{_ORPHAN_KEY}{g}" for g in group], type=pa.large_string())
        local = np.concatenate([local, lonely]).astype(np.int64)
        sid = pa.concat_arrays([sid, keys])
        orphans += len(lonely)
    order = np.argsort(local, kind="stable")
    local = local[order]
    encoded = sid.take(pa.array(order)).dictionary_encode()
    codes_local = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    keys = encoded.dictionary.to_pylist()
    _, first_at = np.unique(codes_local, return_index=True)  # each key's first pair here
    codes = registry.codes(keys, local[first_at] + start)[codes_local]
    if events is not None and (cont is None or lead < m):
        # this chunk's last event: the one a stack trace starting the next chunk continues
        last_event = m - 1 if cont is None else int(np.flatnonzero(~cont)[-1])
        events.codes = codes[(order < n_id) & (local == last_event)]
    if len(carried):  # their lines stand before every other pair of the chunk
        local = np.concatenate([np.repeat(np.arange(lead), len(carried)), local])
        codes = np.concatenate([np.tile(carried, lead), codes])
    line = local + start
    registry.saw(codes, line)
    return line, codes, orphans


class _BatchLog(ParsedLog):
    """A slice of a log whose labels are the whole log's: ``has_labels`` is the log's, so every
    batch writes the same columns."""

    labelled: bool

    @property
    def has_labels(self) -> bool:
        return self.labelled


def _batch_log(table: pa.Table, words: pa.Array, spilled: SpilledLog) -> _BatchLog:
    log = _BatchLog(table=table, words=words, format=spilled.format,
                    detection=spilled.detection, source=spilled.source)
    object.__setattr__(log, "labelled", spilled.has_labels)
    return log


# ---- pass 2 ---------------------------------------------------------------------------------------
# What scoring reads of a held line (as codes), beside parse_ok; the timestamp gives SESSIONS.csv
# its first_time / last_time (times repeat within a second: few distinct values).
_KEPT = ("timestamp", "level", "label", "words")
_RESTORED = ("timestamp", "level", "component", "message", "parse_ok")  # read again at writing
_RUN_BATCH = 8192  # rows per record batch of a scored run on disk


class _Growing:
    """A numpy column that grows at its end and is dropped from its start in amortised
    constant time per element (a held log of millions of lines is not copied per chunk)."""

    def __init__(self, dtype) -> None:
        self._buf = np.zeros(1024, dtype=dtype)
        self._lo = self._hi = 0

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def values(self) -> np.ndarray:
        return self._buf[self._lo:self._hi]

    def extend(self, new: np.ndarray) -> None:
        n = len(new)
        if self._hi + n > len(self._buf):
            live = self.values
            buf = np.empty(int(1.25 * (len(live) + n)) + 1024, dtype=self._buf.dtype)
            buf[:len(live)] = live
            self._buf, self._lo, self._hi = buf, 0, len(live)
        self._buf[self._hi:self._hi + n] = new
        self._hi += n

    def drop(self, n: int) -> None:
        self._lo += n


class _Codes:
    """The distinct values of a column, numbered: a held line keeps a code, not its text (a
    log's lines repeat a few thousand normalised texts)."""

    def __init__(self) -> None:
        self.code: dict = {}
        self.values: list = []
        self.type: pa.DataType | None = None
        self._array: pa.Array | None = None

    def encode(self, column: pa.Array) -> np.ndarray:
        if self.type is None:
            self.type = column.type
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        local = np.array([self._code(key) for key in encoded.dictionary.to_pylist()],
                         dtype=np.int32)
        return local[encoded.indices.to_numpy(zero_copy_only=False)]

    def _code(self, key) -> int:
        code = self.code.get(key)
        if code is None:
            code = self.code[key] = len(self.values)
            self.values.append(key)
            self._array = None
        return code

    def decode(self, codes: np.ndarray) -> pa.Array:
        if self._array is None:
            self._array = pa.array(self.values, type=self.type)
        return self._array.take(pa.array(codes))


class _SpillCursor:
    """The spilled lines once more, in order: the columns written as they were read, which
    the held state does not keep."""

    def __init__(self, spilled: SpilledLog) -> None:
        self._batches = spilled.batches()
        self._held: list[pa.Table] = []
        self._n = 0

    def take(self, n: int) -> pa.Table:
        while self._n < n:
            table = pa.Table.from_batches([next(self._batches)]).select(list(_RESTORED))
            self._held.append(table)
            self._n += table.num_rows
        table = pa.concat_tables(self._held) if len(self._held) > 1 else self._held[0]
        rest = table.slice(n)
        self._held, self._n = ([rest] if rest.num_rows else []), rest.num_rows
        return table.slice(0, n)

    def close(self) -> None:
        self._batches.close()


class _RunCursor:
    """One scored run on disk (rows in line order), read forward batch by batch."""

    def __init__(self, path: Path) -> None:
        self._file = pa.OSFile(str(path), "rb")
        self._reader = pa.ipc.open_file(self._file)
        self._next = 0
        self._buf: pa.Table | None = None

    def upto(self, line_no: int) -> list[pa.Table]:
        """The next rows whose line number is at most ``line_no``."""
        parts = []
        while True:
            if self._buf is None:
                if self._next == self._reader.num_record_batches:
                    break
                self._buf = pa.Table.from_batches([self._reader.get_batch(self._next)])
                self._next += 1
            numbers = self._buf["line_no"].to_numpy()
            k = int(np.searchsorted(numbers, line_no, side="right"))
            parts.append(self._buf.slice(0, k))
            if k < len(numbers):
                self._buf = self._buf.slice(k)
                break
            self._buf = None
        return parts

    def close(self) -> None:
        self._file.close()


class _Scorer:
    """Holds, per line not yet final (and per line that sessions still to be scored need), only
    what scoring reads: codes of its level, label and normalised text, and its sessions."""

    def __init__(self, spilled: SpilledLog, detector: TinyLogBERTDetector, lines_out,
                 sessions_out, threshold: float | None) -> None:
        self.s = spilled
        self.detector = detector
        self.lines_out, self.sessions_out = lines_out, sessions_out
        self.threshold = threshold
        self.codes = {name: _Codes() for name in _KEPT}
        self.kept = {name: _Growing(np.int32) for name in _KEPT}  # per held line
        self.parse_ok = _Growing(np.bool_)
        self.schema: pa.Schema | None = None
        self.base = 0  # global index of the first held line
        self.read = 0  # lines read from the spill
        self.done = 0  # lines written
        self.pair_line = _Growing(np.int64)  # (line, session) pairs of held lines, in line order
        self.pair_code = _Growing(np.int64)
        self.scored = np.zeros(len(spilled.ids), dtype=bool)  # session rows made
        self.waiting: list[tuple[np.ndarray, pa.Table]] = []  # session rows not yet written
        self.next_session = 0  # sessions written
        # the codes that are sessions, in order (windows left empty by stack traces are not)
        self.session_codes = (np.arange(len(spilled.ids)) if spilled.present is None
                              else np.flatnonzero(spilled.present))
        self.line_writer = self.session_writer = None
        self.origin = _SpillCursor(spilled)
        self.runs = 0
        self.summary = StreamSummary(
            lines=0, sessions=0, anomalous_sessions=0, anomalous_lines=0,
            suppressed_sessions=0, unparsed_lines=spilled.n_unparsed,
            threshold=detector.threshold_ if threshold is None else float(threshold),
            line_threshold=detector.line_threshold_,
            format=spilled.detection.describe() if spilled.detection else spilled.format.name,
            sessions_by=spilled.rule.strategy, chunks=spilled.chunks,
            spill_bytes=spilled.spill_bytes,
        )
        self.new_counts: dict[str, int] = {}  # lines outside the vocabulary, by text

    def run(self) -> StreamSummary:
        from tinylogbert.scoring.fit_check import (
            drift_warnings_for,
            fit_warnings_for,
            measure_drift,
            replaced_bytes_warnings,
            unlike_known_lines,
        )

        cache = self.detector._cache()
        hits, misses = cache.hits, cache.misses
        # Written under temporary names, renamed into place together once complete: a killed
        # or failed run leaves the earlier files, or none, never a truncated CSV.
        with atomic_files(self.lines_out, self.sessions_out) as (lines_tmp, sessions_tmp):
            self.lines_tmp, self.sessions_tmp = lines_tmp, sessions_tmp
            try:
                for batch in self.s.batches():
                    self._take(batch)
                    self._flush(final=False)
                self._flush(final=True)
            finally:
                self.origin.close()
                for writer, target in ((self.line_writer, self.lines_out),
                                       (self.session_writer, self.sessions_out)):
                    if writer is not None:
                        with write_errors(target):
                            writer.close()
            if self.line_writer is None:  # nothing written: cannot happen for a non-empty log
                raise LogInputError(f"{self.s.source}: the log has no lines")
        s = self.summary
        s.sequences = cache.hits + cache.misses - hits - misses
        s.sequences_scored = cache.misses - misses
        unknown = unlike_known_lines(self.detector, self.new_counts) / self.s.n_lines
        misfit = fit_warnings_for(self.detector, self.s.format, unknown, self.s.source)
        drift = [] if misfit else drift_warnings_for(self.detector, measure_drift(
            self.detector, self.new_counts, self.s.n_lines, s.sessions, s.anomalous_sessions),
            self.s.source)
        s.warnings = (replaced_bytes_warnings(self.s.source, self.s.n_lines, self.s.invalid_lines,
                                              self.s.replaced_bytes) + misfit + drift)
        return s

    def _take(self, batch: pa.RecordBatch) -> None:
        """Hold one spilled chunk as codes, with its (line, session) pairs."""
        m = batch.num_rows
        self.schema = self.schema or batch.schema
        sessions = batch.column("sessions")
        offsets = sessions.offsets.to_numpy()
        codes = sessions.values.to_numpy().astype(np.int64)
        line = np.repeat(np.arange(self.read, self.read + m, dtype=np.int64), np.diff(offsets))
        for name in _KEPT:
            self.kept[name].extend(self.codes[name].encode(batch.column(name)))
        self.parse_ok.extend(batch.column("parse_ok").to_numpy(zero_copy_only=False))
        for text, count in new_line_counts(self.detector, batch.column("words")).items():
            self.new_counts[text] = self.new_counts.get(text, 0) + count
        self.pair_line.extend(line)
        self.pair_code.extend(codes)
        self.read += m
        self.summary.max_held_lines = max(self.summary.max_held_lines, self.read - self.base)

    def _flush(self, final: bool) -> None:
        """Score what is complete, write what is final, drop what no later batch needs."""
        if not len(self.pair_code):
            return
        pair_line, pair_code = self.pair_line.values, self.pair_code.values
        pending = pair_line >= self.done
        open_pending = pending & (self.s.last[pair_code] >= self.read)
        until = self.read if final or not open_pending.any() else \
            int(pair_line[open_pending].min())
        # The sessions of the lines that are final now (all complete). A complete session
        # whose lines all wait is scored later, with them: once, not twice.
        wanted = _distinct(pair_code[pending & (pair_line < until)])
        if len(wanted):
            self._score(wanted, wanted[~self.scored[wanted]], until)
        self.done = until
        later = pair_line >= until
        keep_from = until
        if later.any():
            keep_from = min(until, int(self.s.first[pair_code[later]].min()))
        self._drop_before(keep_from)

    def _score(self, wanted: np.ndarray, fresh: np.ndarray, until: int) -> None:
        """Score the sessions ``wanted`` (sorted codes), at most ``score_lines`` lines per model
        call; write lines ``done .. until`` and queue the rows of the ``fresh`` sessions."""
        lo_code = int(wanted[0])
        chosen = np.zeros(int(wanted[-1]) - lo_code + 1, dtype=bool)
        chosen[wanted - lo_code] = True
        shifted = self.pair_code.values - lo_code
        member = (shifted >= 0) & (shifted < len(chosen))
        member[member] = chosen[shifted[member]]
        p_line, p_code = self.pair_line.values[member], self.pair_code.values[member]
        group = self._groups(wanted, p_line, p_code)
        if group is None:
            self._write_lines(self._score_group(wanted, fresh, p_line, p_code, until))
            return
        # Sessions that share no line, scored apart; each call's lines go to a run on disk, and
        # the runs are merged in line order (a line's sessions are all in one call).
        session_group = group[np.searchsorted(wanted, p_code)]
        fresh_group = group[np.searchsorted(wanted, fresh)]
        runs = []
        try:
            for g in range(int(group.max()) + 1):
                pairs = session_group == g
                rows = self._score_group(wanted[group == g], fresh[fresh_group == g],
                                         p_line[pairs], p_code[pairs], until)
                runs.append(self.s.folder / f"run-{self.runs}.arrow")
                self.runs += 1
                self.summary.merged_runs += 1
                with pa.OSFile(str(runs[-1]), "wb") as sink, \
                        pa.ipc.new_file(sink, rows.schema) as writer:
                    writer.write_table(rows, max_chunksize=_RUN_BATCH)
            self._merge(runs, until)
        finally:
            for path in runs:
                path.unlink(missing_ok=True)

    def _groups(self, wanted: np.ndarray, p_line: np.ndarray,
                p_code: np.ndarray) -> np.ndarray | None:
        """A group per session of ``wanted`` (None: one call is small enough): sessions joined
        by a shared line stay together; groups hold about ``score_lines`` lines each."""
        budget = self.s.score_lines
        if len(p_line) <= budget:
            return None
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(wanted)
        rank = np.searchsorted(wanted, p_code)
        shared = np.flatnonzero(p_line[1:] == p_line[:-1])
        graph = coo_matrix((np.ones(len(shared), dtype=np.int8),
                            (rank[shared], rank[shared + 1])), shape=(n, n))
        n_parts, part = connected_components(graph, directed=False)
        if n_parts == 1:
            return None
        first = np.full(n_parts, n, dtype=np.int64)  # parts in order of their first session
        np.minimum.at(first, part, np.arange(n))
        order = np.argsort(first, kind="stable")
        size = np.bincount(part[rank], minlength=n_parts)[order]
        part_group = np.empty(n_parts, dtype=np.int64)
        part_group[order] = (np.cumsum(size) - size) // budget
        _, dense = np.unique(part_group, return_inverse=True)
        return dense[part]

    def _score_group(self, wanted: np.ndarray, fresh: np.ndarray, p_line: np.ndarray,
                     p_code: np.ndarray, until: int) -> pa.Table:
        """Score the sessions ``wanted`` on a sub-log of exactly their lines (``p_line``,
        ``p_code``: their pairs); returns the rows of its lines ``done .. until``, queues the
        rows of the ``fresh`` sessions."""
        lines = p_line[np.r_[True, p_line[1:] != p_line[:-1]]]  # pairs are in line order
        order = np.argsort(p_code, kind="stable")  # by session, line order kept within each
        rank = np.searchsorted(wanted, p_code[order])
        index = SessionIndex(
            ids=self.s.ids[wanted],
            offsets=np.concatenate([[0], np.cumsum(np.bincount(rank, minlength=len(wanted)))]
                                   ).astype(np.int64),
            members=np.searchsorted(lines, p_line[order]).astype(np.int64),
            line_session=self._joined_ids(lines),
            strategy=self.s.rule.strategy,
        )
        table, words = self._sub_table(lines)
        log = _batch_log(table, words, self.s)
        log.session_cache[self.s.config] = index
        result = self.detector.score(log, threshold=self.threshold, sessions=self.s.config,
                                     embeddings=False)
        lo, hi = np.searchsorted(lines, [self.done, until])
        new = np.searchsorted(wanted, fresh)
        self.scored[fresh] = True
        rows = result.session_csv_table().take(pa.array(new))
        s = self.summary
        s.sessions += rows.num_rows
        s.anomalous_sessions += int(pc.sum(rows["is_anomaly"]).as_py() or 0)
        if "suppressed_by" in rows.column_names:
            s.suppressed_sessions += int(pc.sum(pc.not_equal(rows["suppressed_by"], "")).as_py()
                                         or 0)
        if self.sessions_out is not None:
            self.waiting.append((fresh, rows))
            self._write_sessions()
        return result.line_table.slice(int(lo), int(hi - lo))

    def _joined_ids(self, lines: np.ndarray) -> pa.Array:
        """Each line's session ids, ';'-joined, from all its held pairs."""
        pair_line, pair_code = self.pair_line.values, self.pair_code.values
        lo = np.searchsorted(pair_line, lines, side="left")
        hi = np.searchsorted(pair_line, lines, side="right")
        ids = self.s.ids
        joined = ids[pair_code[lo]]
        for i in np.flatnonzero(hi - lo > 1):  # lines of several sessions (few)
            joined[i] = ";".join(ids[pair_code[lo[i]:hi[i]]])
        return pa.array(joined, type=pa.large_string())

    def _sub_table(self, lines: np.ndarray) -> tuple[pa.Table, pa.Array]:
        """The held ``lines`` as a parsed table; the columns scoring does not read are null
        here and put back from the spill when the lines are written."""
        at = lines - self.base
        n = len(lines)
        columns = {
            "line_no": pa.array(lines + 1),
            "timestamp": self.codes["timestamp"].decode(self.kept["timestamp"].values[at]),
            "level": self.codes["level"].decode(self.kept["level"].values[at]),
            "label": self.codes["label"].decode(self.kept["label"].values[at]),
            "parse_ok": pa.array(self.parse_ok.values[at]),
        }
        schema = self.schema
        table = pa.table([columns[name] if name in columns else
                          pa.nulls(n, schema.field(name).type) for name in LINE_COLUMNS],
                         names=list(LINE_COLUMNS))
        return table, self.codes["words"].decode(self.kept["words"].values[at])

    def _merge(self, runs: list[Path], until: int) -> None:
        """Write lines ``done .. until`` from sorted runs, a chunk of lines at a time."""
        cursors = [_RunCursor(path) for path in runs]
        try:
            at = self.done
            while at < until:
                end = min(at + self.s.chunk_lines, until)
                parts = [part for cursor in cursors for part in cursor.upto(end) if part.num_rows]
                table = pa.concat_tables(parts)
                self._write_lines(table.take(pc.sort_indices(table["line_no"])))
                at = end
        finally:
            for cursor in cursors:
                cursor.close()

    def _write_lines(self, rows: pa.Table) -> None:
        """Write the next lines' rows, with their own columns as the spill holds them."""
        if not rows.num_rows:
            return
        origin = self.origin.take(rows.num_rows)
        for name in _RESTORED:
            rows = rows.set_column(rows.schema.get_field_index(name), name,
                                   origin[name])
        with write_errors(self.lines_out):
            if self.line_writer is None:
                self.line_writer = pacsv.CSVWriter(str(self.lines_tmp), rows.schema)
            self.line_writer.write_table(rows)
        self.summary.lines += rows.num_rows
        self.summary.anomalous_lines += int(pc.sum(rows["is_anomaly"]).as_py() or 0)

    def _write_sessions(self) -> None:
        """Session rows in order of first appearance: the run that follows the last written."""
        codes = np.concatenate([c for c, _ in self.waiting])
        rows = pa.concat_tables([t for _, t in self.waiting])
        order = np.argsort(codes, kind="stable")
        codes, rows = codes[order], rows.take(pa.array(order))
        expected = self.session_codes[self.next_session:self.next_session + len(codes)]
        gap = codes != np.pad(expected, (0, len(codes) - len(expected)), constant_values=-1)
        run = int(np.argmax(gap)) if gap.any() else len(codes)
        if run:
            ready = rows.slice(0, run)
            with write_errors(self.sessions_out):
                if self.session_writer is None:
                    self.session_writer = pacsv.CSVWriter(str(self.sessions_tmp), ready.schema)
                self.session_writer.write_table(ready)
            self.next_session += run
        self.waiting = [(codes[run:], rows.slice(run))] if run < len(codes) else []

    def _drop_before(self, line: int) -> None:
        drop = int(np.searchsorted(self.pair_line.values, line))
        self.pair_line.drop(drop)
        self.pair_code.drop(drop)
        if line > self.base:
            for column in (*self.kept.values(), self.parse_ok):
                column.drop(line - self.base)
            self.base = line


# ---- one call ---------------------------------------------------------------------------------------
def score_file(
    detector: TinyLogBERTDetector, path: str | Path, lines_out: str | Path,
    sessions_out: str | Path | None = None, options: ScoreOptions | None = None,
    config: StreamConfig | None = None,
) -> StreamSummary:
    """Score the log file ``path`` into ``lines_out`` (LINES.csv) and ``sessions_out``
    (SESSIONS.csv) in bounded memory: the files ``ScoreResult.write_lines_csv`` and
    ``write_sessions_csv`` would write for the whole log, byte for byte."""
    from tinylogbert.pipeline import ScoreOptions

    options = options or ScoreOptions()
    sessions = options.sessions or detector.sessions
    with spill(path, options.log_format, getattr(detector, "format_", None), sessions,
               config) as spilled:
        return spilled.score(detector, lines_out, sessions_out, options.threshold)
