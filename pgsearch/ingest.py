"""The write path: validate -> compare hashes -> chunk -> embed -> set-based upsert.

Everything that can fail (validation, chunking, embedding) happens before the first write, and
every write goes to the caller's transaction, so a document is stored whole or not at all.
Documents whose content is unchanged are not re-chunked or re-embedded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from pgsearch.chunking import ChunkingOptions, chunk_text
from pgsearch.embedders.base import Embedder, check_vectors
from pgsearch.exceptions import DocumentExistsError, InvalidDocumentError, translate_errors
from pgsearch.store_config import StoreSettings
from pgsearch.types import vector_literal

__all__ = [
    "DocumentInput",
    "IngestSummary",
    "content_hash",
    "validate_documents",
    "write_documents",
]


@dataclass(frozen=True)
class DocumentInput:
    """A document to store.

    Attributes:
        external_id: The caller's unique key (a path, a URL, a primary key...).
        content: The text to chunk, embed and index; must not be blank.
        title: Optional title.
        metadata: A JSON object stored on the document and repeated on its chunks.
    """

    external_id: str
    content: str
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class IngestSummary:
    """Counts of what a write did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0

    def __iadd__(self, other: IngestSummary) -> IngestSummary:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.chunks += other.chunks
        return self


def content_hash(value: str) -> str:
    """SHA-256 of the UTF-8 text, as hex: the key that decides whether to re-embed."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _has_nul(value: Any) -> bool:
    """Whether a JSON value holds NUL in a key or string (jsonb refuses \\u0000 like text)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _validate(doc: DocumentInput) -> str:
    """Check one document; return its metadata as JSON text."""
    if not isinstance(doc.external_id, str) or not doc.external_id.strip():
        raise InvalidDocumentError(
            f"document id {doc.external_id!r} is empty: give every document a key"
        )
    where = f"document {doc.external_id!r}"
    if not isinstance(doc.content, str) or not doc.content.strip():
        raise InvalidDocumentError(f"{where} has no text: empty documents cannot be searched")
    if doc.title is not None and not isinstance(doc.title, str):
        raise InvalidDocumentError(f"{where}: title must be a string")
    if not isinstance(doc.metadata, Mapping):
        raise InvalidDocumentError(f"{where}: metadata must be a JSON object (a dict)")
    try:
        metadata_json = json.dumps(dict(doc.metadata), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDocumentError(f"{where}: metadata is not JSON-serialisable ({exc})") from exc
    fields = (("id", doc.external_id), ("text", doc.content), ("title", doc.title or ""))
    for name, value in (*fields, ("metadata", metadata_json)):
        if "\x00" in value or (name == "metadata" and _has_nul(doc.metadata)):
            raise InvalidDocumentError(
                f"{where}: its {name} contains a NUL character, which PostgreSQL text "
                "cannot hold; strip it first"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidDocumentError(
                f"{where}: its {name} is not valid Unicode ({exc.reason})"
            ) from exc
    return metadata_json


def _prepare(documents: Iterable[DocumentInput]) -> list[tuple[DocumentInput, str]]:
    """Validate a batch; pair each document with its metadata as JSON text."""
    prepared: list[tuple[DocumentInput, str]] = []
    seen: set[str] = set()
    for doc in documents:
        metadata_json = _validate(doc)
        if doc.external_id in seen:
            raise InvalidDocumentError(f"document {doc.external_id!r} appears twice in one batch")
        seen.add(doc.external_id)
        prepared.append((doc, metadata_json))
    return prepared


def validate_documents(documents: Iterable[DocumentInput]) -> list[DocumentInput]:
    """Validate a batch before anything is written.

    Raises:
        InvalidDocumentError: A blank text or id, bad metadata, or an id given twice.
    """
    return [doc for doc, _ in _prepare(documents)]


_LOCK_EXISTING = text(
    "SELECT id, external_id, content_hash FROM pgsearch.documents"
    " WHERE external_id = ANY(CAST(:external_ids AS text[]))"
    " ORDER BY external_id FOR UPDATE"
)

_UPSERT_DOCUMENTS = text(
    """
    INSERT INTO pgsearch.documents AS d (external_id, title, content, metadata, content_hash)
    SELECT * FROM unnest(
        CAST(:external_ids AS text[]), CAST(:titles AS text[]), CAST(:contents AS text[]),
        CAST(:metadata AS jsonb[]), CAST(:hashes AS text[]))
    ON CONFLICT (external_id) DO UPDATE
        SET title = excluded.title, content = excluded.content, metadata = excluded.metadata,
            content_hash = excluded.content_hash, updated_at = now()
        WHERE (d.title, d.content, d.metadata, d.content_hash) IS DISTINCT FROM
              (excluded.title, excluded.content, excluded.metadata, excluded.content_hash)
    RETURNING id, external_id
    """
)

_DELETE_CHUNKS = text(
    "DELETE FROM pgsearch.chunks WHERE document_id = ANY(CAST(:document_ids AS bigint[]))"
)

_SYNC_CHUNK_METADATA = text(
    """
    UPDATE pgsearch.chunks AS c SET metadata = d.metadata
    FROM pgsearch.documents AS d
    WHERE d.id = c.document_id AND d.id = ANY(CAST(:document_ids AS bigint[]))
      AND c.metadata IS DISTINCT FROM d.metadata
    """
)

_INSERT_CHUNKS = text(
    """
    INSERT INTO pgsearch.chunks (document_id, position, content, content_hash, metadata, embedding)
    SELECT chunk.document_id, chunk.position, chunk.content, chunk.content_hash, d.metadata,
           chunk.embedding
    FROM unnest(
        CAST(:document_ids AS bigint[]), CAST(:positions AS integer[]),
        CAST(:contents AS text[]), CAST(:hashes AS text[]), CAST(:embeddings AS vector[]))
        AS chunk(document_id, position, content, content_hash, embedding)
    JOIN pgsearch.documents AS d ON d.id = chunk.document_id
    """
)


def write_documents(
    session: Session,
    store: StoreSettings,
    embedder: Embedder,
    documents: Iterable[DocumentInput],
    *,
    replace: bool,
    chunking: ChunkingOptions | None = None,
) -> IngestSummary:
    """Store a batch of documents with their chunks and embeddings in the session's transaction.

    Args:
        session: The caller's session; nothing is committed here.
        store: The store's settings (checked against ``embedder`` by the caller).
        embedder: Embeds new and changed chunks.
        documents: The batch.
        replace: ``True`` upserts by ``external_id``; ``False`` refuses existing ids.
        chunking: Chunk size budget and overlap.

    Raises:
        InvalidDocumentError: See :func:`validate_documents`.
        DocumentExistsError: ``replace`` is false and some ids are stored already.
    """
    # One order for every writer (locks, inserts) keeps overlapping batches from deadlocking.
    prepared = sorted(_prepare(documents), key=lambda pair: pair[0].external_id)
    if not prepared:
        return IngestSummary()
    batch = [doc for doc, _ in prepared]
    hashes = [content_hash(doc.content) for doc in batch]
    with translate_errors():
        existing = {
            row.external_id: row.content_hash
            for row in session.execute(
                _LOCK_EXISTING, {"external_ids": [doc.external_id for doc in batch]}
            )
        }
        if existing and not replace:
            shown = ", ".join(sorted(existing)[:5])
            raise DocumentExistsError(
                f"{len(existing)} document(s) already stored ({shown}): use upsert to replace them"
            )

        changed = [i for i, doc in enumerate(batch) if existing.get(doc.external_id) != hashes[i]]
        changed_set = set(changed)
        chunk_rows: list[tuple[str, int, str]] = []  # (external_id, position, text)
        for i in changed:
            for chunk in chunk_text(batch[i].content, chunking):
                chunk_rows.append((batch[i].external_id, chunk.position, chunk.text))
        texts = [row[2] for row in chunk_rows]
        # Not every embedder accepts an empty batch; unchanged documents need no call at all.
        vectors: Iterable[Any] = (
            check_vectors(
                embedder.embed_documents(texts), len(texts), store.embedding_dim, embedder.name
            )
            if texts
            else []
        )

        returned = session.execute(
            _UPSERT_DOCUMENTS,
            {
                "external_ids": [doc.external_id for doc in batch],
                "titles": [doc.title for doc in batch],
                "contents": [doc.content for doc in batch],
                "metadata": [metadata_json for _, metadata_json in prepared],
                "hashes": hashes,
            },
        ).all()
        ids = {row.external_id: row.id for row in returned}
        changed_ids = [
            ids[batch[i].external_id] for i in changed if batch[i].external_id in existing
        ]
        if changed_ids:
            session.execute(_DELETE_CHUNKS, {"document_ids": changed_ids})
        touched_unchanged = [
            ids[doc.external_id]
            for i, doc in enumerate(batch)
            if doc.external_id in ids and i not in changed_set
        ]
        if touched_unchanged:
            session.execute(_SYNC_CHUNK_METADATA, {"document_ids": touched_unchanged})
        if chunk_rows:
            session.execute(
                _INSERT_CHUNKS,
                {
                    "document_ids": [ids[external_id] for external_id, _, _ in chunk_rows],
                    "positions": [position for _, position, _ in chunk_rows],
                    "contents": [chunk for _, _, chunk in chunk_rows],
                    "hashes": [content_hash(chunk) for _, _, chunk in chunk_rows],
                    "embeddings": [vector_literal(v) for v in vectors],
                },
            )
    inserted = sum(1 for doc in batch if doc.external_id not in existing)
    updated = sum(1 for doc in batch if doc.external_id in existing and doc.external_id in ids)
    return IngestSummary(
        inserted=inserted,
        updated=updated,
        unchanged=len(batch) - inserted - updated,
        chunks=len(chunk_rows),
    )
