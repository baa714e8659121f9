"""The alert-sink options ``watch`` and ``serve`` share (``--post``, ``--alertmanager``), and the
outbox they deliver through, kept in the ``--state`` folder."""
from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlparse

from tinylogbert.errors import OutputError

def add_alert_arguments(p) -> None:
    p.add_argument("--post", metavar="URL", action="append", default=[],
                   help="POST each closed anomalous session as JSON to this webhook (repeatable); "
                        "signed (X-TinyLogBERT-Signature: sha256=HMAC) when "
                        "TINYLOGBERT_WEBHOOK_SECRET is set")
    p.add_argument("--alertmanager", metavar="URL", action="append", default=[],
                   help="send each closed anomalous session to this Prometheus Alertmanager "
                        "(its v2 API, URL/api/v2/alerts) (repeatable)")
    p.add_argument("--alert-duration", type=float, default=3600.0, metavar="SECONDS",
                   help="an Alertmanager alert's endsAt, after it is raised (default 3600)")


def _check_url(url: str, flag: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise OutputError(f"{flag} {url}: not an http(s) URL")
    return url


def build_sinks(args: argparse.Namespace, state_dir: str | None) -> list:
    """The sinks the options name (checked: URLs, and a state folder for the outbox)."""
    from tinylogbert.live.alert_sinks import AlertmanagerSink, WebhookSink

    sinks = [WebhookSink.from_env(_check_url(u, "--post")) for u in args.post]
    if args.alert_duration <= 0:
        raise OutputError("--alert-duration must be positive")
    sinks += [AlertmanagerSink(_check_url(u, "--alertmanager"),
                               timedelta(seconds=args.alert_duration)) for u in args.alertmanager]
    if not sinks:
        return []
    if not state_dir:
        raise OutputError("--post and --alertmanager need --state DIR: the outbox there keeps "
                          "undelivered alerts across sink outages and restarts")
    # two sinks of one kind get distinct names, so distinct keys in the outbox
    return [replace(s, name=f"{s.name}-{i}") if any(t.name == s.name for t in sinks[:i]) else s
            for i, s in enumerate(sinks)]
