"""Deferred indexes: the search indexes a bulk load dropped, to be built after its data.

Revision ID: 0004_deferred_indexes
Revises: 0003_embedding_cache
Create Date: 2026-12-04

A first load into an empty store is several times faster when the HNSW and GIN indexes are
built after the data than when every row updates them (see :mod:`pgsearch.bulk_load`). The
load records each index's definition here in the transaction that drops it, so a load that
dies half-way leaves the definitions behind and the next ``pgsearch optimize`` (or ingest)
builds them. The DDL is frozen here.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004_deferred_indexes"
down_revision: str | Sequence[str] | None = "0003_embedding_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pgsearch.deferred_indexes (
            name text CONSTRAINT pk_deferred_indexes PRIMARY KEY,
            definition text NOT NULL,
            deferred_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE pgsearch.deferred_indexes IS"
        " 'Indexes a bulk load dropped and has not built again yet; pgsearch optimize builds them'"
    )


def downgrade() -> None:
    # Never lose an index: build what a load left deferred before forgetting its definition.
    conn = op.get_bind()
    pending = conn.execute(
        sa.text("SELECT definition FROM pgsearch.deferred_indexes ORDER BY name")
    ).all()
    for (definition,) in pending:
        conn.exec_driver_sql(definition)  # pg_get_indexdef's text, with no parameters
    op.execute("DROP TABLE pgsearch.deferred_indexes")
