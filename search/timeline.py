"""Date intervals as index terms, so "on list L as of day D" is one term-set query for any D.

A membership interval [start, end] (days since 1970-01-01, inclusive) is split into its canonical
dyadic blocks: aligned runs of 2^k days. Exactly one block of each size contains a given day, so
the day's blocks (one per level) are the only terms a query needs, and an interval contains the
day iff one of its blocks is among them. Overlapping intervals of one list are merged first, so a
document has at most one matching term per list and day: a terms aggregation restricted to the
day's blocks counts members per list exactly.
"""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

LEVELS = 17  # 2^17 days: 1970 to 2328
OPEN_END = (1 << LEVELS) - 1
EPOCH = date(1970, 1, 1)


def day(value: date) -> int:
    return min(max((value - EPOCH).days, 0), OPEN_END)


def parse_day(text: str | None) -> int | None:
    """Days since the epoch of an ISO date or date-time (its first ten characters), or None."""
    if not text or not isinstance(text, str):
        return None
    try:
        return day(date.fromisoformat(text.strip()[:10]))
    except ValueError:
        return None


def to_date(days: int) -> str:
    return date.fromordinal(EPOCH.toordinal() + days).isoformat()


def today() -> int:
    return day(datetime.now().date())


def merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-adjacent intervals covering the same days."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(i for i in intervals if i[0] <= i[1]):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def blocks(start: int, end: int) -> list[tuple[int, int]]:
    """The canonical dyadic decomposition of [start, end]: (level, index) pairs, where block
    (k, i) covers days [i * 2^k, (i + 1) * 2^k - 1]."""
    out = []
    lo = start
    while lo <= end:
        # The largest aligned block starting at `lo` that still ends by `end`.
        level = min((lo & -lo).bit_length() - 1, LEVELS) if lo else LEVELS
        while lo + (1 << level) - 1 > end:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def day_blocks(d: int) -> list[tuple[int, int]]:
    """The block of each level that contains day `d`."""
    return [(level, d >> level) for level in range(LEVELS + 1)]


def interval_terms(key: str, intervals: list[tuple[int, int]]) -> list[str]:
    return [f"{key}:{block}" for block in _interval_blocks(tuple(intervals))]


@lru_cache(maxsize=4096)
def _interval_blocks(intervals: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
    # Members of a list mostly share their dates (added at the same review).
    return tuple(f"{level}:{index}" for s, e in merge(list(intervals)) for level, index in blocks(s, e))


def day_terms(key: str, d: int) -> list[str]:
    return [f"{key}:{level}:{index}" for level, index in day_blocks(d)]


def day_suffix_regex(d: int) -> str:
    """A regex matching any `{key}:{level}:{index}` term whose block contains day `d` (the same
    syntax works for Tantivy's and Lucene's include filters)."""
    return "[^:]+:(" + "|".join(f"{level}:{index}" for level, index in day_blocks(d)) + ")"
