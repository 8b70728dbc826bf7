"""The write path's SQL, and the binary COPY that moves chunks through a staging table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgvector import Vector
from sqlalchemy import text
from sqlalchemy.orm import Session

from pgsearch.vectors import register_binary_vectors

__all__ = [
    "DELETE_CHUNKS",
    "IDS_OF",
    "INSERT_DOCUMENTS",
    "LOCK_STORED",
    "READ_STORED",
    "STORED_CHUNK_HASHES",
    "SYNC_CHUNK_METADATA",
    "UPSERT_DOCUMENTS",
    "copy_chunks",
]


_STORED = (
    "SELECT id, external_id FROM pgsearch.documents"
    " WHERE external_id = ANY(CAST(:external_ids AS text[]))"
    ' ORDER BY external_id COLLATE "C"'
)
READ_STORED = text(_STORED)
LOCK_STORED = text(_STORED + " FOR UPDATE")

STORED_CHUNK_HASHES = text(
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
# concurrent transaction inserted after LOCK_STORED is locked by this statement too.
UPSERT_DOCUMENTS = text(
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

INSERT_DOCUMENTS = text(
    _DOCUMENT_ROWS
    + """
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id, external_id, true AS inserted
    """
)

IDS_OF = text(
    "SELECT id, external_id FROM pgsearch.documents"
    " WHERE external_id = ANY(CAST(:external_ids AS text[]))"
)

DELETE_CHUNKS = text(
    "DELETE FROM pgsearch.chunks WHERE document_id = ANY(CAST(:document_ids AS bigint[]))"
)

SYNC_CHUNK_METADATA = text(
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


def copy_chunks(session: Session, rows: Iterable[tuple[int, int, str, str, Any]]) -> None:
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
