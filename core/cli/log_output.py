"""What long-running commands (``serve``, ``watch``) say on stderr: plain text, or one JSON object
per line (``--log-format json``) that a journal, Loki or Elasticsearch keeps as fields.

Why one place: ``watch``'s status lines, every command's warnings and uvicorn's own log must
switch together.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOG_FORMATS = ("text", "json")
_state = {"format": "text"}


def set_log_format(fmt: str) -> None:
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(LOG_FORMATS)}")
    _state["format"] = fmt


def log_format() -> str:
    return _state["format"]


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


def json_line(level: str, message: str, logger: str = "tinylogbert", when: float | None = None,
              **fields: Any) -> str:
    record = {"time": _iso(time.time() if when is None else when), "level": level,
              "logger": logger, "message": message}
    record.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(record, default=str)


def emit(message: str, level: str = "info", text_prefix: str = "", **fields: Any) -> None:
    """One line on stderr: ``text_prefix + message`` as text, or a JSON object with ``fields``."""
    if _state["format"] == "json":
        line = json_line(level, message, **fields)
    else:
        line = text_prefix + message
    print(line, file=sys.stderr, flush=True)


class JsonFormatter(logging.Formatter):
    """``logging`` records (uvicorn's, ours) as the same JSON lines as ``emit``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.levelname.lower(), record.getMessage(), record.name,
                         record.created, **fields)


def uvicorn_log_config(level: str = "info") -> dict:
    """uvicorn's ``log_config`` that writes its error and access logs as JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "loggers": {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "tinylogbert")},
    }
