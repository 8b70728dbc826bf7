"""Vectors for chunk texts: from the embedding cache first, then from the embedder.

``pgsearch.embedding_cache`` (revision ``0003``) keys vectors by model name and the SHA-256 of
the exact text embedded. A write asks it before calling the embedder, so a changed document
re-embeds only its changed chunks, and the same text under another id embeds nothing. New
vectors are added with ``ON CONFLICT DO NOTHING`` (concurrent writers of the same text never
fail on each other), in the caller's transaction or, for :class:`~pgsearch.store.Store`, in
transactions of their own, so that they survive a failed write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector import Vector
from pgvector.psycopg.vector import VectorBinaryLoader
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from pgsearch.embedders.base import Embedder, Vectors, check_vectors
from pgsearch.exceptions import EmbeddingMismatchError, translate_errors
from pgsearch.store_config import StoreSettings
from pgsearch.types import Distance
from pgsearch.vectors import register_binary_vectors

__all__ = ["CacheModel", "Wanted", "cache_status", "clear_cache", "vectors_for"]


@dataclass(frozen=True)
class Wanted:
    """A chunk text that needs a vector, and whose it is (for error messages)."""

    text: str
    external_id: str
    position: int


@dataclass(frozen=True)
class CacheModel:
    """One model's share of the cache (``pgsearch cache status``)."""

    model: str
    rows: int
    bytes: int


_LOOKUP = (
    "SELECT text_hash, embedding FROM pgsearch.embedding_cache"
    " WHERE model = %s AND text_hash = ANY(%s)"
)
_ADD = (
    "INSERT INTO pgsearch.embedding_cache (model, text_hash, embedding) VALUES (%s, %s, %s)"
    " ON CONFLICT (model, text_hash) DO NOTHING"
)


def _lookup(
    connection: Connection, store: StoreSettings, model: str, hashes: list[str]
) -> dict[str, Vectors]:
    oid = register_binary_vectors(connection)
    dbapi: Any = connection.connection.dbapi_connection
    found: dict[str, Vectors] = {}
    with dbapi.cursor(binary=True) as cursor:
        # A loader on this cursor only: the connection's other results keep their types.
        cursor.adapters.register_loader(oid, VectorBinaryLoader)
        cursor.execute(_LOOKUP, (model, [bytes.fromhex(h) for h in hashes]))
        for text_hash, vector in cursor:
            array = vector.to_numpy().astype(np.float32)
            if array.shape != (store.embedding_dim,):
                raise EmbeddingMismatchError(
                    f"the embedding cache holds a {array.shape[0]}-dimension vector of {model}, "
                    f"but this store holds {store.embedding_dim}: empty it with "
                    f"`pgsearch cache clear --model {model}`"
                )
            found[bytes(text_hash).hex()] = array
    return found


def _checked(
    embedder: Embedder, store: StoreSettings, wanted: list[Wanted], output: Vectors
) -> Vectors:
    vectors = check_vectors(output, len(wanted), store.embedding_dim, embedder.name)
    if store.distance is Distance.COSINE:
        zero = np.flatnonzero(~vectors.any(axis=1))
        if zero.size:
            first = wanted[int(zero[0])]
            raise EmbeddingMismatchError(
                f"embedder {embedder.name} returned an all-zero vector for chunk "
                f"{first.position} of document {first.external_id!r} ({zero.size} in all): "
                "cosine distance is undefined for it, and every search would score it NaN"
            )
    return vectors


def _embedded(
    embedder: Embedder, store: StoreSettings, wanted: list[Wanted]
) -> Iterator[tuple[range, Vectors]]:
    """The embedder's vectors for ``wanted``, checked, batch by batch when it can say so
    (``embed_batches``, as the OpenAI embedder does), else all at once."""
    texts = [w.text for w in wanted]
    batches = getattr(embedder, "embed_batches", None)
    if batches is None:
        yield range(len(texts)), _checked(embedder, store, wanted, embedder.embed_documents(texts))
        return
    for positions, output in batches(texts):
        yield positions, _checked(embedder, store, wanted[positions.start : positions.stop], output)


def _add(connection: Connection, model: str, hashes: list[str], vectors: Vectors) -> None:
    register_binary_vectors(connection)
    dbapi: Any = connection.connection.dbapi_connection
    with dbapi.cursor() as cursor:
        cursor.executemany(
            _ADD,
            [(model, bytes.fromhex(h), Vector(v)) for h, v in zip(hashes, vectors, strict=True)],
        )


def vectors_for(
    session: Session,
    store: StoreSettings,
    embedder: Embedder,
    wanted: Mapping[str, Wanted],
    *,
    cache_engine: Engine | None = None,
) -> tuple[dict[str, Vectors], set[str]]:
    """Vectors for ``wanted`` (keyed by the SHA-256 hex of each text): cached ones, then new
    ones from the embedder, which are added to the cache.

    Returns:
        The vectors by text hash, and the hashes the embedder was asked for.

    Args:
        session: Where to read the cache, and to add to it without ``cache_engine``.
        store: The store's settings.
        embedder: Embeds what the cache lacks.
        wanted: The texts.
        cache_engine: Add new vectors through this engine instead, each embedder batch in a
            transaction of its own: vectors computed before a failure (of a later batch, or
            of the write) stay in the cache, and a retry does not pay for them again.

    Raises:
        EmbeddingMismatchError: The embedder's output, or a cached vector, does not fit the
            store.
    """
    if not wanted:
        return {}, set()
    model = embedder.name
    with translate_errors():
        connection = session.connection()
        vectors = _lookup(connection, store, model, list(wanted))
    missing = [h for h in wanted if h not in vectors]
    for positions, batch in _embedded(embedder, store, [wanted[h] for h in missing]):
        hashes = missing[positions.start : positions.stop]
        with translate_errors(vectors=True):
            if cache_engine is None:
                _add(connection, model, hashes, batch)
            else:
                with cache_engine.begin() as own:
                    _add(own, model, hashes, batch)
        vectors.update(zip(hashes, batch, strict=True))
    return vectors, set(missing)


def cache_status(session: Session) -> list[CacheModel]:
    """Rows and bytes of the cache, per model."""
    with translate_errors():
        rows = session.execute(
            text(
                "SELECT model, count(*) AS rows, coalesce(sum(pg_column_size(embedding)), 0)"
                " AS bytes FROM pgsearch.embedding_cache GROUP BY model ORDER BY model"
            )
        ).all()
    return [CacheModel(row.model, int(row.rows), int(row.bytes)) for row in rows]


def clear_cache(session: Session, model: str | None = None) -> int:
    """Delete the cached vectors of ``model`` (default: every model); return how many."""
    with translate_errors():
        deleted = (
            session.connection()
            .execute(
                text(
                    "DELETE FROM pgsearch.embedding_cache"
                    " WHERE CAST(:model AS text) IS NULL OR model = :model"
                ),
                {"model": model},
            )
            .rowcount
        )
    return int(deleted)
