"""Checks that run before the first write: bad input writes nothing."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pgsearch.exceptions import (
    InvalidDocumentError,
)
from pgsearch.ingest.documents import DocumentInput

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "MAX_ID_BYTES",
    "MAX_METADATA_DEPTH",
    "check_documents",
    "given_vectors",
    "prepare_documents",
    "validate_documents",
]


# The unique B-tree index on external_id holds entries of at most about 2,700 bytes; a key of
# 1 KB is plenty for a path, a URL or a primary key, and is refused before the first write.
MAX_ID_BYTES = 1024
# jsonb nests deeply, but a filter reaches a value by a path of keys: 64 levels is generous.
MAX_METADATA_DEPTH = 64
# A document's text is chunked, embedded and indexed in one batch; past this size, split it
# (or raise the limit: max_document_chars=, --max-document-chars).
MAX_DOCUMENT_CHARS = 10_000_000
# Characters that show nothing: whitespace, and format characters (zero-width space, joiners,
# word joiner, byte order mark). A text made only of these cannot be searched.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def _has_text(value: str) -> bool:
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in value)


def _check_metadata(metadata: Mapping[str, Any], where: str) -> None:
    """Keys are strings, strings hold no NUL, nesting is bounded; iterative, so no depth
    of input can exhaust Python's stack."""
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise InvalidDocumentError(
                f"{where}: its metadata is nested more than {MAX_METADATA_DEPTH} levels deep"
            )
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidDocumentError(
                    f"{where}: its metadata contains a NUL character, which PostgreSQL text "
                    "cannot hold; strip it first"
                )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidDocumentError(
                        f"{where}: metadata keys must be strings, got {key!r} (JSON would turn "
                        "it into a string and could merge it with another key)"
                    )
                stack.append((key, depth))
                stack.append((item, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, depth + 1) for item in value)


def _given_chunks(doc: DocumentInput, where: str) -> list[str]:
    """The caller's chunk texts, checked (empty when pgsearch chunks the content)."""
    if doc.chunks is None:
        return []
    if isinstance(doc.chunks, str) or not isinstance(doc.chunks, Sequence) or not doc.chunks:
        raise InvalidDocumentError(f"{where}: chunks must be a non-empty list of texts")
    for position, chunk in enumerate(doc.chunks):
        if not isinstance(chunk, str) or not _has_text(chunk):
            raise InvalidDocumentError(f"{where}: chunk {position} has no text")
    return list(doc.chunks)


def given_vectors(doc: DocumentInput, chunks: int) -> NDArray[np.float32] | None:
    """The document's precomputed vectors as a ``(chunks, dim)`` float32 array, or ``None``.

    Raises:
        InvalidDocumentError: Not one vector per chunk, ragged, or not finite.
    """
    if doc.vectors is None:
        return None
    where = f"document {doc.external_id!r}"
    try:
        array = np.asarray(doc.vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidDocumentError(f"{where}: vectors are not numbers ({exc})") from None
    if array.ndim == 1 and doc.chunks is None:
        array = array.reshape(1, -1)
    expected = "one per chunk" if doc.chunks is not None else "exactly one"
    if array.ndim != 2 or array.shape[0] != chunks or array.shape[1] == 0:
        raise InvalidDocumentError(
            f"{where}: {array.shape[0] if array.ndim else 0} vector(s) of shape "
            f"{array.shape}; give {expected} ({chunks})"
        )
    if not np.isfinite(array).all():
        raise InvalidDocumentError(f"{where}: its vectors hold NaN or infinity")
    return array


def _validate(doc: DocumentInput, max_chars: int) -> str:
    """Check one document; return its metadata as JSON text."""
    if not isinstance(doc.external_id, str) or not doc.external_id.strip():
        raise InvalidDocumentError(
            f"document id {doc.external_id!r} is empty: give every document a key"
        )
    shown = doc.external_id if len(doc.external_id) <= 80 else doc.external_id[:77] + "..."
    where = f"document {shown!r}"
    if not isinstance(doc.content, str) or not _has_text(doc.content):
        raise InvalidDocumentError(f"{where} has no text: empty documents cannot be searched")
    if len(doc.content) > max_chars:
        raise InvalidDocumentError(
            f"{where} has {len(doc.content):,} characters, more than the limit of "
            f"{max_chars:,}: split it into several documents, or raise max_document_chars"
        )
    if doc.title is not None and not isinstance(doc.title, str):
        raise InvalidDocumentError(f"{where}: title must be a string")
    if not isinstance(doc.metadata, Mapping):
        raise InvalidDocumentError(f"{where}: metadata must be a JSON object (a dict)")
    _check_metadata(doc.metadata, where)
    try:
        metadata_json = json.dumps(dict(doc.metadata), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDocumentError(f"{where}: metadata is not JSON-serialisable ({exc})") from exc
    given = _given_chunks(doc, where)
    given_vectors(doc, len(given) if doc.chunks is not None else 1)
    fields = (
        ("id", doc.external_id),
        ("text", doc.content),
        ("title", doc.title or ""),
        *(("chunk", chunk) for chunk in given),
    )
    for name, value in fields:
        if "\x00" in value:
            raise InvalidDocumentError(
                f"{where}: its {name} contains a NUL character, which PostgreSQL text "
                "cannot hold; strip it first"
            )
    for name, value in (*fields, ("metadata", metadata_json)):
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidDocumentError(
                f"{where}: its {name} is not valid Unicode ({exc.reason})"
            ) from exc
        if name == "id" and len(encoded) > MAX_ID_BYTES:
            raise InvalidDocumentError(
                f"{where}: its id is {len(encoded):,} bytes, more than {MAX_ID_BYTES:,}: use a "
                "shorter key (a hash of a long one, say)"
            )
    return metadata_json


def prepare_documents(
    documents: Iterable[DocumentInput], *, max_chars: int = MAX_DOCUMENT_CHARS
) -> list[tuple[DocumentInput, str]]:
    """Validate a batch; pair each document with its metadata as JSON text."""
    prepared: list[tuple[DocumentInput, str]] = []
    seen: set[str] = set()
    for doc in documents:
        metadata_json = _validate(doc, max_chars)
        if doc.external_id in seen:
            raise InvalidDocumentError(f"document {doc.external_id!r} appears twice in one batch")
        seen.add(doc.external_id)
        prepared.append((doc, metadata_json))
    return prepared


def validate_documents(
    documents: Iterable[DocumentInput], *, max_chars: int = MAX_DOCUMENT_CHARS
) -> list[DocumentInput]:
    """Validate a batch before anything is written.

    Raises:
        InvalidDocumentError: A blank text or id, bad metadata, or an id given twice.
    """
    return [doc for doc, _ in prepare_documents(documents, max_chars=max_chars)]


def check_documents(
    documents: Iterable[DocumentInput], *, max_chars: int = MAX_DOCUMENT_CHARS
) -> int:
    """Validate documents as a stream, keeping only their ids; return how many there are.

    For inputs too large to hold: read them once to check, then again to write.

    Raises:
        InvalidDocumentError: As :func:`validate_documents`.
    """
    seen: set[str] = set()
    for doc in documents:
        _validate(doc, max_chars)
        if doc.external_id in seen:
            raise InvalidDocumentError(f"document {doc.external_id!r} appears twice in the input")
        seen.add(doc.external_id)
    return len(seen)
