"""What kind of SPARQL request a text is, without a full parser: its form (the first keyword after
the prologue) and whether it names its own dataset (FROM). Used by /sparql to refuse updates and
pick formats, and by the Virtuoso dialect of the remote store, which must know both before it
adds its dataset pragmas (registry/rdfstore/remote.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass

UPDATE_KEYWORDS = frozenset({"INSERT", "DELETE", "LOAD", "CLEAR", "CREATE", "DROP", "ADD", "MOVE",
                             "COPY", "WITH"})

_TOKEN = re.compile(r'''
    (?P<skip>\s+|\#[^\n\r]*)
  | (?P<string>"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^'\\]|\\.|'(?!''))*\'\'\'
              |"(?:[^"\\\n\r]|\\.)*"|'(?:[^'\\\n\r]|\\.)*')
  | (?P<iri><[^<>"{}|^`\\\x00-\x20]*>)
  | (?P<var>[?$][^\s(){}<>,;.=!|&+*/"'\#\[\]^]+)
  | (?P<name>[A-Za-z_][\w.\-]*:[^\s(){}<>,;"'\#\[\]]*|:[^\s(){}<>,;"'\#\[\]]*)
  | (?P<word>[A-Za-z]+)
  | (?P<open>\{)
  | (?P<close>\})
  | (?P<other>.)
''', re.VERBOSE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Shape:
    form: str | None  # SELECT, ASK, CONSTRUCT, DESCRIBE, an update keyword, or None
    has_dataset: bool  # FROM / FROM NAMED present


def analyze(query: str) -> Shape:
    """The query form (first keyword after PREFIX/BASE) and whether it names its own dataset
    (FROM at brace depth 0). Cheap and tolerant: the engine's parser has the final word."""
    form: str | None = None
    depth = 0
    for match in _TOKEN.finditer(query):
        kind = match.lastgroup
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "word" and depth == 0:
            word = match.group().upper()
            if form is None:
                if word not in ("PREFIX", "BASE"):
                    form = word
            elif word == "FROM":
                return Shape(form, True)
    return Shape(form, False)
