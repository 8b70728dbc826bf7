"""Typed repositories over the caller's SQLAlchemy :class:`~sqlalchemy.orm.Session`.

The repositories never commit, roll back or close the session: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, selectinload
from typing_extensions import Unpack

from pgsearch.chunking import ChunkingOptions
from pgsearch.embedders.base import Embedder
from pgsearch.exceptions import InvalidDocumentError, translate_errors
from pgsearch.ingest import MAX_DOCUMENT_CHARS, DocumentInput, IngestSummary, write_documents
from pgsearch.models import Document
from pgsearch.search import SearchRequest, SearchResults, run_search
from pgsearch.search.options import SearchOptions
from pgsearch.store_config import (
    StoreSettings,
    cached_store_settings,
    check_embedder,
)
from pgsearch.types import SearchMode

__all__ = ["DocumentRepository", "SearchRepository"]


# Documents per write_documents call: the input is consumed this many at a time, so a call with
# a million documents never holds them (their chunks, their vectors) in memory at once.
WRITE_BATCH = 500


def _batches(documents: DocumentInput | Iterable[DocumentInput]) -> Iterator[list[DocumentInput]]:
    if isinstance(documents, DocumentInput):
        yield [documents]
        return
    iterator = iter(documents)
    while batch := list(islice(iterator, WRITE_BATCH)):
        yield batch


class DocumentRepository:
    """Add, upsert, get and delete documents; chunks and embeddings follow their document.

    Args:
        session: The caller's session.
        embedder: Must match the store's model and dimension (checked on first write).
        chunking: Chunk size budget and overlap.
        cache_engine: Add new vectors to the embedding cache through this engine, each
            embedder batch committed on its own, so that they outlive a failed write; default:
            in the session's transaction (nothing is committed behind the caller's back).
        max_document_chars: Longer documents are refused before anything is written.
    """

    def __init__(
        self,
        session: Session,
        embedder: Embedder,
        *,
        chunking: ChunkingOptions | None = None,
        cache_engine: Engine | None = None,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
    ) -> None:
        self._session = session
        self._embedder = embedder
        self._chunking = chunking
        self._cache_engine = cache_engine
        self._max_document_chars = max_document_chars
        self._store: StoreSettings | None = None

    def _checked_store(self) -> StoreSettings:
        if self._store is None:
            with translate_errors():
                # Read once per engine, as searches read it: Store makes a repository per call.
                store = cached_store_settings(self._session.connection())
            check_embedder(store, self._embedder)
            self._store = store
        return self._store

    def _write(
        self, documents: DocumentInput | Iterable[DocumentInput], *, replace: bool
    ) -> IngestSummary:
        summary = IngestSummary()
        seen: set[str] = set()
        # One savepoint around the whole call: it is stored whole or not at all, however many
        # batches it takes.
        with self._session.begin_nested():
            for batch in _batches(documents):
                for doc in batch:
                    if not isinstance(doc.external_id, str):
                        continue  # write_documents refuses it, with what to do
                    if doc.external_id in seen:
                        raise InvalidDocumentError(
                            f"document {doc.external_id!r} appears twice in one call"
                        )
                    seen.add(doc.external_id)
                summary += write_documents(
                    self._session,
                    self._checked_store(),
                    self._embedder,
                    batch,
                    replace=replace,
                    chunking=self._chunking,
                    cache_engine=self._cache_engine,
                    max_document_chars=self._max_document_chars,
                )
        return summary

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
    """Search chunks by meaning (vector), by keywords (text) or both (hybrid), with filters.

    Args:
        session: The caller's session. Query knobs are set with ``SET LOCAL`` semantics, in
            the search's own statement, so they last until the end of its transaction.
        embedder: Needed for vector and hybrid modes with a query text; must match the store.
    """

    def __init__(self, session: Session, embedder: Embedder | None = None) -> None:
        self._session = session
        self._embedder = embedder

    def search(
        self,
        query: str | None = None,
        k: int = 10,
        mode: SearchMode | str | None = None,
        **options: Unpack[SearchOptions],
    ) -> SearchResults:
        """Return the ``k`` best chunks for ``query`` (or ``query_vector``).

        Args:
            query: Natural-language query. The text modes rank by BM25 the chunks sharing any
                of its words (``text_match="all"``: web-search syntax, quotes, ``or``,
                ``-word``). Optional in vector mode with ``query_vector``.
            k: Number of results (1 to 1000).
            mode: ``vector``, ``text``, ``bm25`` or ``hybrid`` (default: hybrid with a query
                text, vector with only ``query_vector``).
            **options: ``filter``, ``query_vector``, ``exact``, ``group_by``, ``ef_search``,
                ``iterative_scan``, ... (see :class:`~pgsearch.search.SearchRequest`).

        Returns:
            The results, best first; ``.path`` says whether the vector leg used the HNSW index
            or an exact scan.

        Raises:
            InvalidSearchError: A malformed request (``InvalidFilterError`` for the filter).
            NotMigratedError: The database has no pgsearch schema.
            EmbeddingMismatchError: The embedder or query vector does not match the store.
        """
        return self.run(SearchRequest(query, k, mode, **options))

    def run(self, request: SearchRequest) -> SearchResults:
        """Run a prepared :class:`~pgsearch.search.SearchRequest`."""
        with translate_errors():
            connection = self._session.connection()
            store = cached_store_settings(connection)
        return run_search(connection, store, request, self._embedder)
