"""Typed repositories over the caller's SQLAlchemy :class:`~sqlalchemy.orm.Session`.

The repositories never commit, roll back or close the session: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from pgsearch.chunking import ChunkingOptions
from pgsearch.embedders.base import Embedder, check_vectors
from pgsearch.exceptions import ConfigurationError, InvalidSearchError, translate_errors
from pgsearch.fusion import DEFAULT_RRF_K
from pgsearch.indexes import HnswSearchOptions, apply_local_settings
from pgsearch.ingest import DocumentInput, IngestSummary, write_documents
from pgsearch.models import Document
from pgsearch.search import (
    SearchResult,
    TextMatch,
    hybrid_search_sql,
    text_search_sql,
    vector_search_sql,
)
from pgsearch.store_config import StoreSettings, check_embedder, load_store_settings
from pgsearch.types import SearchMode, vector_literal

__all__ = ["MAX_K", "DocumentRepository", "SearchRepository"]

# An HNSW scan returns at most hnsw.ef_search rows, and pgvector caps ef_search at 1,000.
MAX_K = 1000


def _as_batch(documents: DocumentInput | Iterable[DocumentInput]) -> list[DocumentInput]:
    return [documents] if isinstance(documents, DocumentInput) else list(documents)


class DocumentRepository:
    """Add, upsert, get and delete documents; chunks and embeddings follow their document.

    Args:
        session: The caller's session.
        embedder: Must match the store's model and dimension (checked on first write).
        chunking: Chunk size budget and overlap.
    """

    def __init__(
        self, session: Session, embedder: Embedder, *, chunking: ChunkingOptions | None = None
    ) -> None:
        self._session = session
        self._embedder = embedder
        self._chunking = chunking
        self._store: StoreSettings | None = None

    def _checked_store(self) -> StoreSettings:
        if self._store is None:
            store = load_store_settings(self._session)
            check_embedder(store, self._embedder)
            self._store = store
        return self._store

    def _write(
        self, documents: DocumentInput | Iterable[DocumentInput], *, replace: bool
    ) -> IngestSummary:
        return write_documents(
            self._session,
            self._checked_store(),
            self._embedder,
            _as_batch(documents),
            replace=replace,
            chunking=self._chunking,
        )

    def add(self, documents: DocumentInput | Iterable[DocumentInput]) -> IngestSummary:
        """Insert new documents.

        Raises:
            DocumentExistsError: Some ``external_id`` is stored already (nothing is written).
            InvalidDocumentError: A document is blank or malformed (nothing is written).
        """
        return self._write(documents, replace=False)

    def upsert(self, documents: DocumentInput | Iterable[DocumentInput]) -> IngestSummary:
        """Insert documents or replace the stored ones with the same ``external_id``.

        Unchanged content is not re-embedded; changed content replaces all of its chunks.
        """
        return self._write(documents, replace=True)

    def get(self, external_id: str) -> Document | None:
        """The stored document with its chunks (ordered by position), or ``None``."""
        with translate_errors():
            return self._session.scalars(
                select(Document)
                .where(Document.external_id == external_id)
                .options(selectinload(Document.chunks))
            ).one_or_none()

    def delete(self, external_ids: str | Iterable[str]) -> int:
        """Delete documents (their chunks go with them); return how many were deleted."""
        ids = [external_ids] if isinstance(external_ids, str) else list(external_ids)
        with translate_errors():
            deleted = self._session.execute(
                text(
                    "DELETE FROM pgsearch.documents WHERE external_id = ANY(CAST(:ids AS text[]))"
                    " RETURNING id"
                ),
                {"ids": ids},
            ).all()
        return len(deleted)


class SearchRepository:
    """Search chunks by meaning (vector), by keywords (text) or both (hybrid).

    Args:
        session: The caller's session. Query knobs are set with ``SET LOCAL`` semantics, so
            they last until the end of its current transaction.
        embedder: Needed for vector and hybrid modes; must match the store.
        hnsw: HNSW query-time options (``ef_search``).
    """

    def __init__(
        self,
        session: Session,
        embedder: Embedder | None = None,
        *,
        hnsw: HnswSearchOptions | None = None,
    ) -> None:
        self._session = session
        self._embedder = embedder
        self._hnsw = hnsw or HnswSearchOptions()
        self._store: StoreSettings | None = None

    def _loaded_store(self) -> StoreSettings:
        if self._store is None:
            self._store = load_store_settings(self._session)
        return self._store

    def _query_vector(self, store: StoreSettings, query: str) -> str:
        if self._embedder is None:
            raise ConfigurationError("vector and hybrid search need an embedder")
        check_embedder(store, self._embedder)
        vector = check_vectors(
            self._embedder.embed_query(query).reshape(1, -1),
            1,
            store.embedding_dim,
            self._embedder.name,
        )
        return vector_literal(vector[0])

    def search(
        self,
        query: str,
        k: int = 10,
        mode: SearchMode | str = SearchMode.HYBRID,
        *,
        ef_search: int | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        candidates: int | None = None,
        text_match: TextMatch = "half",
    ) -> list[SearchResult]:
        """Return the ``k`` best chunks for ``query``.

        Args:
            query: Natural-language query; in text mode it is parsed by ``websearch_to_tsquery``
                (quotes for phrases, ``or``, ``-`` to exclude).
            k: Number of results (1 to 1000).
            mode: ``vector``, ``text`` or ``hybrid`` (default: hybrid, which is better than
                either leg alone on most retrieval benchmarks).
            ef_search: ``hnsw.ef_search`` for this query (default from ``hnsw``).
            rrf_k: Reciprocal rank fusion constant (hybrid).
            candidates: Depth of each hybrid leg (default ``max(4 * k, 40)``, deep enough for a
                chunk ranked moderately by both legs to reach the fused top ``k``).
            text_match: Hybrid's keyword leg takes chunks with at least ``half`` the query's
                words (default: a question rarely shares all its words with its answer, and a
                single shared word is weak evidence) or only those with ``all`` of them. Long
                queries of common words match many more chunks with ``half``, so it costs more.

        Raises:
            InvalidSearchError: Unknown mode, blank query, or ``k`` out of range.
            NotMigratedError: The database has no pgsearch schema.
            EmbeddingMismatchError: The embedder does not match the store.
        """
        search_mode = SearchMode.parse(mode)
        if not isinstance(query, str) or not query.strip():
            raise InvalidSearchError("the query is empty: give some words to search for")
        if not 1 <= k <= MAX_K:
            raise InvalidSearchError(f"k={k} is out of range: ask for 1 to {MAX_K} results")
        if rrf_k < 1:
            raise InvalidSearchError("rrf_k must be positive")
        depth = max(candidates or max(4 * k, 40), k)
        if depth > MAX_K:
            raise InvalidSearchError(f"candidates={depth} is above {MAX_K}")
        if text_match not in ("half", "all"):
            raise InvalidSearchError(f"text_match={text_match!r}: use 'half' or 'all'")
        hnsw = HnswSearchOptions(ef_search) if ef_search is not None else self._hnsw

        store = self._loaded_store()
        limit = depth if search_mode is SearchMode.HYBRID else k
        params: dict[str, object] = {
            "text_config": store.text_config,
            "query_text": query,
            "limit": limit,
            "k": k,
            "rrf_k": rrf_k,
        }
        if search_mode is SearchMode.TEXT:
            statement = text_search_sql()
        else:
            params["query_embedding"] = self._query_vector(store, query)
            if search_mode is SearchMode.VECTOR:
                statement = vector_search_sql(store.distance)
            else:
                statement = hybrid_search_sql(store.distance, text_match)
        with translate_errors():
            if search_mode is not SearchMode.TEXT:
                apply_local_settings(self._session, hnsw.settings(limit))
            rows = self._session.execute(statement, params).all()
        return [
            SearchResult(
                chunk_id=row.chunk_id,
                document_id=row.document_id,
                external_id=row.external_id,
                title=row.title,
                position=row.position,
                content=row.content,
                metadata=row.metadata,
                score=float(row.score),
            )
            for row in rows
        ]
