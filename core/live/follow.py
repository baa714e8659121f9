"""Live input: chunks of complete lines, with their line numbers in the file, from a growing log
(``follow``, as ``tail -F``: it notices rotation, when the path names another inode, and truncation,
when the file got shorter, and starts the new file from line 1) or a stream (``read_stream``).
"""
from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tinylogbert.io.log_reader import GZIP_MAGIC, check_readable, read_log_file

READ_SIZE = 1 << 20


@dataclass
class Chunk:
    """Complete lines read in one step; ``first_line_no`` is the file's number of the first.
    ``event``: None, 'rotated' or 'truncated' (a new file starts at line 1 after it) or 'end'.
    ``caught_up``: the reader is at the end of what has been written so far."""

    lines: list[str]
    first_line_no: int = 1
    event: str | None = None
    caught_up: bool = True
    offset: int | None = None  # bytes of the file consumed after these lines (``watch --state``)
    inode: int | None = None  # of the file they came from


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


class _Splitter:
    """Bytes in, complete lines out; a partial last line waits for its newline."""

    def __init__(self) -> None:
        self.buffer = b""
        self.next_line_no = 1

    def push(self, data: bytes) -> tuple[list[str], int]:
        first = self.next_line_no
        self.buffer += data
        *complete, self.buffer = self.buffer.split(b"\n")
        self.next_line_no += len(complete)
        return [_decode(x) for x in complete], first

    def flush(self) -> tuple[list[str], int]:
        """The partial last line, as a line (the input ended without a newline)."""
        first = self.next_line_no
        if not self.buffer:
            return [], first
        line, self.buffer = _decode(self.buffer), b""
        self.next_line_no += 1
        return [line], first

    def reset(self) -> None:
        self.buffer, self.next_line_no = b"", 1


def _count_lines(handle) -> int:
    count = 0
    while block := handle.read(READ_SIZE):
        count += block.count(b"\n")
    return count


def head_lines(path: str | Path, n: int) -> list[str]:
    """The file's first ``n`` lines as it is now (a gzip file decompressed): what the format is
    checked on before a watch starts, whichever line the watch starts from."""
    import gzip
    import itertools

    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as handle:
        return [_decode(line.rstrip(b"\n")) for line in itertools.islice(handle, n)]


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def follow(
    path: str | Path, from_start: bool = False, follow: bool = True, poll_interval: float = 0.2,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Chunk]:
    """``tail -F`` as an iterator of ``Chunk``: from the end of the file (line numbers still
    counted from its start) or, with ``from_start``, from its first line. When nothing is new it
    yields an empty chunk every ``poll_interval`` seconds (for idle checks); it ends when
    ``stop()`` is true, or with ``follow=False`` at the end of the file. A gzip file cannot grow:
    it is read once. The file is opened (and a missing one reported) before this returns."""
    path = check_readable(path)
    if is_gzip(path):
        return iter([Chunk(read_log_file(path).lines.to_pylist(), 1, "end")])
    handle = open(path, "rb")  # noqa: SIM115 -- the generator closes it
    splitter = _Splitter()
    if not from_start:
        splitter.next_line_no = _count_lines(handle) + 1  # leaves the handle at the end
    return _follow(path, handle, splitter, follow, poll_interval, stop)


def follow_from(
    path: str | Path, offset: int, next_line_no: int, follow: bool = True,
    poll_interval: float = 0.2, stop: Callable[[], bool] = lambda: False,
) -> Iterator[Chunk]:
    """``follow`` from byte ``offset`` (the start of line ``next_line_no``): where a restarted
    ``watch --state`` left off."""
    path = check_readable(path)
    handle = open(path, "rb")  # noqa: SIM115 -- the generator closes it
    handle.seek(offset)
    splitter = _Splitter()
    splitter.next_line_no = next_line_no
    return _follow(path, handle, splitter, follow, poll_interval, stop)


def _mark(chunk: Chunk, handle, splitter: _Splitter, inode: int | None) -> Chunk:
    chunk.offset = handle.tell() - len(splitter.buffer)
    chunk.inode = inode
    return chunk


def _follow(path: Path, handle, splitter: _Splitter, follow: bool, poll_interval: float,
            stop: Callable[[], bool]) -> Iterator[Chunk]:
    inode = os.fstat(handle.fileno()).st_ino
    try:
        while not stop():
            data = handle.read(READ_SIZE)
            if data:
                lines, first = splitter.push(data)
                yield _mark(Chunk(lines, first, caught_up=len(data) < READ_SIZE), handle,
                            splitter, inode)
                continue
            if not follow:
                break
            event = None
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None  # between a rotation's rename and the new file: wait for it
            if st is not None and st.st_ino != inode:
                event = "rotated"
            elif st is not None and st.st_size < handle.tell():
                event = "truncated"
            if event:
                rest, first = splitter.flush()  # the old file's unterminated last line
                if rest:
                    yield Chunk(rest, first)
                if event == "rotated":
                    handle.close()
                    try:
                        handle = open(path, "rb")  # noqa: SIM115 -- closed below
                    except FileNotFoundError:  # gone again: wait for the next one
                        handle, inode = open(os.devnull, "rb"), None  # noqa: SIM115
                        continue
                    inode = os.fstat(handle.fileno()).st_ino
                else:
                    handle.seek(0)
                splitter.reset()
                yield _mark(Chunk([], 1, event), handle, splitter, inode)
                continue
            yield _mark(Chunk([], splitter.next_line_no), handle, splitter, inode)
            time.sleep(poll_interval)
        while data := handle.read(READ_SIZE):  # stopped: what was written so far still counts
            lines, first = splitter.push(data)
            yield _mark(Chunk(lines, first, caught_up=False), handle, splitter, inode)
        rest, first = splitter.flush()
        yield _mark(Chunk(rest, first, "end"), handle, splitter, inode)
    finally:
        handle.close()


def read_stream(fd: int = 0, poll_interval: float = 0.2,
                stop: Callable[[], bool] = lambda: False) -> Iterator[Chunk]:
    """Chunks of the lines of a pipe or file descriptor (standard input), until it ends."""
    splitter = _Splitter()
    while not stop():
        ready, _, _ = select.select([fd], [], [], poll_interval)
        if not ready:
            yield Chunk([], splitter.next_line_no)
            continue
        data = os.read(fd, READ_SIZE)
        if not data:
            break
        lines, first = splitter.push(data)
        yield Chunk(lines, first, caught_up=len(data) < READ_SIZE)
    else:  # stopped: what is already in the pipe still counts
        while select.select([fd], [], [], 0)[0] and (data := os.read(fd, READ_SIZE)):
            lines, first = splitter.push(data)
            yield Chunk(lines, first, caught_up=False)
    rest, first = splitter.flush()
    yield Chunk(rest, first, "end")
