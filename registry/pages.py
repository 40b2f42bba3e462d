"""Readable HTML pages for people: a record, its history, the home page."""
from __future__ import annotations

from html import escape
from typing import Any

from ctdl.ctid import from_uri
from registry.store import Record, Version

_STYLE = """body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d2433}h1{font-size:1.6rem;margin-bottom:.2rem}.meta{color:#5b6577}table{border-collapse:
collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:
1px solid #e3e6ec}th{width:16rem;font-weight:600;color:#39414f}td{overflow-wrap:anywhere}td table{margin:0}
a{color:#1357c7}
code{font-size:.9em}nav a{margin-right:1rem}"""


def _page(title: str, body: str) -> bytes:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width,initial-scale=1'><title>{escape(title)} · credreg"
            f"</title><style>{_STYLE}</style></head><body><nav><a href='/'>credreg</a>"
            f"<a href='/changes'>changes</a><a href='/openapi.json'>API</a></nav>{body}"
            f"</body></html>").encode()


def label(value: Any) -> str:
    """A human label from a language map, a string or a list of either (English first)."""
    if isinstance(value, list):
        return ", ".join(label(v) for v in value)
    if isinstance(value, dict):
        if "@value" in value:
            return str(value["@value"])
        for lang in ("en-US", "en", "en-us"):
            if lang in value:
                return label(value[lang])
        return label(next(iter(value.values()), ""))
    return "" if value is None else str(value)


def _value(value: Any, depth: int = 0) -> str:
    if isinstance(value, list):
        return "<br>".join(_value(v, depth) for v in value)
    if isinstance(value, dict):
        if "@value" in value or not any(k.startswith(("@", "ceterms:", "ceasn:", "qdata:", "schema:"))
                                        for k in value):
            return escape(label(value))
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{_value(v, depth + 1)}</td></tr>"
                       for k, v in value.items() if k != "@context")
        return f"<table>{rows}</table>"
    text = "" if value is None else str(value)
    if text.startswith(("http://", "https://")):
        # a record's URI may belong to another registry; the copy here is at /resources/{ctid}
        ctid = from_uri(text) if "/resources/" in text else None
        href = f"/resources/{ctid}" if ctid else text
        return f"<a href='{escape(href)}'>{escape(text)}</a>"
    return escape(text)


def record_page(record: Record, view: dict[str, Any], path: str) -> bytes:
    name = label(view.get("ceterms:name") or view.get("ceasn:name")) or record.ctid
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_value(v)}</td></tr>" for k, v in view.items()
                   if k not in ("@context",))
    alternates = " · ".join(
        f"<a href='{path}?format={fmt}'>{fmt}</a>" for fmt in ("jsonld", "turtle", "ntriples"))
    body = (f"<h1>{escape(name)}</h1><p class=meta>{escape(record.type)} · <code>"
            f"{escape(record.ctid)}</code> · version {record.version} · modified "
            f"{escape(record.modified)} · <a href='/graph/{record.ctid}/versions'>history</a></p>"
            f"<p class=meta>Also as {alternates}</p><table>{rows}</table>")
    return _page(name, body)


def versions_page(ctid: str, versions: list[Version]) -> bytes:
    rows = "".join(
        f"<tr><td><a href='/graph/{ctid}/versions/{v.version}'>{v.version}</a></td>"
        f"<td>{escape(v.action)}</td><td>{escape(v.at)}</td><td>{escape(v.publisher or 'admin')}"
        f"</td></tr>" for v in versions)
    return _page(f"History of {ctid}", f"<h1>History of <code>{escape(ctid)}</code></h1><table>"
                 f"<tr><th>version</th><th>action</th><th>at</th><th>published by</th></tr>"
                 f"{rows}</table>")


def home_page(count: int, last_seq: int) -> bytes:
    return _page("credreg", f"<h1>credreg</h1><p>A linked-data registry of credentials and the "
                 f"evidence of their value.</p><p class=meta>{count} records · change log at "
                 f"sequence {last_seq}</p><p>Read any record at <code>/graph/{{ctid}}</code> or "
                 f"<code>/resources/{{ctid}}</code> as JSON-LD, Turtle, N-Triples, N-Quads or HTML."
                 f"</p>")
