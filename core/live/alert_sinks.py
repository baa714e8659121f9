"""Where alerts go: a generic webhook (JSON body, optional HMAC-SHA256 signature) and the
Prometheus Alertmanager v2 API. Each sink turns a closed anomalous session's event into the
request body once, when it enters the outbox (``live.outbox``), and sends stored bodies.

Why bodies are built at enqueue time: a retry after an outage or a restart sends exactly what
the first try would have, with the same ``startsAt``, so the receiver can de-duplicate.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tinylogbert import __version__

WEBHOOK_SECRET_ENV = "TINYLOGBERT_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-TinyLogBERT-Signature"
DELIVERY_HEADER = "X-TinyLogBERT-Delivery"
ALERT_NAME = "TinyLogBERTAnomalousSession"
SEND_TIMEOUT = 10.0


class DeliveryError(Exception):
    """A failed send; ``permanent`` when retrying cannot help (a 4xx other than 408/429)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def fingerprint(event: dict) -> str:
    """Stable across retries, restarts and replays: the session's source, id and lines."""
    key = json.dumps([event.get("source"), event.get("session_id"), event.get("first_line_no"),
                      event.get("last_line_no"), event.get("n_lines")])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def wants_alert(event: dict) -> bool:
    return event.get("event") == "session" and bool(event.get("is_anomaly"))


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def explanation(event: dict) -> str:
    """One paragraph an on-call engineer reads: the score, and the lines that weigh most."""
    parts = [f"session {event.get('session_id')} of {event.get('source')}: score "
             f"{event.get('score', 0):.4f} over threshold {event.get('threshold', 0):.4f}, "
             f"{event.get('n_lines')} lines (log lines {event.get('first_line_no')}-"
             f"{event.get('last_line_no')}, {event.get('first_time')} to {event.get('last_time')})"]
    for line in event.get("top_lines") or []:
        expected = f"; expected {line['expected']!r}" if line.get("expected") else ""
        parts.append(f"line {line['line_no']} (surprisal {line.get('surprisal', 0):.2f}"
                     f"{expected}): {line.get('message', '')}")
    return "\n".join(parts)


def top_line(event: dict) -> str:
    lines = event.get("top_lines") or []
    return str(lines[0].get("message", "")) if lines else str(event.get("message", ""))


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    request = urllib.request.Request(url, body, {**headers,
                                                 "User-Agent": f"tinylogbert/{__version__}"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {url}",
                            permanent=400 <= exc.code < 500 and exc.code not in (408, 429)
                            ) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{url}: {reason}") from None


@dataclass(frozen=True)
class WebhookSink:
    """``--post URL``: the event as JSON, signed when ``TINYLOGBERT_WEBHOOK_SECRET`` is set."""

    url: str
    secret: str | None = None
    name: str = "webhook"

    @classmethod
    def from_env(cls, url: str) -> WebhookSink:
        return cls(url, os.environ.get(WEBHOOK_SECRET_ENV) or None)

    def body(self, event: dict, print_: str, now: datetime) -> bytes:
        return json.dumps({"fingerprint": print_, "alert": ALERT_NAME, **event},
                          separators=(",", ":")).encode()

    def send(self, body: bytes, key: str) -> None:
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: key}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        _post(self.url, body, headers)


@dataclass(frozen=True)
class AlertmanagerSink:
    """``--alertmanager URL``: ``POST URL/api/v2/alerts``, one alert per session; it stays
    firing for ``duration`` (``endsAt``), as a log anomaly has no 'resolved' of its own."""

    url: str
    duration: timedelta = timedelta(hours=1)
    name: str = "alertmanager"

    def body(self, event: dict, print_: str, now: datetime) -> bytes:
        alert = {
            "labels": {"alertname": ALERT_NAME, "service": str(event.get("source")),
                       "grade": str(event.get("grade") or "none"),
                       "session_id": str(event.get("session_id")), "fingerprint": print_},
            "annotations": {"summary": top_line(event)[:1000],
                            "description": explanation(event)[:4000],
                            "score": f"{event.get('score', 0):.4f}"},
            "startsAt": _rfc3339(now),
            "endsAt": _rfc3339(now + self.duration),
        }
        return json.dumps([alert], separators=(",", ":")).encode()

    def send(self, body: bytes, key: str) -> None:
        _post(self.url.rstrip("/") + "/api/v2/alerts", body, {"Content-Type": "application/json"})
