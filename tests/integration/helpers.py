"""Small helpers shared by the integration tests."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def row_counts(session: Session) -> tuple[int, int]:
    """``(documents, chunks)`` stored, as the session sees them."""
    row = session.execute(
        text(
            "SELECT (SELECT count(*) FROM pgsearch.documents),"
            " (SELECT count(*) FROM pgsearch.chunks)"
        )
    ).one()
    return int(row[0]), int(row[1])
