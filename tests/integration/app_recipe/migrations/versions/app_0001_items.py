"""The application's items, with an HNSW index built concurrently.

Revision ID: app_0001_items
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR

import pgsearch.migrations  # noqa: F401  (op.create_vector_index)
from alembic import op

revision: str = "app_0001_items"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("app",)
# pgsearch's first revision creates the vector extension this table needs.
depends_on: str | Sequence[str] | None = "0001_create_store"


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("embedding", VECTOR(8), nullable=False),
    )
    op.create_vector_index(
        "ix_items_embedding", "items", "embedding", distance="cosine", m=8, ef_construction=32
    )


def downgrade() -> None:
    op.drop_vector_index("ix_items_embedding", "items")
    op.drop_table("items")
