"""What the CLI's commands share: warnings, the model loaded in the background, the score line.

Why a module of their own: ``main`` (the in-memory ``score``) and ``streaming`` (``score
--stream``) both need them, and ``main`` dispatches to ``streaming``; here both import downwards.
"""
from __future__ import annotations

import sys
import threading

from tinylogbert.reports.display import format_threshold


def warn(message: str) -> None:
    """A warning: one line on stderr (JSON with ``--log-format json``), the work goes on."""
    from tinylogbert.cli.log_output import emit

    emit(message, "warning", "warning: ")


def _in_background(function, *args):
    """Run ``function(*args)`` in a daemon thread; the returned callable waits for its result
    and re-raises its exception, if any, in the caller's thread."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller, not swallowed
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="background", daemon=True)
    thread.start()

    def result():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return result


def _load_detector(folder: str, runtime: str = "auto", threads: int = 0):
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    return TinyLogBERTDetector.load(folder, runtime=runtime, num_threads=threads or None)


def report_scored(s: dict, seconds: float, waited: float, model_sequences: int,
                  extra: str = "") -> None:
    """The one line ``score`` prints (both the in-memory and the streaming path)."""
    # The model loads while the log is parsed; what parsing did not hide is said, not hidden.
    load = f", {waited:.1f}s of it waiting for the model to load" if waited >= 0.05 else ""
    print(
        f"scored {s['lines']:,} lines in {s['sessions']:,} sessions in {seconds:.1f}s "
        f"({s['lines'] / max(seconds, 1e-9):,.0f} lines/s{load}); format {s['format']}; "
        f"{s['unparsed_lines']:,} lines did not parse (kept, parse_ok=false); "
        f"{s['anomalous_sessions']:,} sessions above threshold "
        f"{format_threshold(s['threshold'])}"
        + (f"; {s['suppressed_sessions']:,} sessions like ones marked normal (suppressed_by)"
           if s["suppressed_sessions"] else "")
        + f"; {model_sequences:,} distinct session sequences went through the model{extra}"
    )


class PhaseBar:
    """One progress bar per training phase (mlm, clean, head), drawn from the first step on:
    a bar made before there is a step to show printed ``training: 0step [00:00, ?step/s]``
    before every ``train``, even before the error for an empty log."""

    def __init__(self, quiet: bool, show_loss: bool = True) -> None:
        self.quiet, self.show_loss = quiet, show_loss
        self.bar = None
        self.phase = ""

    def __call__(self, p) -> None:
        if self.quiet:
            return
        if self.bar is None:  # tqdm on a terminal, plain lines anywhere else (progress.py)
            from tinylogbert.cli.progress import progress_bar

            self.bar = progress_bar(p.phase, file=sys.stderr)
            self.bar.reset(total=p.total_steps)
            self.phase = p.phase
        elif p.phase != self.phase:
            self.phase = p.phase
            self.bar.reset(total=p.total_steps)  # first: a plain bar writes the phase that ended
            self.bar.set_description(p.phase, refresh=False)
        if self.show_loss:
            self.bar.set_postfix(loss=f"{p.loss:.3f}", refresh=False)
        self.bar.update(p.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
