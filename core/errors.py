"""Errors a user can act on.

Every failure that reaches the CLI, the API or the dashboard is a ``TinyLogBERTError`` with a
one-line message; anything else is a bug. Keeping them in one place lets each front end turn them
into an exit code, an HTTP status or an ``st.error`` without a traceback.
"""
from __future__ import annotations


class TinyLogBERTError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug)."""


class LogInputError(TinyLogBERTError):
    """The log itself cannot be used (empty, binary, nothing parsable...)."""


class LogTooLargeError(LogInputError):
    """A log is over a size limit once decompressed (a gzip bomb); ``limit`` is that limit."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class FormatError(TinyLogBERTError):
    """A log format name, template or regex is unknown or invalid."""


class LabelError(TinyLogBERTError):
    """A label file is missing columns, unreadable or matches nothing."""


class CheckpointError(TinyLogBERTError):
    """A model folder is missing files, corrupt, or fails its integrity check."""


class OutputError(TinyLogBERTError):
    """An output path cannot be written (checked before the work, not after it)."""


class NotFittedError(TinyLogBERTError):
    """A detector was used before ``fit`` or ``load``."""
