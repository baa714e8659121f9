"""Many log files as one input: expand paths, read each file, and cut it into sessions.

This is the engine-independent half of batch scoring (``tinylogbert.batch.ray_engine`` runs it in Ray tasks).
It parses with ``tinylogbert.io.log_parser`` and groups with ``tinylogbert.sessions.grouping``, exactly as the local engine
does; what it adds is the one thing a single log never needs: **session keys that are valid across
files**. A session id found in the lines (an HDFS block id) is global: the same block written by
several nodes into several files is one session. Sessions that only exist within a file (runs of
lines without an id, windows of lines, time windows) get the file's path as a prefix, so that
``app-1.log:L1-20`` and ``app-2.log:L1-20`` stay two sessions.

Paths may be local, or URIs that ``pyarrow.fs`` understands (``s3://``, ``gs://``, ``hdfs://``,
``file://``), which is what lets every node of a cluster read the same inputs.
"""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from tinylogbert.errors import LogInputError
from tinylogbert.io.log_formats import LogFormat
from tinylogbert.io.log_parser import ParsedLog, parse_log
from tinylogbert.io.log_reader import GZIP_MAGIC, LogLines, read_log_bytes
from tinylogbert.sessions.grouping import (
    SessionConfig,
    SessionIndex,
    build_sessions,
    timestamps_to_seconds,
)

# What a folder contributes: the suffixes of plain and gzipped logs. Files named explicitly are
# read whatever their name.
LOG_SUFFIXES = (".log", ".gz")
# Bytes read from the first file to detect the format and the session strategy (like the local
# engine, which looks at 2,000 sampled lines and the first 5,000 messages).
SAMPLE_BYTES = 4 << 20
_GLOB_CHARS = re.compile(r"[*?\[]")


# ---- paths ---------------------------------------------------------------------------------------
def is_uri(path: str) -> bool:
    return "://" in path


def filesystem_for(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``path`` and the path within it (local paths made absolute)."""
    if not is_uri(path):
        return pafs.LocalFileSystem(), os.path.abspath(path)
    try:
        return pafs.FileSystem.from_uri(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise LogInputError(f"{path}: cannot open this location ({exc})") from None


def _natural_key(path: str) -> list:
    """Sort ``part-2`` before ``part-10``: file order is line order for sessions across files."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _log_files_under(fs: pafs.FileSystem, folder: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    return [i.path for i in infos if i.is_file and i.path.endswith(LOG_SUFFIXES)]


def _expand_uri(uri: str) -> list[str]:
    fs, path = filesystem_for(uri.rstrip("/"))
    prefix = uri.rstrip("/")[: len(uri.rstrip("/")) - len(path)]  # 's3://', 'hdfs://host:8020'
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [uri]
    if info.type == pafs.FileType.Directory:
        return [prefix + p for p in sorted(_log_files_under(fs, path), key=_natural_key)]
    raise LogInputError(f"{uri}: no such file or folder (globs are not supported in URIs)")


def _expand_local(path: str) -> list[str]:
    if os.path.isdir(path):
        found = _log_files_under(pafs.LocalFileSystem(), os.path.abspath(path))
        base = os.path.abspath(path)
        # Keep the user's spelling of the folder (relative stays relative) in the output.
        return sorted((os.path.join(path, os.path.relpath(f, base)) for f in found),
                      key=_natural_key)
    if os.path.exists(path):
        return [path]
    if _GLOB_CHARS.search(path):
        matches = sorted(glob.glob(path, recursive=True), key=_natural_key)
        files = [f for m in matches for f in _expand_local(m)]
        if not files:
            raise LogInputError(f"{path}: no log file matches")
        return files
    raise LogInputError(f"{path}: no such file or folder")


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files, folders (their ``.log``/``.gz`` files, recursively) and globs -> files, in order.

    Order matters: a session spanning files reads its lines in this order. Inputs keep the order
    given; within a folder or glob, files sort naturally (``part-2`` before ``part-10``). A file
    named twice is read once.
    """
    if not inputs:
        raise LogInputError("no input given")
    files: list[str] = []
    for item in inputs:
        files.extend(_expand_uri(item) if is_uri(item) else _expand_local(item))
    files = list(dict.fromkeys(files))
    if not files:
        raise LogInputError(f"no .log or .gz file in {', '.join(inputs)}")
    return files


def read_input_bytes(path: str, max_bytes: int | None = None, gunzip: bool = False) -> bytes:
    """The raw bytes of one input (or its first ``max_bytes``, decompressed with ``gunzip``)."""
    fs, inner = filesystem_for(path)
    try:
        with fs.open_input_stream(inner, compression="gzip" if gunzip else None) as stream:
            return stream.read() if max_bytes is None else stream.read(max_bytes)
    except FileNotFoundError:
        raise LogInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogInputError(f"{path}: is a folder, not a log file") from None
    except (OSError, pa.ArrowException) as exc:
        raise LogInputError(f"{path}: cannot be read ({exc})") from None


def read_sample(files: Sequence[str]) -> LogLines:
    """The first few MB of lines of the first non-empty file (a large .gz streams, not loads)."""
    for path in files:
        gzipped = read_input_bytes(path, len(GZIP_MAGIC)) == GZIP_MAGIC
        data = read_input_bytes(path, SAMPLE_BYTES, gunzip=gzipped)
        if len(data) == SAMPLE_BYTES and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]  # whole lines only
        if data.strip():
            return read_log_bytes(data, source=path)
    raise LogInputError("every input file is empty")


# ---- settings shared by every file -------------------------------------------------------------
@dataclass(frozen=True)
class BatchSettings:
    """Format and session strategy, decided once so every file is read the same way."""

    format: LogFormat
    sessions: SessionConfig  # concrete: ``by`` is 'id', 'window' or 'time', never 'auto'
    format_description: str
    session_strategy: str


def _strategy_name(index: SessionIndex) -> str:
    # SessionIndex.strategy reads "id /pattern/", "windows of ..." or "time windows of ...".
    if index.strategy.startswith("id "):
        return "id"
    return "time" if index.strategy.startswith("time") else "window"


def sample_parsed(
    files: Sequence[str], log_format: str | LogFormat, trained: LogFormat | None = None
) -> ParsedLog:
    """The head of the first file, parsed by the pipeline's one format rule (under 'auto' the
    trained format wins when it parses every sampled line).

    The local engine decides on the start of the (concatenated) log, which is the start of the
    first file; deciding per file instead could read two files of one batch differently.
    """
    from tinylogbert import pipeline

    return pipeline.parse(read_sample(files), log_format, trained)


def settings_for(parsed: ParsedLog, sessions: SessionConfig) -> BatchSettings:
    """Settle ``sessions.by='auto'`` on a parsed sample, as ``build_sessions`` would."""
    fmt = parsed.format
    description = parsed.detection.describe() if parsed.detection else fmt.name
    index = build_sessions(parsed, sessions)
    return BatchSettings(fmt, replace(sessions, by=_strategy_name(index)), description,
                         index.strategy)


# ---- one file ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSessions:
    """One file parsed and grouped, with session keys that are valid across files."""

    path: str
    parsed: ParsedLog
    index: SessionIndex
    session_keys: np.ndarray  # per session of ``index``: its key (object array of str)
    line_keys: pa.Array  # per line: the keys of its sessions, ';'-joined (``session_id``)

    @property
    def member_keys(self) -> np.ndarray:
        """Per entry of ``index.members``: the key of its session."""
        return self.session_keys[self.index.member_session()]


def read_file_lines(path: str) -> LogLines | None:
    """The lines of one input; ``None`` for a file with no text at all (nothing to score)."""
    data = read_input_bytes(path)
    if not data.strip():
        return None
    return read_log_bytes(data, source=path)


def prepare_file(path: str, settings: BatchSettings) -> FileSessions | None:
    """Read, parse and group one file (``None`` when it is empty)."""
    lines = read_file_lines(path)
    if lines is None:
        return None
    parsed = parse_log(lines, settings.format)
    index = build_sessions(parsed, settings.sessions)
    is_global = _id_sessions(index, settings.sessions)
    prefix = f"{path}:"
    session_keys = np.where(is_global, index.ids, prefix + index.ids).astype(object)
    # Per line, its sessions' keys: lines in file-local sessions get every id prefixed.
    local_line = np.zeros(len(parsed), dtype=bool)
    local_line[index.members[~is_global[index.member_session()]]] = True
    joined = pc.cast(index.line_session, pa.large_string())
    prefixed = pc.binary_join_element_wise(
        pa.scalar(prefix, pa.large_string()),
        pc.replace_substring(joined, ";", ";" + prefix),
        pa.scalar("", pa.large_string()),
    )
    line_keys = pc.if_else(pa.array(local_line), prefixed, joined)
    return FileSessions(path, parsed, index, session_keys, line_keys)


def merge_times(parsed: ParsedLog) -> np.ndarray:
    """Per line, the time at which a merge of several files takes it: seconds, never decreasing.

    Timestamps are read as the local engine's time windows read them (``time_format`` first, then
    epoch numbers or any date pandas knows), each distinct one once: logs repeat their
    timestamps, so this stays fast on millions of lines. A line without a readable timestamp, or
    one earlier than a line above it, takes the latest time so far in its file (its *running
    maximum*), and lines before the file's first timestamp take that one: a merge by these times
    never reorders the lines of one file, as a node writes its file in order. NaN throughout
    when no line of the file has a readable timestamp.
    """
    n = len(parsed)
    stamps = parsed.table["timestamp"].combine_chunks()
    if n == 0 or stamps.null_count == n:
        return np.full(n, np.nan)
    encoded = pc.dictionary_encode(stamps)
    distinct = timestamps_to_seconds(encoded.dictionary.to_pandas(), parsed.format.time_format)
    codes = pc.fill_null(encoded.indices, 0).to_numpy()
    valid = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
    seconds = np.where(valid, distinct[codes], np.nan)
    times = np.fmax.accumulate(seconds)  # fmax skips NaN: a gap keeps the time before it
    known = ~np.isnan(times)
    if known.any():
        times[: int(np.argmax(known))] = times[known][0]
    return times


# ``tinylogbert.sessions.grouping`` names each run of lines that carry no id ``no-id:<first>-<last>``.
_ORPHAN_PREFIX = "no-id:"


def _id_sessions(index: SessionIndex, sessions: SessionConfig) -> np.ndarray:
    """Per session: is it keyed by an id found in the lines (valid across files)?"""
    if sessions.by != "id":
        return np.zeros(len(index), dtype=bool)
    return np.array([not str(i).startswith(_ORPHAN_PREFIX) for i in index.ids], dtype=bool)
