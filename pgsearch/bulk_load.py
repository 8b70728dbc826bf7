"""Bulk loads that build the search indexes after the data, and survive dying half-way.

Inserting a row into an HNSW index is a graph search per row; building the index over rows
already in the table is several times faster per row (``benchmarks/ingest.py`` measures both),
and a GIN index built at once is smaller than one fed row by row. So a large first load drops
the store's HNSW, IVFFlat and GIN indexes, writes, and builds them again with a raised
``maintenance_work_mem`` -- the way ``pg_restore`` loads a dump.

Crash safety: each index's definition (``pg_get_indexdef``) is recorded in
``pgsearch.deferred_indexes`` by the transaction that drops it, and each build deletes its row
in the transaction that creates the index. A load that dies half-way (SIGKILL, a lost
connection, a stopped server) leaves the definitions behind: searches stay correct without the
indexes (exact scans, slower), and :func:`build_deferred_indexes` -- ``pgsearch optimize``, the
next ``pgsearch ingest``, :meth:`pgsearch.Store.optimize` -- builds them.

A running load holds a session-level advisory lock, so that nobody builds its indexes under it;
the lock goes with its connection, so a dead load's indexes are never left waiting for it.
Unique indexes and B-trees are kept (upserts and lookups by id need them), except BM25's
postings index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine

from pgsearch.database import autocommit_connection
from pgsearch.exceptions import ConfigurationError, NotMigratedError, PgSearchError
from pgsearch.index_catalog import forget_search_index

__all__ = [
    "DEFAULT_MAINTENANCE_WORK_MEM",
    "DEFER_MIN_DOCUMENTS",
    "IndexBuildSettings",
    "build_deferred_indexes",
    "deferred_index_names",
    "indexes_deferred",
    "worth_deferring",
]

_log = logging.getLogger(__name__)

# One bulk load at a time per database: key of a session-level advisory lock ("pgsearch").
_LOCK_KEY = 0x7067736561726368

# An HNSW build is fastest while its graph fits in maintenance_work_mem (pgvector's notice says
# so when it does not, and pgsearch logs it as a warning). 1 GB holds the graph of about 600k
# 384-d vectors at m = 16 (measured: past that, a 1M-row build slowed to ~10k rows a minute);
# it is only allocated as the graph grows, and only for the build.
DEFAULT_MAINTENANCE_WORK_MEM = "1GB"

# DROP INDEX waits for running searches to finish and blocks new ones while it waits: give up
# on deferring (and load with the indexes live) rather than stall readers behind a long query.
_DROP_LOCK_TIMEOUT = "5s"

# Below this, a load takes seconds either way, and small loads often run side by side: not worth
# dropping indexes that concurrent searches use.
DEFER_MIN_DOCUMENTS = 1_000

_DEFERRABLE = """
    SELECT c.relname, pg_get_indexdef(i.indexrelid), c.oid
    FROM pg_index AS i
    JOIN pg_class AS c ON c.oid = i.indexrelid
    JOIN pg_am AS am ON am.oid = c.relam
    WHERE i.indrelid IN (
        to_regclass('pgsearch.chunks'),
        to_regclass('pgsearch.documents'),
        to_regclass('pgsearch.bm25_vocabulary')
    )
      AND am.amname IN ('hnsw', 'ivfflat', 'gin')
      AND NOT i.indisunique AND i.indisvalid
    UNION ALL
    -- BM25's postings: a B-tree of about 30 entries per chunk, built far faster at once.
    -- Replacing chunks during the load scans the postings instead (seconds per million rows).
    SELECT c.relname, pg_get_indexdef(i.indexrelid), c.oid
    FROM pg_index AS i
    JOIN pg_class AS c ON c.oid = i.indexrelid
    WHERE i.indexrelid = to_regclass('pgsearch.ix_bm25_postings_lexeme') AND i.indisvalid
    ORDER BY 3
"""
# deferred_at is the clock, not the transaction's start: the indexes are built again in the
# order they were created, so the newest vector index (the one searches use, see
# pgsearch.index_catalog) is the newest again.
_RECORD = """
    INSERT INTO pgsearch.deferred_indexes (name, definition, deferred_at)
    VALUES (%s, %s, clock_timestamp())
    ON CONFLICT (name) DO UPDATE
        SET definition = excluded.definition, deferred_at = excluded.deferred_at
"""
_PENDING = "SELECT name FROM pgsearch.deferred_indexes ORDER BY name"
_BUILD_ORDER = "SELECT name FROM pgsearch.deferred_indexes ORDER BY deferred_at, name"


@dataclass(frozen=True)
class IndexBuildSettings:
    """Server settings for building indexes, by their PostgreSQL names.

    Attributes:
        maintenance_work_mem: Memory for each build (``'1GB'``, ``'512MB'``).
        max_parallel_maintenance_workers: Parallel workers per build; ``None`` keeps the
            server's setting (PostgreSQL's default is 2).
    """

    maintenance_work_mem: str = DEFAULT_MAINTENANCE_WORK_MEM
    max_parallel_maintenance_workers: int | None = None


def _try_lock(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def _unlock(connection: psycopg.Connection[Any]) -> None:
    if not connection.closed:
        connection.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _has_table(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute("SELECT to_regclass('pgsearch.deferred_indexes')").fetchone()
    return row is not None and row[0] is not None


def deferred_index_names(connection: psycopg.Connection[Any]) -> list[str]:
    """The indexes a bulk load dropped and nobody has built again yet."""
    if not _has_table(connection):  # a store migrated before 0004_deferred_indexes
        return []
    return [row[0] for row in connection.execute(_PENDING)]


def _drop_indexes(connection: psycopg.Connection[Any]) -> list[str]:
    """Record and drop the deferrable indexes in one transaction; return every pending name."""
    if not _has_table(connection):
        raise NotMigratedError("its schema predates revision 0004_deferred_indexes")
    try:
        with connection.transaction():
            connection.execute("SELECT set_config('lock_timeout', %s, true)", (_DROP_LOCK_TIMEOUT,))
            for name, definition, _oid in connection.execute(_DEFERRABLE).fetchall():
                connection.execute(_RECORD, (name, definition))
                connection.execute(sql.SQL("DROP INDEX pgsearch.{}").format(sql.Identifier(name)))
    except psycopg.errors.LockNotAvailable:
        _log.warning(
            "searches held the store's tables for over %s: loading with the indexes in place",
            _DROP_LOCK_TIMEOUT,
        )
    return deferred_index_names(connection)


def _build_indexes(connection: psycopg.Connection[Any], settings: IndexBuildSettings) -> list[str]:
    """Build every pending index, each in a transaction that also forgets its definition.

    The server's notices during a build (pgvector's "hnsw graph no longer fits into
    maintenance_work_mem", which means a build several times slower) are logged as warnings.
    """
    building = [""]

    def forward(notice: psycopg.errors.Diagnostic) -> None:
        _log.warning("building pgsearch.%s: %s", building[0], notice.message_primary)

    connection.add_notice_handler(forward)
    try:
        return _build_each(connection, settings, building)
    finally:
        connection.remove_notice_handler(forward)


def _build_each(
    connection: psycopg.Connection[Any], settings: IndexBuildSettings, building: list[str]
) -> list[str]:
    built = []
    for (name,) in connection.execute(_BUILD_ORDER).fetchall():
        building[0] = name
        with connection.transaction():
            row = connection.execute(
                "SELECT definition FROM pgsearch.deferred_indexes WHERE name = %s FOR UPDATE",
                (name,),
            ).fetchone()
            if row is None:
                continue
            definition: str = row[0]
            if not definition.startswith(("CREATE INDEX ", "CREATE UNIQUE INDEX ")):
                raise PgSearchError(
                    f"pgsearch.deferred_indexes holds {name!r} with a definition that is not "
                    "CREATE INDEX: delete that row and create the index yourself"
                )
            _apply_settings(connection, settings)
            # The server's own pg_get_indexdef text; one statement (the extended protocol
            # refuses several).
            connection.execute(definition.encode())
            connection.execute("DELETE FROM pgsearch.deferred_indexes WHERE name = %s", (name,))
        _log.info("built index pgsearch.%s", name)
        built.append(name)
    return built


def _apply_settings(connection: psycopg.Connection[Any], settings: IndexBuildSettings) -> None:
    values = {"maintenance_work_mem": settings.maintenance_work_mem}
    if settings.max_parallel_maintenance_workers is not None:
        values["max_parallel_maintenance_workers"] = str(settings.max_parallel_maintenance_workers)
    for setting, value in values.items():
        try:
            with connection.transaction():
                connection.execute("SELECT set_config(%s, %s, true)", (setting, value))
        except psycopg.errors.InvalidParameterValue as exc:
            raise ConfigurationError(f"{setting} = {value!r}: {exc.diag.message_primary}") from exc


def worth_deferring(connection: psycopg.Connection[Any], loading: int) -> bool:
    """Whether a load of ``loading`` documents should build the indexes after its data.

    Yes when it has at least :data:`DEFER_MIN_DOCUMENTS` documents and the store holds fewer
    than it does. Building an index costs several times less per row than maintaining it row
    by row, so rebuilding over stored + loaded rows wins while the store is at most a few
    times the load; "no larger than the load" keeps well inside that, and bounds how long
    searches of a live store run without their indexes.
    """
    if loading < DEFER_MIN_DOCUMENTS:
        return False
    row = connection.execute(
        "SELECT count(*) FROM (SELECT FROM pgsearch.documents LIMIT %s) AS stored", (loading,)
    ).fetchone()
    return row is not None and row[0] < loading


@contextmanager
def indexes_deferred(
    engine: Engine, settings: IndexBuildSettings | None = None
) -> Iterator[list[str]]:
    """Drop the store's HNSW, IVFFlat and GIN indexes for a bulk load; build them afterwards.

    Yields the names of the indexes that will be built when the block ends (also when it
    raises: the rows it committed need them). Yields an empty list, and defers nothing, when
    another bulk load is running or searches hold the tables for over 5 s. A process that dies
    inside the block leaves its indexes to :func:`build_deferred_indexes`.
    """
    settings = settings or IndexBuildSettings()
    with autocommit_connection(engine) as connection:
        with connection.transaction(force_rollback=True):
            _apply_settings(connection, settings)  # refuse bad settings before dropping
        if not _try_lock(connection):
            _log.info("another bulk load is running: loading with the indexes as they are")
            yield []
            return
        try:
            deferred = _drop_indexes(connection)
            # Searches of this process stop ordering for the dropped vector index at once.
            forget_search_index(engine)
            try:
                yield deferred
            finally:
                try:
                    _build_indexes(connection, settings)
                finally:
                    forget_search_index(engine)
        finally:
            _unlock(connection)


def build_deferred_indexes(
    engine: Engine, settings: IndexBuildSettings | None = None
) -> list[str] | None:
    """Build the indexes that a bulk load dropped and did not build (it died, say).

    Returns:
        The names built (often none); ``None`` when a bulk load is running: its indexes are
        its own to build.
    """
    with autocommit_connection(engine) as connection:
        if not deferred_index_names(connection):
            return []
        if not _try_lock(connection):
            return None
        try:
            return _build_indexes(connection, settings or IndexBuildSettings())
        finally:
            forget_search_index(engine)
            _unlock(connection)
