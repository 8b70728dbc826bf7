"""Vector index knobs by their pgvector names, applied with ``SET LOCAL`` semantics.

Index DDL lives in the Alembic revisions; this module owns the query-time side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from pgsearch.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_EF_SEARCH",
    "GIN_INDEXES",
    "HnswSearchOptions",
    "after_bulk_write",
    "apply_local_settings",
]

_log = logging.getLogger(__name__)

# The GIN indexes of the schema (see the migrations): they buffer new entries in a pending list.
GIN_INDEXES = (
    "pgsearch.ix_chunks_tsv",
    "pgsearch.ix_chunks_metadata",
    "pgsearch.ix_documents_metadata",
)

# pgvector's own default: recall@10 about 0.96 on 60k MiniLM vectors at about 1 ms per query.
DEFAULT_EF_SEARCH = 40
_MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search


@dataclass(frozen=True)
class HnswSearchOptions:
    """Query-time HNSW settings.

    Attributes:
        ef_search: Size of the candidate list (``hnsw.ef_search``). An HNSW scan returns at most
            ``ef_search`` rows, so it is raised to the number of rows a query asks for.
    """

    ef_search: int = DEFAULT_EF_SEARCH

    def __post_init__(self) -> None:
        if not 1 <= self.ef_search <= _MAX_EF_SEARCH:
            raise ConfigurationError(
                f"ef_search={self.ef_search} is out of pgvector's range 1..{_MAX_EF_SEARCH}"
            )

    def settings(self, limit: int) -> dict[str, str]:
        """Server settings for a query that fetches ``limit`` nearest rows."""
        return {"hnsw.ef_search": str(min(max(self.ef_search, limit), _MAX_EF_SEARCH))}


def apply_local_settings(session: Session, settings: dict[str, str]) -> None:
    """Set server settings until the end of the session's current transaction (``SET LOCAL``).

    ``set_config(..., is_local => true)`` is ``SET LOCAL`` with bound parameters.

    Raises:
        ConfigurationError: The session's connection is in autocommit mode, where a local
            setting would end with its own statement and never reach the query.
    """
    dbapi_connection = session.connection().connection.dbapi_connection
    if getattr(dbapi_connection, "autocommit", False):
        raise ConfigurationError(
            "vector search sets hnsw.ef_search for its transaction, but this connection is in "
            "autocommit mode: search through a session or connection with a transaction"
        )
    for name, value in settings.items():
        session.execute(
            text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
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
