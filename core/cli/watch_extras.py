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
                   help="keep state here: the alert outbox (undelivered alerts survive "
                        "restarts)")
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

    def warning_hook(self, then: Callable[[str], None]) -> Callable[[str], None]:
        return self.metrics.warning_hook(self.source, then) if self.metrics else then

    def instrument(self, tracker) -> None:
        """Wrap the tracker's steps (on this instance only) to record metrics and hand closed
        anomalous sessions to the alert outbox."""
        from tinylogbert.live.metrics import step

        for name in self.STEPS:
            call = getattr(tracker, name)

            def wrapped(*a, _call=call, **kw):
                events = step(tracker, self.metrics, self.source, lambda: _call(*a, **kw))
                if self.outbox is not None and events:
                    self.outbox.add(events)
                return events

            setattr(tracker, name, wrapped)

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
