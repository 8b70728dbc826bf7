"""Index maintenance after bulk writes, and expression indexes on hot metadata keys.

The schema's indexes live in the Alembic revisions; query-time knobs in
:mod:`pgsearch.search.options`. The only DDL here is what a user asks for explicitly:
:func:`create_metadata_index` (``pgsearch index metadata KEY``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from pgsearch.database import autocommit_connection
from pgsearch.exceptions import PgSearchError
from pgsearch.search.estimates import forget_estimates
from pgsearch.search.filters import metadata_path

__all__ = [
    "GIN_INDEXES",
    "METADATA_INDEX_PREFIX",
    "after_bulk_write",
    "create_metadata_index",
    "drop_metadata_index",
    "metadata_index_name",
    "vacuum_search_tables",
]

_log = logging.getLogger(__name__)

# The GIN indexes of the schema (see the migrations): they buffer new entries in a pending list.
GIN_INDEXES = (
    "pgsearch.ix_chunks_tsv",
    "pgsearch.ix_chunks_metadata",
    "pgsearch.ix_documents_metadata",
)


def after_bulk_write(session: Session) -> None:
    """Merge the GIN indexes' pending lists and refresh planner statistics.

    GIN indexes take new rows into a pending list that every search scans linearly until VACUUM
    merges it, and a table loaded since its last ANALYZE has no statistics: until autovacuum
    gets to them, the planner falls back to sequential scans. The embedded server stops when
    its last client exits, often before autovacuum runs, so call this after a bulk load.
    Both steps run inside the session's transaction.
    """
    for index in GIN_INDEXES:
        try:
            with session.begin_nested():
                session.execute(
                    # An index a running bulk load has dropped is skipped.
                    text(
                        "SELECT gin_clean_pending_list(i) FROM to_regclass(:index) AS i"
                        " WHERE i IS NOT NULL"
                    ),
                    {"index": index},
                )
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
                raise
            # Only the index owner may merge; autovacuum will, later. The data is written.
            _log.warning("cannot merge the pending list of %s: not its owner", index)
    # Fold BM25's statistics ledgers into a row per lexeme (a store from before 0005_bm25
    # has none).
    if session.execute(text("SELECT to_regproc('pgsearch.bm25_compact')")).scalar() is not None:
        session.execute(text("SELECT pgsearch.bm25_compact()"))
    session.execute(text("ANALYZE pgsearch.documents, pgsearch.chunks"))
    forget_estimates(session.connection().engine)  # routing reads the new statistics


# Searches read these through index-only scans, which need the visibility map VACUUM sets.
_VACUUMED = ("pgsearch.bm25_postings", "pgsearch.bm25_frequencies")


def vacuum_search_tables(engine: Engine) -> None:
    """VACUUM (ANALYZE) BM25's postings and frequencies, so that searches read only their
    indexes (after a load, every posting would otherwise cost a heap visit too).

    VACUUM cannot run in a transaction: this uses an autocommit connection of its own. A role
    that does not own the tables gets a warning from PostgreSQL and nothing else.
    """
    with autocommit_connection(engine) as connection:
        for table in _VACUUMED:
            present = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if present and present[0] is not None:
                schema, name = table.split(".")
                connection.execute(
                    sql.SQL("VACUUM (ANALYZE) {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(name)
                    )
                )


# The prefix of the B-tree indexes on metadata keys: migrations' autogenerate leaves them alone.
METADATA_INDEX_PREFIX = "ix_chunks_metadata_"


def metadata_index_name(key: str) -> str:
    """The name of the expression index on metadata ``key``: ``ix_chunks_metadata_<key>``."""
    name = METADATA_INDEX_PREFIX + "__".join(metadata_path(key)).replace("-", "_").lower()
    if len(name) > 63:  # PostgreSQL truncates identifiers at 63 bytes
        name = name[:54] + "_" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return name


@contextmanager
def _autocommit(engine: Engine, action: str) -> Iterator[Any]:
    """A driver connection in autocommit mode (``CONCURRENTLY`` refuses transactions)."""
    with autocommit_connection(engine) as connection:
        try:
            yield connection
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PgSearchError(f"cannot {action}: {reason}") from exc


def create_metadata_index(engine: Engine, key: str) -> str:
    """Build a B-tree index on ``metadata -> key`` of the chunks, without blocking writers.

    It serves the range operators (``$lt $lte $gt $gte``) on that key: pgsearch compiles them to
    ``metadata -> 'key' > '2020'::jsonb``, the indexed expression. ``$eq`` and ``$in`` need no
    such index: the GIN index on ``metadata`` serves them. Built ``CONCURRENTLY``; a build that
    fails leaves an invalid index, which is dropped before the error is raised.

    Returns:
        The index name.

    Raises:
        InvalidFilterError: ``key`` is not a valid metadata key.
        PgSearchError: The build failed.
    """
    name = metadata_index_name(key)
    expression: sql.Composable = sql.SQL("metadata")
    for segment in metadata_path(key):
        expression = sql.SQL("{} -> {}").format(expression, sql.Literal(segment))
    create = sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON pgsearch.chunks (({}))")
    with _autocommit(engine, f"build index {name}") as connection:
        try:
            connection.execute(create.format(sql.Identifier(name), expression))
        finally:
            valid = connection.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                (f"pgsearch.{name}",),
            ).fetchone()
            if valid is not None and not valid[0]:
                connection.execute(_DROP.format(sql.Identifier(name)))
                raise PgSearchError(f"building index {name} failed; it was dropped: try again")
    return name


_DROP = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS pgsearch.{}")


def drop_metadata_index(engine: Engine, key: str) -> str:
    """Drop the index :func:`create_metadata_index` built for ``key`` (if any); return its name."""
    name = metadata_index_name(key)
    with _autocommit(engine, f"drop index {name}") as connection:
        connection.execute(_DROP.format(sql.Identifier(name)))
    return name
