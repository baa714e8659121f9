"""``watch``'s service options, kept out of ``watch.py``: JSON logs, a metrics port, a state
folder for restarts, and alert sinks. ``watch.py`` adds them with ``add_watch_options`` and
hands its tracker to ``WatchExtras``, which wraps the tracker's steps so the loop stays as it is.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from tinylogbert.cli.log_output import LOG_FORMATS, emit
from tinylogbert.errors import OutputError


def add_watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                   help="what goes to stderr: text lines, or one JSON object per line (for a "
                        "journal or a log store) (default text)")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="address of the metrics port (default 127.0.0.1: this machine only)")
    p.add_argument("--state", metavar="DIR",
                   help="keep state here, so a restart with the same command line resumes "
                        "exactly: the followed file's read offset, the open sessions (kept open "
                        "over a SIGTERM/SIGINT stop), the alert outbox")
    from tinylogbert.cli.alert_options import add_alert_arguments

    add_alert_arguments(p)


class WatchExtras:
    """What the service options add around a tracker: metrics now, alerts and state below."""

    STEPS = ("feed", "close_idle", "restart", "close_all")

    def __init__(self, args: argparse.Namespace, source: str) -> None:
        from tinylogbert.cli.alert_options import build_sinks
        from tinylogbert.live.outbox import open_outbox
        from tinylogbert.cli.common import warn

        self.args, self.source = args, source
        self.metrics = None
        self._server = None
        self.outbox = None
        sinks = build_sinks(args, args.state)  # checked before anything starts
        if args.metrics_port is not None:
            if not 0 < args.metrics_port < 65536:
                raise OutputError(f"--metrics-port {args.metrics_port}: not a TCP port")
            from tinylogbert.live.metrics import LiveMetrics, serve_metrics

            self.metrics = LiveMetrics()
            self.metrics.watch_source(source)
            try:
                self._server = serve_metrics(self.metrics, args.metrics_port, args.metrics_host)
            except OSError as exc:
                raise OutputError(f"--metrics-port {args.metrics_port}: {exc.strerror}") from None
            emit(f"metrics on http://{args.metrics_host}:{args.metrics_port}/metrics")
        self.outbox = open_outbox(sinks, args.state, self.metrics, warn)
        self.state = None
        self._raw: dict[str, Callable] = {}
        self._where: tuple[int | None, int, int] | None = None  # inode, offset, next line
        self._saved: tuple | None = None  # what the last save saved, in brief
        if args.state and args.logfile != "-":
            from tinylogbert.live.state import WatchState

            try:
                self.state = WatchState(args.state, args.logfile)
            except OSError as exc:
                raise OutputError(f"--state {args.state}: {exc.strerror}") from None
            if args.out == "-":
                warn("--state with events on standard output: events written after the last "
                     "save and before a crash are written again after the restart; give --out "
                     "FILE to have none repeated")

    def warning_hook(self, then: Callable[[str], None]) -> Callable[[str], None]:
        return self.metrics.warning_hook(self.source, then) if self.metrics else then

    def instrument(self, tracker) -> None:
        """Wrap the tracker's steps (on this instance only) to record metrics and hand closed
        anomalous sessions to the alert outbox."""
        from tinylogbert.live.metrics import step

        for name in self.STEPS:
            call = self._raw[name] = getattr(tracker, name)

            def wrapped(*a, _call=call, **kw):
                events = step(tracker, self.metrics, self.source, lambda: _call(*a, **kw))
                if self.outbox is not None and events:
                    self.outbox.add(events)
                return events

            setattr(tracker, name, wrapped)

    # ---- watch --state: resume ----
    def resume(self, tracker, out, follow: bool, poll: float, stop):
        """``(chunks, events)``: the followed file from where the saved state left off, with
        the open sessions restored; ``(None, [])`` when there is nothing to resume."""
        if self.state is None:
            return None, []
        import os

        from tinylogbert.io.log_formats import get_format
        from tinylogbert.live.follow import follow_from, is_gzip
        from tinylogbert.live.state import restore

        try:
            saved = self.state.load()
        except ValueError as exc:
            raise OutputError(str(exc)) from None
        if saved is None or is_gzip(self.args.logfile):
            return None, []
        st = os.stat(self.args.logfile)
        if saved.inode != st.st_ino or st.st_size < saved.offset:
            emit(f"watch: {self.args.logfile} is not the file of the saved state (rotated or "
                 "truncated since); starting as the options say", "warning", "warning: ")
            return None, []
        if out is not None and saved.out_size is not None:
            out.flush()
            out.truncate(saved.out_size)  # what came after the last save is written again
        if saved.format and saved.tracker is None and isinstance(tracker.log_format, str):
            try:
                tracker.log_format = get_format(saved.format)  # as decided before the restart
            except Exception:  # noqa: BLE001 -- a detected format without a name: detect again
                pass
        try:
            events = restore(tracker, self._raw.get("feed", tracker.feed), saved)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise OutputError(f"{self.state.file}: damaged state ({type(exc).__name__}: {exc}); "
                              "remove the folder to start over") from None
        self._where = (saved.inode, saved.offset, saved.next_line_no)
        emit(f"watch: resuming {self.args.logfile} at line {saved.next_line_no:,} with "
             f"{saved.n_held:,} lines of open sessions restored from {self.state.file}",
             held=saved.n_held, line=saved.next_line_no)
        return follow_from(self.args.logfile, saved.offset, saved.next_line_no, follow, poll,
                           stop), events

    def checkpoint(self, tracker, out, chunk=None) -> None:
        """Save where the watch is, after the events of this step are written (and synced)."""
        if self.state is None:
            return
        if chunk is not None and chunk.offset is not None:
            self._where = (chunk.inode, chunk.offset,
                           chunk.first_line_no + len(chunk.lines))
        if self._where is None:
            return
        out_size = None
        if out is not None:
            import os

            out.flush()
            os.fsync(out.fileno())
            out_size = os.fstat(out.fileno()).st_size
        # Why skip an unchanged state: a watch with no new lines still steps every --poll
        # seconds, and a save of many held lines costs a few hundred milliseconds (45,000: ~0.3 s)
        mark = (self._where, out_size, tuple(vars(tracker.stats).values()), len(tracker._held),
                len(tracker._open), tracker._deferred is None, len(tracker._pending),
                tracker._grid, tracker.format is None)
        if mark == self._saved:
            return
        self.state.save(tracker, *self._where, out_size)
        self._saved = mark

    def keeps_sessions_open(self, stopped: bool) -> bool:
        """On a stop (SIGTERM/SIGINT) with a state, open sessions are saved, not closed."""
        return stopped and self.state is not None

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
