"""The write path: validate -> compare hashes -> chunk -> embed -> set-based upsert.

Everything that can fail (validation, chunking, embedding) happens before the first write, and
every write goes to the caller's transaction, so a document is stored whole or not at all.
Documents whose content is unchanged are not re-chunked or re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pgvector import Vector
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from pgsearch.chunking import ChunkingOptions, TextChunk, chunk_text
from pgsearch.embedders.base import Embedder
from pgsearch.embedding_cache import Wanted, vectors_for
from pgsearch.exceptions import (
    DocumentExistsError,
    EmbeddingMismatchError,
    InvalidDocumentError,
    translate_errors,
)
from pgsearch.store_config import StoreSettings
from pgsearch.types import Distance
from pgsearch.vectors import register_binary_vectors

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
        chunks: Chunk texts chosen by the caller, stored in this order instead of pgsearch's
            chunking of ``content``.
        vectors: Precomputed vectors (computed elsewhere, with the store's model): one per
            chunk when ``chunks`` is given, else exactly one, and the whole ``content`` is
            stored as a single chunk. Checked for dimension and finiteness; no embedder runs.
            A document whose chunk texts are unchanged keeps its stored vectors.
    """

    external_id: str
    content: str
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunks: Sequence[str] | None = None
    vectors: Sequence[Sequence[float]] | NDArray[Any] | None = field(default=None, compare=False)


@dataclass
class IngestSummary:
    """Counts of what a write did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    """Chunk rows written (copied); each one's vector was embedded, cached or given."""
    embedded: int = 0
    """Texts sent to the embedder."""
    cached: int = 0
    """Chunks written with a vector from the embedding cache."""
    given: int = 0
    """Chunks written with a vector the caller gave (``DocumentInput.vectors``)."""

    def __iadd__(self, other: IngestSummary) -> IngestSummary:
        for name in ("inserted", "updated", "unchanged", "chunks", "embedded", "cached", "given"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def content_hash(value: str) -> str:
    """SHA-256 of the UTF-8 text, as hex: the key that decides whether to re-embed."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# The unique B-tree index on external_id holds entries of at most about 2,700 bytes; a key of
# 1 KB is plenty for a path, a URL or a primary key, and is refused before the first write.
MAX_ID_BYTES = 1024
# jsonb nests deeply, but a filter reaches a value by a path of keys: 64 levels is generous.
MAX_METADATA_DEPTH = 64
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


def _validate(doc: DocumentInput) -> str:
    """Check one document; return its metadata as JSON text."""
    if not isinstance(doc.external_id, str) or not doc.external_id.strip():
        raise InvalidDocumentError(
            f"document id {doc.external_id!r} is empty: give every document a key"
        )
    shown = doc.external_id if len(doc.external_id) <= 80 else doc.external_id[:77] + "..."
    where = f"document {shown!r}"
    if not isinstance(doc.content, str) or not _has_text(doc.content):
        raise InvalidDocumentError(f"{where} has no text: empty documents cannot be searched")
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


_STORED = (
    "SELECT id, external_id FROM pgsearch.documents"
    " WHERE external_id = ANY(CAST(:external_ids AS text[]))"
    ' ORDER BY external_id COLLATE "C"'
)
_READ_STORED = text(_STORED)
_LOCK_STORED = text(_STORED + " FOR UPDATE")

_STORED_CHUNK_HASHES = text(
    "SELECT document_id, content_hash FROM pgsearch.chunks"
    " WHERE document_id = ANY(CAST(:document_ids AS bigint[]))"
    " ORDER BY document_id, position"
)

_DOCUMENT_ROWS = """
    INSERT INTO pgsearch.documents AS d (external_id, title, content, metadata, content_hash)
    SELECT * FROM unnest(
        CAST(:external_ids AS text[]), CAST(:titles AS text[]), CAST(:contents AS text[]),
        CAST(:metadata AS jsonb[]), CAST(:hashes AS text[]))
"""

# ON CONFLICT DO UPDATE locks the conflicting row even where its WHERE is false, so a row that a
# concurrent transaction inserted after _LOCK_STORED is locked by this statement too.
_UPSERT_DOCUMENTS = text(
    _DOCUMENT_ROWS
    + """
    ON CONFLICT (external_id) DO UPDATE
        SET title = excluded.title, content = excluded.content, metadata = excluded.metadata,
            content_hash = excluded.content_hash, updated_at = now()
        WHERE (d.title, d.content, d.metadata, d.content_hash) IS DISTINCT FROM
              (excluded.title, excluded.content, excluded.metadata, excluded.content_hash)
    RETURNING id, external_id, (xmax = 0) AS inserted
    """
)

_INSERT_DOCUMENTS = text(
    _DOCUMENT_ROWS
    + """
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id, external_id, true AS inserted
    """
)

_IDS_OF = text(
    "SELECT id, external_id FROM pgsearch.documents"
    " WHERE external_id = ANY(CAST(:external_ids AS text[]))"
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

# Chunks travel by binary COPY (pgvector's binary format for the vectors) into a temporary
# staging table of this connection, then one set-based INSERT moves them. The staging table is
# scratch space of the session, not schema: it is created on first use, emptied before every
# batch and at commit, and never outlives the connection.
_STAGING_COLUMNS = ("document_id", "position", "content", "content_hash", "embedding")
_STAGING_TYPES = ("int8", "int4", "text", "text", "vector")
_CREATE_STAGING = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS pgsearch_chunk_staging ("
    " document_id bigint, position integer, content text, content_hash text, embedding vector"
    ") ON COMMIT DELETE ROWS"
)
_EMPTY_STAGING = text("TRUNCATE pg_temp.pgsearch_chunk_staging")
_COPY_STAGING = (
    "COPY pg_temp.pgsearch_chunk_staging (document_id, position, content, content_hash, embedding)"
    " FROM STDIN (FORMAT BINARY)"
)
_INSERT_CHUNKS = text(
    """
    INSERT INTO pgsearch.chunks (document_id, position, content, content_hash, metadata, embedding)
    SELECT s.document_id, s.position, s.content, s.content_hash, d.metadata, s.embedding
    FROM pg_temp.pgsearch_chunk_staging AS s
    JOIN pgsearch.documents AS d ON d.id = s.document_id
    """
)


def _copy_chunks(session: Session, rows: Iterable[tuple[int, int, str, str, Any]]) -> None:
    """Stream chunk rows into the staging table by binary COPY, then insert them."""
    connection = session.connection()
    register_binary_vectors(connection)
    session.execute(_CREATE_STAGING)
    session.execute(_EMPTY_STAGING)
    dbapi: Any = connection.connection.dbapi_connection
    with dbapi.cursor() as cursor, cursor.copy(_COPY_STAGING) as copy:
        copy.set_types(list(_STAGING_TYPES))
        for document_id, position, content, chunk_hash, vector in rows:
            copy.write_row((document_id, position, content, chunk_hash, Vector(vector)))
    session.execute(_INSERT_CHUNKS)


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
    documents: Iterable[DocumentInput], chunking: ChunkingOptions | None
) -> list[_Pending]:
    pending = []
    for doc, metadata_json in _prepare(documents):
        chunks = _chunks(doc, chunking)
        pending.append(
            _Pending(
                doc=doc,
                metadata_json=metadata_json,
                content_hash=content_hash(doc.content),
                chunks=chunks,
                chunk_hashes=[content_hash(chunk.text) for chunk in chunks],
                vectors=given_vectors(doc, len(chunks)),
            )
        )
    # One order for every writer (locks, inserts) keeps overlapping batches from deadlocking:
    # Python orders str by code point, as the "C" collation orders UTF-8 in _LOCK_STORED.
    return sorted(pending, key=lambda item: item.doc.external_id)


def _stored(
    session: Session, batch: list[_Pending], *, lock: bool
) -> dict[str, tuple[int, list[str]]]:
    """The batch's stored documents as ``external_id -> (id, chunk hashes)``; with ``lock``,
    locked ``FOR UPDATE`` in one order for every writer."""
    ids = {
        row.external_id: row.id
        for row in session.execute(
            _LOCK_STORED if lock else _READ_STORED,
            {"external_ids": [item.doc.external_id for item in batch]},
        )
    }
    hashes: dict[int, list[str]] = {document_id: [] for document_id in ids.values()}
    if ids:
        for row in session.execute(_STORED_CHUNK_HASHES, {"document_ids": list(ids.values())}):
            hashes[row.document_id].append(row.content_hash)
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
        chunk_hash: Wanted(chunk.text, item.doc.external_id, chunk.position)
        for item in items
        if item.vectors is None
        for chunk, chunk_hash in zip(item.chunks, item.chunk_hashes, strict=True)
        if chunk_hash not in known
    }


def _write_document_rows(
    session: Session, batch: list[_Pending], *, replace: bool
) -> tuple[dict[str, int], set[str], set[str]]:
    """Insert or update document rows; return ids, inserted ids and updated ids."""
    rows = session.execute(
        _UPSERT_DOCUMENTS if replace else _INSERT_DOCUMENTS,
        {
            "external_ids": [item.doc.external_id for item in batch],
            "titles": [item.doc.title for item in batch],
            "contents": [item.doc.content for item in batch],
            "metadata": [item.metadata_json for item in batch],
            "hashes": [item.content_hash for item in batch],
        },
    ).all()
    ids = {row.external_id: row.id for row in rows}
    inserted = {row.external_id for row in rows if row.inserted}
    updated = {row.external_id for row in rows if not row.inserted}
    missing = [item.doc.external_id for item in batch if item.doc.external_id not in ids]
    if missing and not replace:
        raise DocumentExistsError(
            f"{len(missing)} document(s) were stored meanwhile by another transaction "
            f"({', '.join(missing[:5])}): use upsert to replace them"
        )
    if missing:
        # Unchanged rows return nothing from the upsert; it has locked them all the same.
        ids.update(
            {row.external_id: row.id for row in session.execute(_IDS_OF, {"external_ids": missing})}
        )
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
) -> IngestSummary:
    """Store a batch of documents with their chunks and embeddings in the session's transaction.

    A stored document is re-chunked and re-embedded only when its chunks would differ (by their
    content hashes): new text or new chunking settings. A change of title or metadata alone
    updates the rows without embedding anything.

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

    Raises:
        InvalidDocumentError: See :func:`validate_documents`.
        DocumentExistsError: ``replace`` is false and some ids are stored already.
    """
    batch = _pending(documents, chunking)
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
                session.execute(_DELETE_CHUNKS, {"document_ids": replaced})
            kept = [i for i in ids.values() if i not in changed_ids]
            if kept:
                session.execute(_SYNC_CHUNK_METADATA, {"document_ids": kept})
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
                _copy_chunks(session, chunk_rows)
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
