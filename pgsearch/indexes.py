"""Index maintenance after bulk writes. Index DDL lives in the Alembic revisions; query-time
knobs in :mod:`pgsearch.search.options`."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

__all__ = ["GIN_INDEXES", "after_bulk_write"]

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
                    text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"),
                    {"index": index},
                )
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "42501":  # insufficient_privilege
                raise
            # Only the index owner may merge; autovacuum will, later. The data is written.
            _log.warning("cannot merge the pending list of %s: not its owner", index)
    session.execute(text("ANALYZE pgsearch.documents, pgsearch.chunks"))
