"""The write path: validate -> compare hashes -> vectors (cache, embedder) -> lock -> write.

Everything that can fail (validation, chunking, embedding) happens before the first write, and
every write goes to the caller's transaction, so a document is stored whole or not at all.
Documents whose content is unchanged are not re-chunked or re-embedded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pgsearch.chunking import ChunkingOptions, TextChunk, chunk_text
from pgsearch.embedders.base import Embedder
from pgsearch.embedding_cache import Wanted, vectors_for
from pgsearch.exceptions import (
    DocumentExistsError,
    EmbeddingMismatchError,
    translate_errors,
)
from pgsearch.ingest import statements as sql
from pgsearch.ingest.documents import (
    DocumentInput,
    IngestSummary,
    content_hash,
    embedded_text,
)
from pgsearch.ingest.validation import MAX_DOCUMENT_CHARS, given_vectors, prepare_documents
from pgsearch.store_config import StoreSettings
from pgsearch.types import Distance

__all__ = ["write_documents"]


@dataclass(frozen=True)
class _Pending:
    """A validated document with everything computed before the database is touched."""

    doc: DocumentInput
    metadata_json: str
    content_hash: str
    chunks: list[TextChunk]
    chunk_hashes: list[str]
    vectors: NDArray[np.float32] | None  # precomputed, one per chunk


def _chunks(doc: DocumentInput, chunking: ChunkingOptions | None) -> list[TextChunk]:
    """The caller's chunks, the whole text for one precomputed vector, else pgsearch's."""
    if doc.chunks is not None:
        texts = list(doc.chunks)
    elif doc.vectors is not None:
        texts = [doc.content]
    else:
        return chunk_text(doc.content, chunking)
    return [TextChunk(t, i, len(texts), 0, len(t)) for i, t in enumerate(texts)]


def _pending(
    documents: Iterable[DocumentInput], chunking: ChunkingOptions | None, max_chars: int
) -> list[_Pending]:
    pending = []
    for doc, metadata_json in prepare_documents(documents, max_chars=max_chars):
        chunks = _chunks(doc, chunking)
        pending.append(
            _Pending(
                doc=doc,
                metadata_json=metadata_json,
                content_hash=content_hash(doc.content),
                chunks=chunks,
                # The hash of the text embedded (title included): a new title re-embeds.
                chunk_hashes=[
                    content_hash(embedded_text(doc.title, chunk.text)) for chunk in chunks
                ],
                vectors=given_vectors(doc, len(chunks)),
            )
        )
    # One order for every writer (locks, inserts) keeps overlapping batches from deadlocking:
    # Python orders str by code point, as the "C" collation orders UTF-8 in sql.stored_documents.
    return sorted(pending, key=lambda item: item.doc.external_id)


def _stored(
    session: Session, batch: list[_Pending], *, lock: bool
) -> dict[str, tuple[int, list[str]]]:
    """The batch's stored documents as ``external_id -> (id, chunk hashes)``; with ``lock``,
    locked ``FOR UPDATE`` in one order for every writer."""
    ids = dict(
        (external_id, i)
        for i, external_id in sql.stored_documents(
            session, [item.doc.external_id for item in batch], lock=lock
        )
    )
    hashes: dict[int, list[str]] = {document_id: [] for document_id in ids.values()}
    if ids:
        for document_id, chunk_hash in sql.stored_chunk_hashes(session, list(ids.values())):
            hashes[document_id].append(chunk_hash)
    return {external_id: (i, hashes[i]) for external_id, i in ids.items()}


def _changed(batch: list[_Pending], stored: dict[str, tuple[int, list[str]]]) -> list[_Pending]:
    """Documents whose chunks differ from the stored ones (or that are not stored)."""
    return [
        item
        for item in batch
        if item.doc.external_id not in stored
        or stored[item.doc.external_id][1] != item.chunk_hashes
    ]


def _wanted(items: list[_Pending], known: Mapping[str, Any]) -> dict[str, Wanted]:
    """The chunk texts of ``items`` that have no vector in ``known`` yet, by text hash."""
    return {
        chunk_hash: Wanted(
            embedded_text(item.doc.title, chunk.text), item.doc.external_id, chunk.position
        )
        for item in items
        if item.vectors is None
        for chunk, chunk_hash in zip(item.chunks, item.chunk_hashes, strict=True)
        if chunk_hash not in known
    }


def _write_document_rows(
    session: Session, batch: list[_Pending], *, replace: bool
) -> tuple[dict[str, int], set[str], set[str]]:
    """Insert or update document rows; return ids, inserted ids and updated ids."""
    rows = sql.write_document_rows(
        session,
        {
            "external_ids": [item.doc.external_id for item in batch],
            "titles": [item.doc.title for item in batch],
            "contents": [item.doc.content for item in batch],
            "metadata": [item.metadata_json for item in batch],
            "hashes": [item.content_hash for item in batch],
        },
        replace=replace,
    )
    ids = {external_id: i for i, external_id, _ in rows}
    inserted = {external_id for _, external_id, new in rows if new}
    updated = {external_id for _, external_id, new in rows if not new}
    missing = [item.doc.external_id for item in batch if item.doc.external_id not in ids]
    if missing and not replace:
        raise DocumentExistsError(
            f"{len(missing)} document(s) were stored meanwhile by another transaction "
            f"({', '.join(missing[:5])}): use upsert to replace them"
        )
    if missing:
        # Unchanged rows return nothing from the upsert; it has locked them all the same.
        unlocked = sql.stored_documents(session, missing, lock=False)
        ids.update((external_id, i) for i, external_id in unlocked)
    return ids, inserted, updated


def _check_given(item: _Pending, store: StoreSettings) -> None:
    assert item.vectors is not None
    where = f"document {item.doc.external_id!r}"
    if item.vectors.shape[1] != store.embedding_dim:
        raise EmbeddingMismatchError(
            f"{where}: its vectors have {item.vectors.shape[1]} dimensions, the store holds "
            f"{store.embedding_dim} ({store.embedding_model}): give vectors of that model"
        )
    if store.distance is Distance.COSINE and not item.vectors.any(axis=1).all():
        raise EmbeddingMismatchError(
            f"{where}: an all-zero vector; cosine distance is undefined for it"
        )


def _refuse_existing(stored: Mapping[str, Any]) -> None:
    shown = ", ".join(sorted(stored)[:5])
    raise DocumentExistsError(
        f"{len(stored)} document(s) already stored ({shown}): use upsert to replace them"
    )


def write_documents(
    session: Session,
    store: StoreSettings,
    embedder: Embedder,
    documents: Iterable[DocumentInput],
    *,
    replace: bool,
    chunking: ChunkingOptions | None = None,
    cache_engine: Engine | None = None,
    max_document_chars: int = MAX_DOCUMENT_CHARS,
) -> IngestSummary:
    """Store a batch of documents with their chunks and embeddings in the session's transaction.

    A stored document is re-chunked and re-embedded only when its chunks would differ (by the
    hashes of the texts embedded, title included): new text, a new title or new chunking
    settings. A change of metadata alone updates the rows without embedding anything.

    Args:
        session: The caller's session; nothing is committed here.
        store: The store's settings (checked against ``embedder`` by the caller).
        embedder: Embeds new and changed chunks.
        documents: The batch.
        replace: ``True`` upserts by ``external_id``; ``False`` refuses existing ids.
        chunking: Chunk size budget and overlap.
        cache_engine: Add new vectors to the embedding cache through this engine, in
            transactions of their own (see :func:`pgsearch.embedding_cache.vectors_for`);
            default: in the session's transaction.
        max_document_chars: Longer documents are refused (:data:`MAX_DOCUMENT_CHARS`).

    Raises:
        InvalidDocumentError: See :func:`validate_documents`.
        DocumentExistsError: ``replace`` is false and some ids are stored already.
    """
    batch = _pending(documents, chunking, max_document_chars)
    if not batch:
        return IngestSummary()
    for item in batch:
        if item.vectors is not None:
            _check_given(item, store)
    with translate_errors(vectors=True):
        # Embed before taking row locks: a slow or retrying embedder must not hold other
        # writers up, nor leave this session idle in a transaction that holds locks.
        seen = _stored(session, batch, lock=False)
        if seen and not replace:
            _refuse_existing(seen)
        wanted = _wanted(_changed(batch, seen), {})
        vectors, embedded = vectors_for(session, store, embedder, wanted, cache_engine=cache_engine)

        stored = _stored(session, batch, lock=True)
        if stored and not replace:
            _refuse_existing(stored)
        changed = _changed(batch, stored)
        # A concurrent writer may have changed a document since the first read: embed what
        # that leaves without a vector (rare, and the only embedding done under the locks).
        late = _wanted(changed, vectors)
        more, embedded_late = vectors_for(session, store, embedder, late, cache_engine=cache_engine)
        vectors.update(more)
        embedded |= embedded_late

        # A savepoint makes the batch whole or absent even for a caller who catches the error
        # and commits: add() can find a conflict after inserting some of the batch's rows.
        with session.begin_nested():
            ids, inserted, updated = _write_document_rows(session, batch, replace=replace)
            changed_ids = {ids[item.doc.external_id] for item in changed}
            replaced = [
                ids[i.doc.external_id] for i in changed if i.doc.external_id not in inserted
            ]
            if replaced:
                sql.delete_chunks(session, replaced)
            kept = [i for i in ids.values() if i not in changed_ids]
            if kept:
                sql.sync_chunk_metadata(session, kept)
            chunk_rows = [
                (
                    ids[item.doc.external_id],
                    chunk.position,
                    chunk.text,
                    chunk_hash,
                    vectors[chunk_hash] if item.vectors is None else item.vectors[chunk.position],
                )
                for item in changed
                for chunk, chunk_hash in zip(item.chunks, item.chunk_hashes, strict=True)
            ]
            if chunk_rows:
                sql.copy_chunks(session, chunk_rows)
    updated |= {item.doc.external_id for item in changed} - inserted
    given = sum(len(item.chunks) for item in changed if item.vectors is not None)
    fresh = sum(
        chunk_hash in embedded
        for item in changed
        if item.vectors is None
        for chunk_hash in item.chunk_hashes
    )
    return IngestSummary(
        inserted=len(inserted),
        updated=len(updated),
        unchanged=len(batch) - len(inserted) - len(updated),
        chunks=len(chunk_rows),
        embedded=len(embedded),
        cached=len(chunk_rows) - given - fresh,
        given=given,
    )
