"""Inputs of a bulk import: files, directories, JSON Lines and ZIP archives laid out as Credential
Engine's bulk downloads (one graph JSON per file). Yields (source label, raw bytes) lazily."""
from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

_JSON = (".json", ".jsonld")


def _lines(label: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            yield f"{label}:{number}", line


def _zip(path: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            name = info.filename
            if info.is_dir() or Path(name).name.startswith("."):
                continue
            label = f"{path}!{name}"
            if name.endswith(".jsonl"):
                yield from _lines(label, archive.read(info))
            elif name.endswith(_JSON):
                yield label, archive.read(info)


def iter_sources(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix in (*_JSON, ".jsonl", ".zip"))
            yield from iter_sources(files)
        elif path.suffix == ".zip":
            yield from _zip(path)
        elif path.suffix == ".jsonl":
            with open(path, "rb") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        yield f"{path}:{number}", line
        else:
            yield str(path), path.read_bytes()


def count_sources(paths: list[Path]) -> int | None:
    """How many items `iter_sources` will yield, when cheap to know (for the progress bar)."""
    total = 0
    for path in paths:
        if path.is_dir():
            sub = count_sources([p for p in path.rglob("*") if p.is_file()
                                 and p.suffix in (*_JSON, ".jsonl", ".zip")])
            if sub is None:
                return None
            total += sub
        elif path.suffix == ".jsonl":
            with open(path, "rb") as fh:
                total += sum(1 for line in fh if line.strip())
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                if any(n.endswith(".jsonl") for n in archive.namelist()):
                    return None
                total += sum(1 for n in archive.namelist() if n.endswith(_JSON))
        else:
            total += 1
    return total
