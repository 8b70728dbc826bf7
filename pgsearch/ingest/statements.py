"""The write path's SQL, run on the session's connection with psycopg's binary format.

Arrays of ids and texts travel in the binary format: the text format escapes every element of
every array in Python, which costs more than the statements themselves. Chunks travel by binary
COPY (pgvector's binary format for the vectors) through a staging table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pgvector import Vector
from sqlalchemy import text
from sqlalchemy.orm import Session

from pgsearch.vectors import register_binary_vectors

__all__ = [
    "copy_chunks",
    "delete_chunks",
    "stored_chunk_hashes",
    "stored_documents",
    "sync_chunk_metadata",
    "write_document_rows",
]


def _run(session: Session, query: str, params: dict[str, Any]) -> list[Any]:
    """Execute ``query`` in the session's transaction with binary parameters; return its rows."""
    dbapi: Any = session.connection().connection.dbapi_connection
    with dbapi.cursor(binary=True) as cursor:
        cursor.execute(query, params)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


_STORED = (
    "SELECT id, external_id FROM pgsearch.documents"
    " WHERE external_id = ANY(%(external_ids)b::text[])"
    ' ORDER BY external_id COLLATE "C"'
)


def stored_documents(
    session: Session, external_ids: Sequence[str], *, lock: bool
) -> list[tuple[int, str]]:
    """``(id, external_id)`` of the stored ones; with ``lock``, locked ``FOR UPDATE`` in the
    "C" collation's order, the same for every writer."""
    query = _STORED + " FOR UPDATE" if lock else _STORED
    return _run(session, query, {"external_ids": list(external_ids)})


def stored_chunk_hashes(session: Session, document_ids: Sequence[int]) -> list[tuple[int, str]]:
    """``(document_id, content_hash)`` of the documents' chunks, in position order."""
    return _run(
        session,
        "SELECT document_id, content_hash FROM pgsearch.chunks"
        " WHERE document_id = ANY(%(document_ids)b::int8[]) ORDER BY document_id, position",
        {"document_ids": list(document_ids)},
    )


_DOCUMENT_ROWS = """
    INSERT INTO pgsearch.documents AS d (external_id, title, content, metadata, content_hash)
    SELECT * FROM unnest(
        %(external_ids)b::text[], %(titles)b::text[], %(contents)b::text[],
        %(metadata)b::text[]::jsonb[], %(hashes)b::text[])
"""

# ON CONFLICT DO UPDATE locks the conflicting row even where its WHERE is false, so a row that a
# concurrent transaction inserted after LOCK_STORED is locked by this statement too.
_UPSERT_DOCUMENTS = (
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

_INSERT_DOCUMENTS = (
    _DOCUMENT_ROWS
    + """
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id, external_id, true AS inserted
    """
)


def write_document_rows(
    session: Session, columns: dict[str, list[Any]], *, replace: bool
) -> list[tuple[int, str, bool]]:
    """Insert (or with ``replace``, upsert) document rows given as columns; return
    ``(id, external_id, inserted)`` of each row written."""
    query = _UPSERT_DOCUMENTS if replace else _INSERT_DOCUMENTS
    return _run(session, query, columns)


def delete_chunks(session: Session, document_ids: Sequence[int]) -> None:
    """Delete the documents' chunks."""
    _run(
        session,
        "DELETE FROM pgsearch.chunks WHERE document_id = ANY(%(document_ids)b::int8[])",
        {"document_ids": list(document_ids)},
    )


def sync_chunk_metadata(session: Session, document_ids: Sequence[int]) -> None:
    """Copy each document's metadata and title onto its chunks where they differ."""
    _run(
        session,
        """
        UPDATE pgsearch.chunks AS c SET metadata = d.metadata, title = d.title
        FROM pgsearch.documents AS d
        WHERE d.id = c.document_id AND d.id = ANY(%(document_ids)b::int8[])
          AND (c.metadata, c.title) IS DISTINCT FROM (d.metadata, d.title)
        """,
        {"document_ids": list(document_ids)},
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
    INSERT INTO pgsearch.chunks
        (document_id, position, content, content_hash, metadata, title, embedding)
    SELECT s.document_id, s.position, s.content, s.content_hash, d.metadata, d.title,
           s.embedding
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
