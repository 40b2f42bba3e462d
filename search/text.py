"""Text analysis shared by every backend and by the query side.

Both engines are configured to analyze text exactly like `tokens()` here: split on anything that
is not a letter or a digit, drop tokens of 40 bytes or more, lower-case, fold to ASCII. Tantivy's
`simple` tokenizer + `remove_long(40)` + `lowercase` + `ascii_fold` and Elasticsearch's `pattern`
tokenizer on `[^\\p{L}\\p{N}]+` + `lowercase` + `asciifolding` do that. Query terms are tokenized in
Python so that typo tolerance (one edit per term) and highlighting work term by term, identically
on both backends. No stemming: a stemmed index term ("nurs") is two edits from a typo ("nursng").
"""
from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

MAX_TOKEN_BYTES = 40
FUZZY_MIN_LENGTH = 4  # shorter terms match exactly only (one edit on "rn" matches everything)
_SPLIT = re.compile(r"[^\w]|_", re.UNICODE)
_SPECIAL_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "œ": "oe",
                               "Œ": "oe", "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "þ": "th",
                               "Þ": "th", "ð": "d", "Ð": "d", "ı": "i"})


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """Lower-case and fold to ASCII where a letter has an ASCII base (é -> e, ß -> ss)."""
    word = word.lower().translate(_SPECIAL_FOLD)
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """The analyzed terms of `text`, in order (duplicates kept)."""
    out = []
    for raw in _SPLIT.split(text):
        if raw and len(raw.encode()) < MAX_TOKEN_BYTES:
            out.append(fold(raw))
    return out


def fuzziness(term: str) -> int:
    """Edits a query term may be away from an indexed term and still match."""
    return 1 if len(term) >= FUZZY_MIN_LENGTH else 0


def within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance <= 1 (a transposition counts as one edit, as in both engines)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] \
            and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"


def one_edit_pattern(term: str) -> str:
    """A regular expression for the ASCII terms one edit (Damerau) away from the ASCII term
    `term`, `term` itself left out. ASCII classes, not `.`: Tantivy compiles a regex per query,
    and Unicode classes cost ~3x as much to compile."""
    esc = re.escape
    alternatives = set()
    for i, char in enumerate(term):
        alternatives.add(f"{esc(term[:i])}[{_ALNUM.replace(char, '')}]{esc(term[i + 1:])}")  # changed
        alternatives.add(esc(term[:i] + term[i + 1:]))  # left out
        if i + 1 < len(term) and char != term[i + 1]:
            alternatives.add(esc(term[:i] + term[i + 1] + char + term[i + 2:]))  # swapped
    for i in range(len(term) + 1):
        alternatives.add(f"{esc(term[:i])}[0-9a-z]{esc(term[i:])}")  # added
    return "|".join(sorted(alternatives))


def matches(query_term: str, term: str) -> bool:
    """True if an indexed `term` is matched by `query_term` (exactly, or within its fuzziness)."""
    return term == query_term or (fuzziness(query_term) > 0 and within_one_edit(query_term, term))


_WORDS = re.compile(r"\w+", re.UNICODE)


def highlight(text: str, query_terms: tuple[str, ...], max_chars: int = 0,
              seen: dict[str, bool] | None = None) -> str | None:
    """`text` HTML-escaped with the words matching any query term wrapped in <em>, or None when
    nothing matches. With `max_chars`, a window of about that size around the first match.
    `seen` remembers which words matched, across the calls of one response (cards share words)."""
    if not text or not query_terms:
        return None
    if seen is None:
        seen = {}
    spans = []
    start, end = 0, len(text)
    for m in _WORDS.finditer(text):
        if m.start() >= end:  # past the window: nothing more to mark
            break
        word = m.group(0)
        hit = seen.get(word)
        if hit is None:
            folded = fold(word.replace("_", ""))
            hit = seen[word] = bool(folded) and any(matches(q, folded) for q in query_terms)
        if not hit:
            continue
        spans.append((m.start(), m.end()))
        if len(spans) == 1 and max_chars and len(text) > max_chars:
            start = max(0, m.start() - max_chars // 4)
            end = min(len(text), start + max_chars)
            # Snap to word boundaries so a window never starts or ends mid-word.
            while start > 0 and not text[start - 1].isspace():
                start -= 1
            while end < len(text) and not text[end].isspace():
                end += 1
    if not spans:
        return None
    out = ["…" if start > 0 else ""]
    pos = start
    for s, e in spans:
        if s < start or e > end:
            continue
        out.append(html.escape(text[pos:s]))
        out.append(f"<em>{html.escape(text[s:e])}</em>")
        pos = e
    out.append(html.escape(text[pos:end]))
    if end < len(text):
        out.append("…")
    return "".join(out)


def sort_text(text: str, length: int = 48) -> str:
    """A sort key for names: folded terms joined by single spaces, truncated."""
    return " ".join(tokens(text))[:length]
