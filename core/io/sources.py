"""The pipeline's first two steps, read and parse, below every stage that needs them.

Why a module of their own: the estimator (``TinyLogBERTDetector.parse``) and feedback read and
parse logs with the same rules as ``pipeline`` does, and ``pipeline`` calls the estimator; with
the steps here both import downwards (``pipeline`` re-exports them as ``pipeline.read`` and
``pipeline.parse``).
"""
from __future__ import annotations

from pathlib import Path

from tinylogbert.errors import LogInputError
from tinylogbert.io.log_formats import LogFormat
from tinylogbert.io.log_parser import ParsedLog, parse_log, require_some_parsed
from tinylogbert.io.log_reader import (
    LogLines,
    read_log_bytes,
    read_log_file,
    read_log_lines,
    read_log_text,
)

Source = str | Path | bytes | list | LogLines


def read(source: Source, name: str = "<input>", max_bytes: int | None = None) -> LogLines:
    """Lines from a path, raw bytes (plain or gzip), raw text, a list of lines or ``LogLines``."""
    if isinstance(source, LogLines):
        return source
    if isinstance(source, bytes):
        return read_log_bytes(source, source=name, max_bytes=max_bytes)
    if isinstance(source, list):
        return read_log_lines(source, source=name)
    if isinstance(source, str) and ("\n" in source or not source.strip()):
        return read_log_text(source, source=name)
    if not isinstance(source, (str, Path)):
        raise LogInputError(f"cannot read a log from {type(source).__name__}")
    return read_log_file(source)


def parse(lines: LogLines, log_format: str | LogFormat = "auto",
          trained: LogFormat | None = None) -> ParsedLog:
    """The one format rule (see the module docstring)."""
    parsed = parse_log(lines, log_format or "auto", prefer=trained)
    require_some_parsed(parsed)
    return parsed
