"""The embedding cache: vectors by (model, sha256 of the exact text embedded).

Revision ID: 0003_embedding_cache
Revises: 0002_search_functions
Create Date: 2026-11-30

Every write consults it before calling the embedder: a changed document re-embeds only the
chunks whose text changed, and the same text under another id embeds nothing. Keyed by model
name, so vectors of different models never mix; the vector column has no fixed dimension, so a
cache can outlive a store of another size. The DDL is frozen here.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_embedding_cache"
down_revision: str | Sequence[str] | None = "0002_search_functions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pgsearch.embedding_cache (
            model text NOT NULL,
            text_hash bytea NOT NULL CONSTRAINT ck_embedding_cache_sha256
                CHECK (octet_length(text_hash) = 32),
            embedding vector NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_embedding_cache PRIMARY KEY (model, text_hash)
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE pgsearch.embedding_cache IS"
        " 'Vectors by (model, sha256 of the exact text embedded); pgsearch cache clear empties it'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE pgsearch.embedding_cache")
