"""Result cards as the API returns them: the stored card, with what depends on the request worked
out here, the same way for every backend: highlights for the query terms, and the lists the record
is on at the requested date (with the date it was added)."""
from __future__ import annotations

from typing import Any

from search import text, timeline
from search.backend import Hit
from search.query import SearchQuery

HIGHLIGHT_CHARS = 200


def card(hit: Hit, query: SearchQuery, seen: dict[str, bool] | None = None) -> dict[str, Any]:
    """`seen`: words already checked against the query terms (one dict for a response's cards)."""
    out = dict(hit.card)
    history = out.pop("lists", None) or []
    out["lists"] = _lists_on(history, query.as_of)
    out["list_history"] = history
    out["highlights"] = _highlights(out, query.terms, {} if seen is None else seen)
    if hit.score is not None:
        out["score"] = round(hit.score, 4)
    return out


def _lists_on(history: list[dict[str, Any]], day: int) -> list[dict[str, Any]]:
    out = []
    for entry in history:
        for start, end in entry.get("intervals", []):
            lo = timeline.parse_day(start) or 0
            hi = timeline.OPEN_END if end is None else timeline.parse_day(end)
            if hi is not None and lo <= day <= hi:
                out.append({"ctid": entry["ctid"], "name": entry.get("name"), "added": start,
                            "until": end})
                break
    return out


def _highlights(card: dict[str, Any], terms: tuple[str, ...], seen: dict[str, bool]) -> dict[str, Any]:
    if not terms:
        return {}
    out: dict[str, Any] = {}
    for name, value in (("name", card.get("name")), ("description", card.get("description"))):
        marked = text.highlight(value or "", terms, HIGHLIGHT_CHARS if name == "description" else 0, seen)
        if marked:
            out[name] = marked
    for name, key, items in (("occupations", "title", card.get("occupations") or []),
                             ("organizations", "name", (card.get("owner") or []) + (card.get("offered_by") or []))):
        marked_items = [m for m in (text.highlight(i.get(key) or "", terms, 0, seen) for i in items) if m]
        if marked_items:
            out[name] = list(dict.fromkeys(marked_items))
    return out
