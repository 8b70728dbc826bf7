"""``Store``: the convenience entry point that opens its own engine and sessions.

Use it for scripts and the command line. Applications that manage their own sessions use
:class:`~pgsearch.repository.DocumentRepository` and :class:`~pgsearch.repository.SearchRepository`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from pgsearch.bulk_load import (
    IndexBuildSettings,
    build_deferred_indexes,
    deferred_index_names,
    indexes_deferred,
    worth_deferring,
)
from pgsearch.chunking import ChunkingOptions
from pgsearch.config import Settings
from pgsearch.database import create_engine, describe_url
from pgsearch.embedders import Embedder, load_embedder
from pgsearch.exceptions import DatabaseError, translate_errors
from pgsearch.indexes import after_bulk_write, vacuum_search_tables
from pgsearch.ingest import MAX_DOCUMENT_CHARS, DocumentInput, IngestSummary
from pgsearch.migrations import StoreOptions, downgrade, upgrade
from pgsearch.models import Document
from pgsearch.repository import DocumentRepository
from pgsearch.search import SearchRequest, SearchResults, run_search
from pgsearch.search.options import SearchOptions
from pgsearch.store_config import StoreSettings, cached_store_settings, load_store_settings
from pgsearch.types import Distance, SearchMode
from pgsearch.vector_index import DEFAULT_DISTANCE, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, Storage

__all__ = ["Store", "StoreStatus"]


@dataclass(frozen=True)
class StoreStatus:
    """What ``pgsearch status`` reports."""

    database: str
    server_version: str
    pgvector_version: str | None
    migrated: bool
    settings: StoreSettings | None = None
    documents: int = 0
    chunks: int = 0
    indexes: dict[str, str] = field(default_factory=dict)
    deferred_indexes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        settings = self.settings
        return {
            "database": self.database,
            "server_version": self.server_version,
            "pgvector_version": self.pgvector_version,
            "migrated": self.migrated,
            "embedding_model": settings.embedding_model if settings else None,
            "embedding_dim": settings.embedding_dim if settings else None,
            "distance": settings.distance.value if settings else None,
            "text_config": settings.text_config if settings else None,
            "documents": self.documents,
            "chunks": self.chunks,
            "indexes": self.indexes,
            "deferred_indexes": self.deferred_indexes,
        }


class Store:
    """A pgsearch store: an engine plus an embedder, with one transaction per call.

    Args:
        engine: Engine of the database.
        embedder: The embedder (or an embedder spec, e.g. ``hashing:64``).
        chunking: Chunk size budget and overlap for writes.
    """

    def __init__(
        self,
        engine: Engine,
        embedder: Embedder | str,
        *,
        chunking: ChunkingOptions | None = None,
    ) -> None:
        self.engine = engine
        self.embedder = load_embedder(embedder) if isinstance(embedder, str) else embedder
        self.chunking = chunking
        self.max_document_chars = MAX_DOCUMENT_CHARS

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        *,
        embedder: Embedder | str | None = None,
        data_dir: str | Path | None = None,
        chunking: ChunkingOptions | None = None,
        create: bool = True,
    ) -> Store:
        """Open the store at ``database_url``, ``PGSEARCH_DATABASE_URL`` or the embedded server.

        With ``create=False``, an embedded store that does not exist yet is not created:
        :class:`~pgsearch.exceptions.StoreNotFoundError` says to migrate first.
        """
        settings = Settings.from_env(
            database_url=database_url,
            data_dir=data_dir,
            embedder=embedder if isinstance(embedder, str) else None,
        )
        chosen: Embedder | str = embedder if isinstance(embedder, Embedder) else settings.embedder
        return cls(create_engine(settings=settings, create=create), chosen, chunking=chunking)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def migrate(
        self,
        *,
        dim: int | None = None,
        distance: Distance | str = DEFAULT_DISTANCE,
        text_config: str = "english",
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        storage: Storage = "vector",
    ) -> None:
        """Create or upgrade the schema; a new store is sized for this store's embedder.

        The other arguments only shape a new store (see :class:`StoreOptions`).
        """
        upgrade(
            self.engine,
            StoreOptions(
                dim=dim if dim is not None else self.embedder.dimension,
                model=self.embedder.name,
                distance=Distance.parse(distance),
                text_config=text_config,
                m=m,
                ef_construction=ef_construction,
                storage=storage,
            ),
        )

    def downgrade(self, revision: str = "base") -> None:
        """Downgrade the schema; ``base`` removes everything pgsearch created."""
        downgrade(self.engine, revision)

    def _documents(self, session: Session) -> DocumentRepository:
        # Vectors computed for a failed write stay in the embedding cache: a retry (of a batch
        # that hit a rate limit, say) does not pay for them again.
        return DocumentRepository(
            session,
            self.embedder,
            chunking=self.chunking,
            cache_engine=self.engine,
            max_document_chars=self.max_document_chars,
        )

    def add(self, documents: DocumentInput | Iterable[DocumentInput]) -> IngestSummary:
        """Insert new documents in one transaction (see :meth:`DocumentRepository.add`)."""
        with self.session() as session:
            return self._documents(session).add(documents)

    def upsert(self, documents: DocumentInput | Iterable[DocumentInput]) -> IngestSummary:
        """Insert or replace documents in one transaction."""
        with self.session() as session:
            repository = self._documents(session)
            return repository.upsert(documents)

    def get(self, external_id: str) -> Document | None:
        """The stored document with its chunks loaded, or ``None``."""
        with self.session() as session:
            return DocumentRepository(session, self.embedder).get(external_id)

    def delete(self, external_ids: str | Iterable[str]) -> int:
        """Delete documents and their chunks; return how many were deleted."""
        with self.session() as session:
            return DocumentRepository(session, self.embedder).delete(external_ids)

    def search(
        self,
        query: str | None = None,
        k: int = 10,
        mode: SearchMode | str | None = None,
        **options: Unpack[SearchOptions],
    ) -> SearchResults:
        """Search (see :meth:`SearchRepository.search`; the same arguments)."""
        return self.run(SearchRequest(query, k, mode, **options))

    def run(self, request: SearchRequest) -> SearchResults:
        """Run a prepared :class:`~pgsearch.search.SearchRequest`.

        A search only reads, and sets its knobs inside its own statement: it runs in autocommit
        mode, without the round trips of ``BEGIN`` and ``COMMIT``, and without a pre-ping:
        when a pooled connection turns out dead (a server restart, an idle timeout), the pool
        is discarded and the search runs once more on a new connection.
        """
        try:
            return self._run(request)
        except DatabaseError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, DBAPIError) and cause.connection_invalidated):
                raise
            return self._run(request)

    def _run(self, request: SearchRequest) -> SearchResults:
        with translate_errors(), self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            store = cached_store_settings(connection)
            return run_search(connection, store, request, self.embedder)

    @contextmanager
    def bulk_load(self, settings: IndexBuildSettings | None = None) -> Iterator[list[str]]:
        """Build the store's HNSW and GIN indexes after the writes of the block, not row by row.

        For a large first load (an empty store, or one much smaller than the load): building
        an index over loaded rows is several times faster than updating it row by row. Searches
        during the block are correct but slow (no indexes); when it ends, the indexes are built
        (with ``settings``, 1 GB of ``maintenance_work_mem`` by default) and :meth:`optimize`
        runs. A process that dies inside the block leaves the definitions behind, and the next
        :meth:`optimize` builds them. See :mod:`pgsearch.bulk_load`.

        Yields:
            The names of the indexes deferred (empty when another bulk load is running).
        """
        with indexes_deferred(self.engine, settings) as deferred:
            yield deferred
        self.optimize(settings)

    def worth_deferring(self, documents: int) -> bool:
        """Whether a load of ``documents`` should use :meth:`bulk_load` (see
        :func:`pgsearch.bulk_load.worth_deferring`)."""
        with self.engine.connect() as connection:
            return worth_deferring(connection.connection.driver_connection, documents)  # type: ignore[arg-type]

    def deferred_indexes(self) -> list[str]:
        """Indexes that a bulk load dropped and that are not built yet (see :meth:`optimize`)."""
        with self.engine.connect() as connection:
            return deferred_index_names(connection.connection.driver_connection)  # type: ignore[arg-type]

    def optimize(self, settings: IndexBuildSettings | None = None) -> None:
        """Build deferred indexes, merge GIN pending lists, refresh statistics, VACUUM BM25's.

        Run it after bulk loads; ``pgsearch ingest`` does this itself. Indexes that a bulk load
        dropped and never built (the process died) are built here, unless a bulk load is
        running. See :func:`pgsearch.indexes.after_bulk_write`.
        """
        build_deferred_indexes(self.engine, settings)
        with self.session() as session:
            after_bulk_write(session)
        vacuum_search_tables(self.engine)

    def status(self) -> StoreStatus:
        """Server, pgvector, schema and size facts about this store."""
        with self.session() as session:
            server_version = str(session.execute(text("SHOW server_version")).scalar())
            pgvector_version = session.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar()
            database = describe_url(self.engine.url)
            migrated = (
                session.execute(text("SELECT to_regclass('pgsearch.store_config')")).scalar()
                is not None
            )
            if not migrated:
                return StoreStatus(database, server_version, pgvector_version, migrated=False)
            counts = session.execute(
                text(
                    "SELECT (SELECT count(*) FROM pgsearch.documents) AS documents,"
                    " (SELECT count(*) FROM pgsearch.chunks) AS chunks"
                )
            ).one()
            indexes = {
                row.indexname: row.indexdef
                for row in session.execute(
                    text(
                        "SELECT indexname, indexdef FROM pg_indexes"
                        " WHERE schemaname = 'pgsearch' ORDER BY indexname"
                    )
                )
            }
            deferred = deferred_index_names(
                session.connection().connection.driver_connection  # type: ignore[arg-type]
            )
            return StoreStatus(
                database=database,
                server_version=server_version,
                pgvector_version=pgvector_version,
                migrated=True,
                settings=load_store_settings(session),
                documents=counts.documents,
                chunks=counts.chunks,
                indexes=indexes,
                deferred_indexes=deferred,
            )
