"""The API's docs page, rendered on the server from the OpenAPI schema: self-contained.

Why not FastAPI's Swagger UI / ReDoc: they load their JavaScript and CSS from a CDN, so ``/docs``
was blank offline, and every visit told a third party that this server exists. This page is one
HTML document with inline CSS and no script: it loads nothing from anywhere, works offline, and
needs only the one request (which the API key guards like any other).
"""
from __future__ import annotations

import json
from html import escape
from typing import Any

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:1em 1.5em;color:#222}
h1{margin-bottom:.1em} .op{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em 1em}
.m{display:inline-block;min-width:4em;font-weight:700;color:#fff;border-radius:4px;
padding:0 .4em;text-align:center;margin-right:.5em} .get{background:#2f7d32} .post{background:#1565c0}
code,pre{font:13px ui-monospace,monospace;background:#f5f5f5} pre{padding:.6em;overflow:auto}
table{border-collapse:collapse} td,th{border-bottom:1px solid #eee;padding:.2em .6em;text-align:left}
"""


def _ref_name(schema: dict) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else ""


def _type_of(schema: dict) -> str:
    if _ref_name(schema):
        return _ref_name(schema)
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type_of(schema.get('items', {}))}]"
    return str(schema.get("type", "any"))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
        f"<td>{escape(_type_of(p.get('schema', {})))}</td>"
        f"<td>{escape(p.get('description', '') or p.get('schema', {}).get('description', ''))}</td></tr>"
        for p in op.get("parameters", [])
    )
    body = op.get("requestBody", {}).get("content", {})
    bodies = "".join(
        f"<p>Body <code>{escape(media)}</code>: <code>{escape(_type_of(c.get('schema', {})))}</code></p>"
        for media, c in body.items()
    )
    responses = ", ".join(
        f"<code>{escape(code)}</code> {escape(r.get('description', ''))}"
        for code, r in op.get("responses", {}).items()
    )
    return (
        f'<div class="op"><h3><span class="m {method}">{method.upper()}</span>'
        f"<code>{escape(path)}</code> {escape(op.get('summary', ''))}</h3>"
        f"<p>{escape(op.get('description', ''))}</p>"
        + (f"<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>{rows}</table>"
           if rows else "")
        + bodies + f"<p>Responses: {responses}</p></div>"
    )


def docs_page(schema: dict[str, Any]) -> str:
    """One HTML page: every operation, then every schema, then the raw OpenAPI document."""
    info = schema.get("info", {})
    ops = "".join(
        _operation(path, method, op)
        for path, methods in schema.get("paths", {}).items()
        for method, op in methods.items()
    )
    models = "".join(
        f"<details><summary><code>{escape(name)}</code></summary>"
        f"<pre>{escape(json.dumps(s, indent=2))}</pre></details>"
        for name, s in schema.get("components", {}).get("schemas", {}).items()
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(info.get('title', 'API'))} API</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(info.get('title', 'API'))} <small>{escape(info.get('version', ''))}</small></h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        "<p>The machine-readable schema is at <code>/openapi.json</code>.</p>"
        f"<h2>Endpoints</h2>{ops}<h2>Schemas</h2>{models}"
        f"<details><summary>OpenAPI document</summary><pre>{escape(json.dumps(schema, indent=2))}"
        "</pre></details></body></html>"
    )
