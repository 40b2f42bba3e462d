"""Content negotiation: pick the representation a client prefers from the Accept header."""
from __future__ import annotations

from dataclasses import dataclass

from registry.errors import NotAcceptable

JSONLD = "application/ld+json"
EXPANDED_PROFILE = "http://www.w3.org/ns/json-ld#expanded"
COMPACTED_PROFILE = "http://www.w3.org/ns/json-ld#compacted"
# Offered in this order: with equal q, the earlier one wins (JSON-LD for */*).
RECORD_TYPES = (JSONLD, "application/json", "text/turtle", "application/n-triples",
                "application/n-quads", "text/html")


@dataclass(frozen=True, slots=True)
class Choice:
    media_type: str
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class _Range:
    type: str
    subtype: str
    q: float
    params: dict[str, str]

    def matches(self, media_type: str) -> int:
        """Specificity of the match (2 exact, 1 type/*, 0 */*), or -1."""
        main, _, sub = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type == main and self.subtype == "*":
            return 1
        return 2 if (self.type, self.subtype) == (main, sub) else -1


def _parse(header: str) -> list[_Range]:
    ranges = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0] or "/" not in pieces[0]:
            continue
        main, _, sub = pieces[0].lower().partition("/")
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
            elif name:
                params[name] = value
        ranges.append(_Range(main, sub, q, params))
    return ranges


def negotiate(accept: str | None, offered: tuple[str, ...] = RECORD_TYPES) -> Choice:
    """The best offered type for `accept` (absent or empty: the first offered); 406 if none."""
    if not accept or not accept.strip():
        return Choice(offered[0])
    ranges = _parse(accept)
    best: tuple[float, int, int] | None = None
    choice: Choice | None = None
    for index, media_type in enumerate(offered):
        matching = [(r.matches(media_type), r) for r in ranges if r.matches(media_type) >= 0]
        if not matching:
            continue
        specificity, rng = max(matching, key=lambda m: m[0])  # the most specific range decides q
        if rng.q <= 0:
            continue
        key = (rng.q, specificity, -index)
        if best is None or key > best:
            best = key
            profile = rng.params.get("profile") if specificity == 2 else None
            choice = Choice(media_type, profile)
    if choice is None:
        raise NotAcceptable(f"None of the media types in Accept is offered here. Offered: "
                            f"{', '.join(offered)}.", offered=list(offered))
    return choice
