"""Reading documents from files: ``.txt`` / ``.md`` files and directories, and JSONL.

JSONL holds one object per line with ``id`` (or BEIR's ``_id``), ``text``, optional ``title`` and
optional ``metadata`` (an object). A text file is keyed by its absolute path; a Markdown file's
first ``# heading`` becomes its title.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pgsearch.exceptions import SourceError
from pgsearch.ingest import DocumentInput

__all__ = ["TEXT_SUFFIXES", "iter_documents"]

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
BEIR_CORPUS = "corpus.jsonl"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


def _text_document(path: Path) -> DocumentInput:
    content = _read_text(path)
    title = path.stem
    if path.suffix == ".md":
        for line in content.splitlines():
            if line.startswith("# "):
                title = line[2:].strip()
                break
    resolved = path.resolve()
    return DocumentInput(
        external_id=str(resolved),
        content=content,
        title=title,
        metadata={"source": str(resolved), "format": path.suffix.lstrip(".")},
    )


def _jsonl_document(path: Path, number: int, line: str) -> DocumentInput:
    where = f"{path}:{number}"
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(record, dict):
        raise SourceError(f"{where}: expected a JSON object per line")
    key = record.get("id", record.get("_id"))
    if isinstance(key, bool) or not isinstance(key, str | int) or str(key) == "":
        raise SourceError(f'{where}: needs an "id" (or "_id") string or number')
    content = record.get("text")
    if not isinstance(content, str):
        raise SourceError(f'{where}: needs a "text" string')
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise SourceError(f'{where}: "title" must be a string')
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise SourceError(f'{where}: "metadata" must be an object')
    return DocumentInput(external_id=str(key), content=content, title=title, metadata=metadata)


def _iter_jsonl(path: Path) -> Iterator[DocumentInput]:
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _jsonl_document(path, number, line)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


def iter_documents(paths: Sequence[str | Path]) -> Iterator[DocumentInput]:
    """Yield the documents in ``paths`` (files or directories), in a stable order.

    Directories are searched recursively for ``.txt`` and ``.md`` files, sorted by path; a
    BEIR dataset directory (one holding ``corpus.jsonl``) stands for its ``corpus.jsonl``.

    Raises:
        SourceError: A path is missing, unreadable, of an unsupported type, or malformed.
    """
    for given in paths:
        path = Path(given)
        if path.is_dir() and (path / BEIR_CORPUS).is_file():
            # A BEIR dataset: its corpus only, never its queries or judgements.
            yield from _iter_jsonl(path / BEIR_CORPUS)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
            for file in files:
                yield _text_document(file)
        elif not path.exists():
            raise SourceError(f"{path}: no such file or directory")
        elif path.suffix in JSONL_SUFFIXES:
            yield from _iter_jsonl(path)
        elif path.suffix in TEXT_SUFFIXES:
            yield _text_document(path)
        else:
            raise SourceError(
                f"{path}: unsupported file type {path.suffix or '(none)'}; "
                "give .txt or .md files, a directory of them, or .jsonl"
            )
