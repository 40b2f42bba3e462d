"""What kind of SPARQL request a text is, without a full parser: its form (the first keyword after
the prologue), whether it names its own dataset (FROM) and whether it calls another endpoint
(SERVICE). Used by /sparql to refuse updates and federated queries and pick formats, and by the
Virtuoso dialect of the remote store, which must know the form and dataset before it adds its
dataset pragmas (registry/rdfstore/remote.py)."""
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
  | (?P<lang>@[A-Za-z]+(?:-[A-Za-z0-9]+)*)
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
    # The endpoint of the first SERVICE clause as written (an IRI, a prefixed name or a variable),
    # or "SERVICE" when nothing follows it; None without SERVICE.
    service: str | None = None


def analyze(query: str) -> Shape:
    """The query form (first keyword after PREFIX/BASE), whether it names its own dataset (FROM
    at brace depth 0) and its first SERVICE clause (at any depth). Keywords are words outside
    strings, IRIs, prefixed names, variables, language tags and comments, so none of those is
    taken for one. Cheap and tolerant: the engine's parser has the final word."""
    form: str | None = None
    has_dataset = False
    service: str | None = None
    depth = 0
    after_service = False
    for match in _TOKEN.finditer(query):
        kind = match.lastgroup
        if kind == "skip":
            continue
        if after_service:
            text = match.group()
            if kind == "word" and text.upper() == "SILENT":
                continue
            service = text if kind in ("iri", "name", "var") else "SERVICE"
            after_service = False
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "word":
            word = match.group().upper()
            if word == "SERVICE":
                after_service = service is None
            elif depth == 0:
                if form is None:
                    if word not in ("PREFIX", "BASE"):
                        form = word
                elif word == "FROM":
                    has_dataset = True
    if after_service and service is None:
        service = "SERVICE"
    return Shape(form, has_dataset, service)
