"""US states and territories: USPS two-letter codes, and reading them from published addresses
("Ohio", "OH", "ohio", "State of Ohio", "N. Carolina")."""
from __future__ import annotations

import re
from functools import lru_cache

STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "AS": "American Samoa", "GU": "Guam", "MP": "Northern Mariana Islands", "PR": "Puerto Rico",
    "VI": "U.S. Virgin Islands", "UM": "U.S. Minor Outlying Islands",
}
_ABBREVIATIONS = {"n": "north", "s": "south", "w": "west", "st": "saint"}
_NON_WORD = re.compile(r"[^a-z]+")


def _key(text: str) -> str:
    words = [w for w in _NON_WORD.split(text.lower()) if w]
    if words[:2] == ["state", "of"] or words[:2] == ["commonwealth", "of"]:
        words = words[2:]
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


_BY_NAME = {_key(name): code for code, name in STATES.items()}
_BY_NAME.update({"virgin islands": "VI", "us virgin islands": "VI", "washington dc": "DC",
                 "washington d c": "DC", "d c": "DC"})
_US = {"", "us", "usa", "u s", "u s a", "united states", "united states of america", "america"}


@lru_cache(maxsize=4096)
def state_code(region: str | None, country: str | None = None) -> str | None:
    """The USPS code of an address region, or None if it is not a US state or territory (or the
    address is in another country)."""
    if not region or (country is not None and _key(country) not in _US):
        return None
    region = region.strip()
    if len(region) == 2 and region.upper() in STATES:
        return region.upper()
    return _BY_NAME.get(_key(region))


def is_us_country(country: str | None) -> bool:
    return country is None or _key(country) in _US
