"""``serve``'s live-ingestion options (``/v1/logs``, ``/v1/ingest``): how pushed lines are grouped,
scored and where their events go. Kept apart from ``serve.py``, which only starts uvicorn."""
from __future__ import annotations

import argparse
from pathlib import Path

from tinylogbert.errors import OutputError


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    from tinylogbert.cli.main import _add_format_options
    from tinylogbert.live.ingest import DEFAULT_QUEUE_LINES, SNAPSHOT_SECONDS
    from tinylogbert.live.session_tracker import (
        DEFAULT_MAX_OPEN_SESSIONS,
        DEFAULT_MAX_SESSION_LINES,
    )

    g = p.add_argument_group("live ingestion (POST /v1/logs, POST /v1/ingest)")
    _add_format_options(g)
    g.add_argument("--threshold", type=float, help="override the model's session threshold")
    g.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="close a session after this many seconds without a line of it "
                        "(default: the format's time window)")
    g.add_argument("--ingest-queue-lines", type=int, default=DEFAULT_QUEUE_LINES, metavar="N",
                   help="lines received but not yet scored, at most; beyond it requests get 429 "
                        f"with Retry-After (default {DEFAULT_QUEUE_LINES:,})")
    g.add_argument("--message-field", default="auto", metavar="FIELD",
                   help="/v1/ingest JSON records: the field holding the log line, dots for "
                        "nested fields (default auto: message, log, msg, MESSAGE, body or text)")
    g.add_argument("--stream-field", metavar="FIELD",
                   help="/v1/ingest JSON records: the field naming the source stream, e.g. host "
                        "(default: the ?source= query parameter, else 'default')")
    g.add_argument("--events", metavar="EVENTS.jsonl",
                   help="append the live events (closed anomalous sessions), one JSON object "
                        "per line")
    g.add_argument("--all", action="store_true",
                   help="an event for every closed session, not only the anomalous ones")
    g.add_argument("--max-open-sessions", type=int, default=DEFAULT_MAX_OPEN_SESSIONS,
                   metavar="N",
                   help="open sessions per source stream, at most; beyond it the least recently "
                        "active one is closed and scored as it stands (\"closed\": \"forced\", "
                        f"counted in /metrics) (default {DEFAULT_MAX_OPEN_SESSIONS:,})")
    g.add_argument("--max-session-lines", type=int, default=DEFAULT_MAX_SESSION_LINES,
                   metavar="N",
                   help="a session this long is closed and scored (\"closed\": \"max-lines\", "
                        f"counted in /metrics) (default {DEFAULT_MAX_SESSION_LINES:,})")
    g.add_argument("--state", metavar="DIR",
                   help="keep state here, so a restart with the same command line (after a "
                        "SIGKILL even) loses nothing: every accepted request is written to a "
                        "log there (fsynced) before it is answered, the open sessions are "
                        "snapshotted (and kept open over a stop), and the alert outbox")
    g.add_argument("--snapshot-interval", type=float, default=SNAPSHOT_SECONDS,
                   metavar="SECONDS",
                   help="with --state: snapshot the open sessions this often (and at a stop), "
                        "which bounds what a restart replays from the log "
                        f"(default {SNAPSHOT_SECONDS:g})")
    from tinylogbert.cli.alert_options import add_alert_arguments

    add_alert_arguments(g)


def live_settings_from_args(args: argparse.Namespace):
    from tinylogbert.api.ingest_routes import LiveSettings
    from tinylogbert.cli.alert_options import build_sinks
    from tinylogbert.cli.main import _session_config, _session_options_given, check_output_file
    from tinylogbert.live.ingest import IngestConfig

    if args.idle_timeout is not None and args.idle_timeout <= 0:
        raise OutputError("--idle-timeout must be positive")
    if args.ingest_queue_lines < 1:
        raise OutputError("--ingest-queue-lines must be at least 1")
    if not args.snapshot_interval > 0:
        raise OutputError("--snapshot-interval must be positive")
    for flag in ("max_open_sessions", "max_session_lines"):
        if getattr(args, flag) < 1:
            raise OutputError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.events:
        check_output_file(args.events, "--events")
    config = IngestConfig(
        log_format=args.format,
        sessions=_session_config(args) if _session_options_given(args) else None,
        threshold=args.threshold, idle_timeout=args.idle_timeout,
        max_queue_lines=args.ingest_queue_lines, max_open_sessions=args.max_open_sessions,
        max_session_lines=args.max_session_lines, emit_all=args.all,
        snapshot_seconds=args.snapshot_interval)
    return LiveSettings(config, args.message_field, args.stream_field,
                        Path(args.events) if args.events else None,
                        tuple(build_sinks(args, args.state)),
                        Path(args.state) if args.state else None, durable=bool(args.state))
