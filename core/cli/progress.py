"""Progress on stderr: a tqdm bar on a terminal, a plain line every few seconds anywhere else.

Why: written to a file or a pipe (a service manager's journal, CI), tqdm's carriage-return redraws
pile up into one huge line (a BGL training wrote 33 KB of them). Every command that shows progress
asks ``progress_bar`` for one, so the choice is made here once.
"""
from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

PLAIN_INTERVAL = 5.0  # seconds between plain progress lines
INTERVAL_ENV = "TINYLOGBERT_PROGRESS_INTERVAL"  # overrides it (seconds)


def plain_interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, PLAIN_INTERVAL)))
    except ValueError:
        return PLAIN_INTERVAL


def stderr_is_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class PlainProgress:
    """The part of tqdm's interface the CLI uses, written as whole lines at most every
    ``interval`` seconds (and once at a phase change and at the end)."""

    def __init__(self, desc: str = "", total: int | None = None, unit: str = "step",
                 file: IO[str] | None = None, interval: float | None = None,
                 clock=time.monotonic) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.file = file or sys.stderr
        self.interval = plain_interval() if interval is None else interval
        self.clock = clock
        self.n = 0
        self.postfix = ""
        self._last = clock()
        self._written_n: int | None = None
        self._started = self._last

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def reset(self, total: int | None = None) -> None:
        if self.n and self._written_n != self.n:
            self._write()  # the phase that ended, at its last step
        self.n, self.total, self._written_n = 0, total, None
        self._started = self.clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self._last >= self.interval:
            self._write(now)

    def close(self) -> None:
        if self.n and self._written_n != self.n:
            self._write()

    def _write(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        of = f"/{self.total:,}" if self.total else ""
        rate = self.n / max(now - self._started, 1e-9)
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n:,}{of} {self.unit}s ({rate:,.1f} {self.unit}s/s{extra})",
              file=self.file, flush=True)
        self._last, self._written_n = now, self.n


class _NoProgress(PlainProgress):
    def _write(self, now: float | None = None) -> None:
        pass


def progress_bar(desc: str, *, quiet: bool = False, unit: str = "step",
                 file: IO[str] | None = None):
    """tqdm on a terminal, ``PlainProgress`` otherwise, nothing with ``quiet``."""
    file = sys.stderr if file is None else file
    if quiet:
        return _NoProgress(desc, unit=unit, file=file)
    if stderr_is_terminal(file):
        from tqdm import tqdm

        return tqdm(total=None, unit=unit, desc=desc, file=file)
    return PlainProgress(desc, unit=unit, file=file)
