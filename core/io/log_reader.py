"""Read raw log bytes into an Arrow array of lines, fast and without losing a line.

Why Arrow: every later step (parsing, masking, grouping) runs as a vectorised Arrow kernel, which is
what lets scoring keep up with >100k lines/s on two cores. Lines are cut at ``\\n`` only (a trailing
``\\r`` is dropped) so line numbers agree with ``wc -l``, editors and ``grep -n``.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert.errors import LogInputError, LogTooLargeError

GZIP_MAGIC = b"\x1f\x8b"
# Control bytes that never appear in text logs; a sample rich in them is a binary file.
_TEXT_CONTROL = {9, 10, 12, 13, 27}
_BINARY_SAMPLE = 65536


@dataclass(frozen=True)
class LogLines:
    """The lines of one log, in order; ``line_no`` of line ``i`` is ``i + 1``."""

    lines: pa.LargeStringArray
    source: str = "<input>"
    replaced_bytes: bool = False  # True when invalid UTF-8 was replaced by U+FFFD
    invalid_lines: int = 0  # how many lines held invalid UTF-8 (for the warning that says so)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def line_no(self) -> np.ndarray:
        return np.arange(1, len(self.lines) + 1, dtype=np.int64)


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    arr = np.frombuffer(sample, dtype=np.uint8)
    control = (arr < 32) & ~np.isin(arr, list(_TEXT_CONTROL))
    return control.mean() > 0.05


# Decompressed size at which reading stops (callers with tighter budgets pass their own): a
# small .gz may not expand into more memory than the machine has.
DEFAULT_MAX_LOG_BYTES = 8 * 2**30
# A legitimate multi-member gzip (bgzip: one member per 64 KiB) has thousands of members, not
# millions; every member costs a fresh decompressor, so their number is bounded too.
MAX_GZIP_MEMBERS = 100_000
_FIRST_CHUNK = 1024
_MAX_CHUNK = 1 << 20
_READ_BLOCK = 1 << 24  # compressed bytes read at a time from a stream


def gunzip_bounded(data: bytes | bytearray | memoryview, source: str = "<input>",
                   max_bytes: int | None = None, max_members: int | None = None) -> bytes:
    """Decompress every member of a gzip stream in linear time, stopping at ``max_bytes``
    (``gunzip_blocks`` on bytes already in memory, joined).

    Why not ``gzip.decompress``: it has no output bound (a 1 MB bomb becomes gigabytes), and it,
    like a ``decompressobj`` loop over ``unused_data``, copies the rest of the input once per
    member, which made 80,000 empty members cost seconds and 32 MiB of them minutes.
    Raises ``LogTooLargeError`` over ``max_bytes``, ``LogInputError`` for anything corrupt.
    """
    view = memoryview(data).cast("B")
    fed = [False]

    def read(_: int) -> bytes | memoryview:
        if fed[0]:
            return b""
        fed[0] = True
        return view

    return b"".join(gunzip_blocks(read, source, max_bytes, max_members))


def gunzip_blocks(read: Callable[[int], bytes | memoryview], source: str = "<input>",
                  max_bytes: int | None = None, max_members: int | None = None,
                  block: int = 1 << 24) -> Iterator[bytes]:
    """The one gzip decoder (``gunzip_bounded`` and the streaming scorer): every member of the
    stream ``read(n)`` returns, decompressed, in blocks of at most ``block`` bytes, with the
    rules for members, zero padding, truncation, nesting and the decompressed size
    (``max_bytes``, default ``DEFAULT_MAX_LOG_BYTES``).

    Input goes in through a memoryview in pieces that start small and grow within a member, so
    each member copies at most one piece (many tiny members stay linear); input the decoder did
    not take (its output bound was hit) is fed again from the same view, without a copy.
    """
    max_bytes = DEFAULT_MAX_LOG_BYTES if max_bytes is None else max_bytes
    max_members = MAX_GZIP_MEMBERS if max_members is None else max_members
    buffer: bytes | memoryview = b""
    view = memoryview(b"")
    pos = members = total = 0
    ended = False
    head: bytearray | None = bytearray()

    def fill() -> bool:
        """More input after ``pos``; False at the end of the data."""
        nonlocal buffer, view, pos, ended
        if ended:
            return False
        more = read(_READ_BLOCK)
        if not len(more):
            ended = True
            return False
        rest = view[pos:]
        buffer = bytes(rest) + bytes(more) if len(rest) else more
        view, pos = memoryview(buffer).cast("B"), 0
        return True

    while True:
        while len(view) - pos < 2 and fill():
            pass
        if len(view) - pos == 0:
            if head:
                yield bytes(head)
            return
        if view[pos:pos + 2] != GZIP_MAGIC:
            while fill():
                if bytes(view[pos:]).strip(b"\x00"):
                    break
            if members and not bytes(view[pos:]).strip(b"\x00"):
                if head:
                    yield bytes(head)
                return  # zero padding after the last member (tape and block devices add it)
            raise LogInputError(f"{source}: unexpected data after the gzip stream")
        members += 1
        if members > max_members:
            raise LogInputError(f"{source}: the gzip file has more than {max_members:,} members; "
                                "decompress it and send the plain log")
        stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk = _FIRST_CHUNK
        while not stream.eof:
            if pos >= len(view) and not fill():
                raise LogInputError(f"{source}: the gzip data is truncated")
            piece = view[pos:pos + chunk]
            try:
                out = stream.decompress(piece, min(block, max_bytes - total + 1))
            except zlib.error as exc:
                raise LogInputError(
                    f"{source}: looks like gzip but cannot be decompressed ({exc})") from None
            pos += len(piece) - len(stream.unconsumed_tail) - len(stream.unused_data)
            total += len(out)
            if total > max_bytes:
                raise LogTooLargeError(
                    f"{source} decompresses to more than {max_bytes:,} bytes", max_bytes)
            if head is not None:  # the first two bytes out say whether it is gzip again
                head += out
                if len(head) < 2:
                    continue
                if head.startswith(GZIP_MAGIC):
                    raise LogInputError(f"{source}: gzip inside gzip is not supported; "
                                        "decompress it once")
                out, head = bytes(head), None
            if out:
                yield out
            chunk = min(chunk * 2, _MAX_CHUNK)


def read_log_bytes(data: bytes, source: str = "<input>",
                   max_bytes: int | None = None) -> LogLines:
    """Decode log bytes (plain or gzip) into lines; raise ``LogInputError`` for unusable input.

    ``max_bytes`` (default ``DEFAULT_MAX_LOG_BYTES``) bounds the log once decompressed
    (``LogTooLargeError``); plain input is bounded by whoever read it."""
    if bytes(data[:2]) == GZIP_MAGIC:
        data = gunzip_bounded(data, source, max_bytes)
    data = bytes(data)
    if not data.strip():
        raise LogInputError(f"{source}: the log is empty")
    if _looks_binary(data[:_BINARY_SAMPLE]):
        raise LogInputError(f"{source}: this looks like a binary file, not a text log")
    lines, invalid, replaced = decode_lines(data)
    return LogLines(lines, source=source, replaced_bytes=replaced, invalid_lines=invalid)


def decode_lines(data: bytes) -> tuple[pa.LargeStringArray, int, bool]:
    """UTF-8 bytes as lines: (lines, lines that held invalid UTF-8, whether any byte was
    replaced by U+FFFD). Also per block of a stream, when blocks end at newlines: no invalid
    sequence spans one, so replacing per block is replacing in the whole."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        invalid = _count_invalid_lines(data)
        return _split_lines(data.decode("utf-8", errors="replace").encode("utf-8")), invalid, True
    return _split_lines(data), 0, False


def _count_invalid_lines(data: bytes) -> int:
    """Lines that are not valid UTF-8. Newlines are ASCII, so lines are the same before and
    after replacement; only lines holding a non-ASCII byte need a (Python) check."""
    arr = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(arr == 10) + 1])
    high = np.flatnonzero(arr >= 0x80)
    candidates = np.unique(np.searchsorted(starts, high, side="right") - 1)
    ends = np.append(starts[1:], len(data))
    count = 0
    for i in candidates:
        try:
            data[starts[i]:ends[i]].decode("utf-8")
        except UnicodeDecodeError:
            count += 1
    return count


def _split_lines(data: bytes) -> pa.LargeStringArray:
    """Zero-copy split at newlines: offsets come from numpy, the bytes stay one Arrow buffer."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    ends = newlines if data.endswith(b"\n") else np.append(newlines, len(data))
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    offsets[-1] = min(offsets[-1], len(data))
    raw = pa.LargeStringArray.from_buffers(
        len(ends), pa.py_buffer(offsets), pa.py_buffer(data)
    )
    return pc.utf8_rtrim(raw, characters="\r\n")


def read_log_text(text: str, source: str = "<input>") -> LogLines:
    """Lines from an in-memory string (the API and tests)."""
    return read_log_bytes(text.encode("utf-8", errors="replace"), source)


def read_log_lines(lines: list[str], source: str = "<input>") -> LogLines:
    """Lines from a list that is already split (API requests); each item stays one line."""
    if not lines:
        raise LogInputError(f"{source}: no lines given")
    cleaned = [line.replace("\r", " ").replace("\n", " ") for line in lines]
    if not any(line.strip() for line in cleaned):
        raise LogInputError(f"{source}: every line is empty")
    return LogLines(pa.array(cleaned, type=pa.large_string()), source=source)


def check_readable(path: str | Path) -> Path:
    """The path of a log file that exists and can be opened, else one ``LogInputError``."""
    path = Path(path)
    if not path.exists():
        raise LogInputError(f"{path}: no such file")
    if path.is_dir():
        raise LogInputError(f"{path}: is a folder, not a log file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise LogInputError(f"{path}: cannot be read ({exc.strerror})") from None
    return path


def read_log_file(path: str | Path) -> LogLines:
    """Read a ``.log``/``.txt``/``.gz`` file from disk."""
    path = check_readable(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LogInputError(f"{path}: cannot be read ({exc.strerror})") from None
    return read_log_bytes(data, source=str(path))
