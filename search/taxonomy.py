"""Occupation (SOC 2018), industry (NAICS 2022) and instructional program (CIP) codes: recognizing
them in alignments, normalizing them, and their titles (vendored tables, see search/SOURCES.md)."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SOC_RE = re.compile(r"^(\d{2}-\d{4})(?:\.\d{2})?$")  # 15-1212, or O*NET-SOC 15-1212.00
SOC_GROUP_RE = re.compile(r"^(\d{2})(?:-0000)?$")
_SOC_IN_URL = re.compile(r"(\d{2}-\d{4})(?:\.\d{2})?(?:[/?#]|$)")
NAICS_RE = re.compile(r"^(\d{2,6}|\d{2}-\d{2})$")
CIP_RE = re.compile(r"^(\d{2})(?:[.-](\d{2})(\d{2})?)?$")  # 51, 51.38, 51.3801 (49-0205 seen too)
# NAICS sectors that span several 2-digit codes.
_NAICS_SECTOR = {"31": "31-33", "32": "31-33", "33": "31-33", "44": "44-45", "45": "44-45",
                 "48": "48-49", "49": "48-49"}


@dataclass(frozen=True, slots=True)
class Tables:
    soc: dict[str, str]  # detailed/broad/minor code -> title
    soc_detailed: tuple[tuple[str, str], ...]  # (code, title) of the 867 detailed occupations
    soc_groups: dict[str, str]  # "15" -> "Computer and Mathematical Occupations"
    naics: dict[str, str]  # code (incl. "31-33") -> title


@cache
def tables() -> Tables:
    soc: dict[str, str] = {}
    groups: dict[str, str] = {}
    detailed: list[tuple[str, str]] = []
    with open(DATA / "soc2018_all.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Level"] == "2":
                groups[row["code"][:2]] = row["title"]
            else:
                soc[row["code"]] = row["title"]
            if row["Level"] == "6":
                detailed.append((row["code"], row["title"]))
    naics: dict[str, str] = {}
    with open(DATA / "naics2022_all.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            naics[row["code"]] = row["title"]
    return Tables(soc, tuple(detailed), groups, naics)


@lru_cache(maxsize=8192)  # codes recur across records; published text is unbounded
def soc_code(coded: str | None, target: str | None = None) -> str | None:
    """The 6-character SOC code of an occupation alignment (from its codedNotation, else from a
    code at the end of its targetNode URL), or None."""
    if coded:
        m = SOC_RE.match(coded.strip())
        if m:
            return m.group(1)
    if target:
        m = _SOC_IN_URL.search(target)
        if m:
            return m.group(1)
    return None


def soc_title(code: str) -> str | None:
    return tables().soc.get(code)


def soc_group_title(group: str) -> str | None:
    return tables().soc_groups.get(group)


@lru_cache(maxsize=8192)
def naics_code(coded: str | None) -> str | None:
    if not coded:
        return None
    coded = coded.strip()
    return coded if NAICS_RE.match(coded) else None


def naics_sector(code: str) -> str:
    """The sector of a NAICS code as the tables spell it: "336111" -> "31-33", "541" -> "54"."""
    if "-" in code:
        return code
    return _NAICS_SECTOR.get(code[:2], code[:2])


@lru_cache(maxsize=8192)
def naics_terms(code: str) -> tuple[str, ...]:
    """Index terms of a NAICS code: its sector and every prefix of 3 or more digits, so a filter on
    any level of the hierarchy finds the codes below it."""
    if "-" in code:
        return (code,)
    return (naics_sector(code), *(code[:n] for n in range(3, len(code) + 1)))


def naics_title(code: str) -> str | None:
    return tables().naics.get(code)


@lru_cache(maxsize=8192)
def cip_code(coded: str | None) -> str | None:
    """A CIP code normalized to `NN`, `NN.NN` or `NN.NNNN` (a dash is read as the dot)."""
    if not coded:
        return None
    m = CIP_RE.match(coded.strip())
    if not m:
        return None
    family, series, detail = m.groups()
    if series is None:
        return family
    return f"{family}.{series}{detail or ''}"


@lru_cache(maxsize=8192)
def cip_terms(code: str) -> tuple[str, ...]:
    """Index terms of a CIP code: the family, the series and the code itself."""
    out = [code[:2]]
    if len(code) >= 5:
        out.append(code[:5])
    if len(code) == 7:
        out.append(code)
    return tuple(out)


def normalize_naics_filter(value: str) -> str | None:
    """A NAICS filter value as indexed (2-digit sector codes map to their sector)."""
    value = value.strip()
    if not NAICS_RE.match(value):
        return None
    if len(value) == 2:
        return _NAICS_SECTOR.get(value, value)
    return value


def occupations_matching(prefix_terms: list[str], limit: int = 50) -> list[tuple[str, str]]:
    """SOC 2018 detailed occupations whose title has a word starting with each of the given
    (folded) terms: [(code, title)], for autocomplete."""
    from search.text import tokens

    out = []
    for code, title in tables().soc_detailed:
        words = tokens(title)
        if all(any(w.startswith(t) for w in words) for t in prefix_terms):
            out.append((code, title))
            if len(out) >= limit:
                break
    return out
