"""What log shippers send, as ``(stream, lines)`` batches in arrival order.

- OTLP/HTTP logs (``/v1/logs``): ``ExportLogsServiceRequest`` as protobuf or OTLP JSON, decoded
  with the ``opentelemetry-proto`` package's generated classes; the stream is the resource's
  ``service.name`` (and ``host.name``), the line the record's body;
- newline-delimited text or JSON (``/v1/ingest``): Fluent Bit's ``http`` output (``json_lines``,
  or ``json``, an array), Vector's ``http`` sink (NDJSON or an array), or plain text lines.

A record's trace or request id travels with its line (``Batch.ids``): the OTLP ``traceId`` as
``trace_id`` (lowercase hex), and the usual id keys (``sessions.TRACE_ID_KEYS``) of a JSON
record or of an OTLP record's attributes under their own names. The session tracker reads them
as the line's parsed fields, so sessions follow trace ids as ``score`` makes them for lines that
carry ``trace_id``.

Every record is accounted for: one that holds no message is counted as rejected (OTLP's partial
success), never skipped silently.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import NamedTuple

from tinylogbert.errors import LogInputError

AUTO_MESSAGE_FIELDS = ("message", "log", "msg", "MESSAGE", "body", "text")
DEFAULT_STREAM = "default"
OTLP_TRACE_FIELD = "trace_id"  # the field an OTLP record's traceId becomes


class Batch(NamedTuple):
    """Consecutive lines of one stream; ``ids``: per line, the trace/request ids it carries
    (``{"trace_id": "4bf9..."}``, empty when none), or None when no line of it carries one."""

    stream: str
    lines: list[str]
    ids: list[dict[str, str]] | None = None


@dataclass
class Decoded:
    _batches: list[tuple[str, list[str], list[dict[str, str]]]] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""

    @property
    def batches(self) -> list[Batch]:
        return [Batch(stream, lines, ids if any(ids) else None)
                for stream, lines, ids in self._batches]

    @property
    def lines(self) -> int:
        return sum(len(lines) for _, lines, _ in self._batches)

    def add(self, stream: str, line: str, ids: dict[str, str] | None = None) -> None:
        if not (self._batches and self._batches[-1][0] == stream):
            self._batches.append((stream, [], []))
        self._batches[-1][1].append(line)
        self._batches[-1][2].append(ids or {})

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reason = self.reason or reason


# ---- OTLP ----
def _any_value(value) -> str | None:
    """An OTLP ``AnyValue`` as the text of one log line (None: it holds nothing)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bytes_value":
        return value.bytes_value.decode("utf-8", errors="replace")
    if kind in ("int_value", "double_value", "bool_value"):
        return str(getattr(value, kind))
    from google.protobuf.json_format import MessageToDict

    return json.dumps(MessageToDict(value), separators=(",", ":"))


def _attributes(kvs) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in kvs if kv.value.WhichOneof("value") == "string_value"}


def _id_keys(record: dict) -> dict[str, str]:
    """The usual trace/request id keys of a record (top-level scalars, as ``score`` keeps a JSON
    line's fields), by their own names."""
    from tinylogbert.sessions.grouping import TRACE_ID_KEYS

    ids = {}
    for key in TRACE_ID_KEYS:
        value = record.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            ids[key] = str(value)
    return ids


def _record_ids(record) -> dict[str, str]:
    """An OTLP record's ids: its attributes' id keys, and its ``traceId`` as ``trace_id``."""
    ids = _id_keys(_attributes(record.attributes))
    if record.trace_id.strip(b"\x00"):  # all zeros: no trace (the spec's invalid id)
        ids[OTLP_TRACE_FIELD] = record.trace_id.hex()
    return ids


def _dicts(value: object) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _hex_ids_as_base64(request: object) -> None:
    """OTLP JSON writes ``traceId``/``spanId`` in hex, where protobuf's JSON mapping reads bytes
    as base64: turn them into base64 so they parse as the ids they are."""
    if not isinstance(request, dict):
        raise LogInputError("the body is not an OTLP JSON ExportLogsServiceRequest: "
                            "not a JSON object")
    for resource_logs in _dicts(request.get("resourceLogs")):
        for scope_logs in _dicts(resource_logs.get("scopeLogs")):
            for record in _dicts(scope_logs.get("logRecords")):
                for key in ("traceId", "spanId", "trace_id", "span_id"):
                    value = record.get(key)
                    if not (isinstance(value, str) and value):
                        continue
                    try:
                        record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        raise LogInputError(
                            "the body is not an OTLP JSON ExportLogsServiceRequest: "
                            f"{key} {value[:40]!r} is not hex") from None


def otlp_stream(resource_attributes: dict[str, str]) -> str:
    service = resource_attributes.get("service.name", "")
    host = resource_attributes.get("host.name", "")
    return "/".join(x for x in (service, host) if x) or "unknown_service"


def parse_otlp(body: bytes, json_body: bool):
    """``(request message, Decoded)``; raises ``LogInputError`` for a body that is no OTLP."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    try:
        if json_body:
            # OTLP JSON: lowerCamelCase names, enums as integers, ids as hex.
            document = json.loads(body.decode("utf-8"))
            _hex_ids_as_base64(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, RecursionError,
            json.JSONDecodeError, binascii.Error) as exc:
        kind = "OTLP JSON" if json_body else "OTLP protobuf"
        raise LogInputError(f"the body is not an {kind} ExportLogsServiceRequest: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
                            ) from None
    decoded = Decoded()
    for resource_logs in request.resource_logs:
        stream = otlp_stream(_attributes(resource_logs.resource.attributes))
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                line = _any_value(record.body)
                if line is None or not line.strip():
                    decoded.reject("a log record without a body has no line to score")
                else:
                    decoded.add(stream, line, _record_ids(record))
    return request, decoded


# ---- newline-delimited text / JSON ----
def _message(record: dict, message_field: str) -> str | None:
    fields = AUTO_MESSAGE_FIELDS if message_field == "auto" else (message_field,)
    for name in fields:
        value = record
        for part in name.split("."):  # a dotted name reaches into nested objects
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            return value
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return None


def parse_lines(body: bytes, content_type: str, message_field: str = "auto",
                stream_field: str | None = None, default_stream: str = DEFAULT_STREAM) -> Decoded:
    """Plain text (each line a log line), NDJSON or a JSON array of objects (the message in
    ``message_field``, the stream in ``stream_field`` when given)."""
    text = body.decode("utf-8", errors="replace")
    media = content_type.split(";")[0].strip().lower()
    stripped = text.lstrip()
    decoded = Decoded()
    is_json = media in ("application/json", "application/x-ndjson", "application/jsonlines",
                        "application/x-jsonlines", "application/ndjson") or (
        media in ("", "application/octet-stream") and stripped[:1] in ("{", "["))
    if not is_json:
        for line in text.splitlines():
            if line.strip():
                decoded.add(default_stream, line)
        return decoded
    if stripped[:1] == "[":
        try:
            records = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise LogInputError(f"the body is not a JSON array: {exc}") from None
        if not isinstance(records, list):
            raise LogInputError("a JSON body must be an array of objects or one object per line")
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise LogInputError(f"line {n} of the body is not JSON: {exc}") from None
    for record in records:
        if not isinstance(record, dict):
            decoded.reject("a JSON record that is not an object")
            continue
        line = _message(record, message_field)
        if line is None or not line.strip():
            decoded.reject(f"a record without a {message_field!r} message field"
                           if message_field != "auto" else
                           f"a record without any of the fields {', '.join(AUTO_MESSAGE_FIELDS)}")
            continue
        stream = default_stream
        if stream_field:
            value = _message(record, stream_field)
            stream = value if value else default_stream
        decoded.add(stream, line.rstrip("\r\n"), _id_keys(record))
    return decoded
