"""Text analysis shared by the backends (search/text.py)."""
from __future__ import annotations

import random
import re

import pytest

from search.text import one_edit_pattern, within_one_edit


def edits(term: str, alphabet: str) -> set[str]:
    """Every string one edit (Damerau) away from `term`, and `term`."""
    out = {term}
    for i in range(len(term) + 1):
        out |= {term[:i] + c + term[i:] for c in alphabet}
        if i < len(term):
            out.add(term[:i] + term[i + 1:])
            out |= {term[:i] + c + term[i + 1:] for c in alphabet}
        if i + 1 < len(term):
            out.add(term[:i] + term[i + 1] + term[i] + term[i + 2:])
    return out


@pytest.mark.parametrize("term", ["level", "nursng", "aaaa", "abba", "80d28f42", "x1y2z3"])
def test_one_edit_pattern_is_the_ascii_words_one_edit_away_and_not_the_word(term: str) -> None:
    pattern = re.compile(one_edit_pattern(term))
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    rng = random.Random(term)
    candidates = edits(term, alphabet) | {"".join(rng.choices(alphabet, k=len(term) + rng.randint(-2, 2)))
                                          for _ in range(500)}
    for candidate in candidates:
        assert bool(pattern.fullmatch(candidate)) == (candidate != term and within_one_edit(term, candidate)), \
            candidate
    assert not pattern.fullmatch(term) and pattern.fullmatch(term + "s") and pattern.fullmatch(term[1:])
