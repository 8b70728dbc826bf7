"""Create the pgsearch store: pgvector, documents, chunks, store config and their indexes.

Revision ID: 0001_create_store
Revises:
Create Date: 2026-11-23

The DDL is frozen here on purpose: later revisions change the schema, they never edit this one.
The embedding dimension, distance, text-search configuration and HNSW parameters (and the
index's storage, added later: a store created before it got ``vector``) come from
:func:`pgsearch.migrations.options.options_from_context`.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op
from pgsearch.exceptions import ConfigurationError, ExtensionMissingError
from pgsearch.migrations.options import options_from_context

revision: str = "0001_create_store"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("pgsearch",)
depends_on: str | Sequence[str] | None = None

_KEYWORD_QUERY = r"""
CREATE FUNCTION pgsearch.keyword_query(config regconfig, query text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- The tsquery of hybrid search's keyword leg: chunks with at least half of the query's
    -- distinct words; past 8 words, any two of them (the combinations would explode); past 24,
    -- any one. A query with quotes or an exclusion (-word) is a keyword query: it means what
    -- websearch_to_tsquery says. IMMUTABLE, so PostgreSQL folds a call with constant
    -- arguments while planning, and the GIN index serves the result.
    WITH RECURSIVE parsed AS (
        SELECT websearch_to_tsquery(config, query) AS written,
               -- websearch_to_tsquery reads "or" as an operator, not a word
               ARRAY(SELECT DISTINCT lexeme
                     FROM unnest(tsvector_to_array(to_tsvector(config, query))) AS lexeme
                     WHERE lexeme <> 'or'
                     ORDER BY 1) AS words
    ),
    sizes AS (
        SELECT written, words, n, CASE WHEN n <= 8 THEN (n + 1) / 2 ELSE 2 END AS m,
               strpos(query, '"') > 0 OR strpos(CAST(written AS text), '!') > 0 AS as_written
        FROM parsed, cardinality(words) AS n
    ),
    combos (picked, last) AS (
        SELECT ARRAY[i], i FROM sizes, generate_series(1, n) AS i
        WHERE n BETWEEN 3 AND 24 AND NOT as_written
        UNION ALL
        SELECT c.picked || j, j
        FROM combos AS c, sizes AS s, generate_series(c.last + 1, s.n) AS j
        WHERE cardinality(c.picked) < s.m
    )
    SELECT CASE
        WHEN as_written OR n < 2 THEN written
        WHEN n = 2 OR n > 24 THEN CAST(array_to_string(
            ARRAY(SELECT quote_literal(word) FROM unnest(words) AS word), ' | ') AS tsquery)
        ELSE (SELECT CAST(string_agg('(' || (SELECT string_agg(quote_literal(words[k]), ' & ')
                                             FROM unnest(c.picked) AS k) || ')', ' | ')
                          AS tsquery)
              FROM combos AS c WHERE cardinality(c.picked) = m)
    END
    FROM sizes
$$
"""

_OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "inner_product": "vector_ip_ops"}


def _ensure_vector_extension(conn: sa.Connection) -> bool:
    """Create pgvector if needed; return whether this migration created it."""
    row = conn.execute(
        sa.text(
            "SELECT installed_version, default_version FROM pg_available_extensions"
            " WHERE name = 'vector'"
        )
    ).first()
    if row is None:
        server = conn.execute(sa.text("SHOW server_version")).scalar()
        raise ExtensionMissingError(
            f"this PostgreSQL server ({server}) does not have the pgvector extension: install "
            "pgvector >= 0.8 on it (https://github.com/pgvector/pgvector#installation), use the "
            "docker-compose.yml server, or unset PGSEARCH_DATABASE_URL to use the embedded server"
        )
    if row.installed_version is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(sa.text("CREATE EXTENSION vector"))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            raise ExtensionMissingError(
                "this role may not create the pgvector extension: ask a superuser to run "
                "`CREATE EXTENSION vector;` in this database, then migrate again"
            ) from exc
        raise
    return True


def _check_text_config(conn: sa.Connection, name: str) -> None:
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SELECT CAST(:name AS regconfig)"), {"name": name})
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "42704":  # undefined_object
            raise
        raise ConfigurationError(
            f"text search configuration {name!r} does not exist on this server: "
            "pick one of `SELECT cfgname FROM pg_ts_config` (english, simple, ...)"
        ) from exc


def upgrade() -> None:
    options = options_from_context(context)
    conn = op.get_bind()
    _check_text_config(conn, options.text_config)
    created_extension = _ensure_vector_extension(conn)
    # options validated these: dim is an int, text_config a plain name, the opclass from a table.
    opclass = _OPCLASS[options.distance.value]
    text_config = options.text_config

    op.execute("CREATE SCHEMA pgsearch")
    op.execute(
        """
        CREATE TABLE pgsearch.store_config (
            id boolean PRIMARY KEY DEFAULT true CONSTRAINT ck_store_config_single_row CHECK (id),
            embedding_model text NOT NULL,
            embedding_dim integer NOT NULL CHECK (embedding_dim > 0),
            distance text NOT NULL CHECK (distance IN ('cosine', 'l2', 'inner_product')),
            text_config text NOT NULL,
            created_extension boolean NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        r"""
        CREATE TABLE pgsearch.documents (
            id bigint GENERATED BY DEFAULT AS IDENTITY CONSTRAINT pk_documents PRIMARY KEY,
            external_id text NOT NULL CONSTRAINT uq_documents_external_id UNIQUE
                CONSTRAINT ck_documents_external_id_not_empty CHECK (external_id <> ''),
            title text,
            content text NOT NULL
                CONSTRAINT ck_documents_content_not_blank CHECK (content ~ '\S'),
            metadata jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT ck_documents_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
            content_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE pgsearch.chunks (
            id bigint GENERATED BY DEFAULT AS IDENTITY CONSTRAINT pk_chunks PRIMARY KEY,
            document_id bigint NOT NULL
                CONSTRAINT fk_chunks_document_id_documents
                REFERENCES pgsearch.documents (id) ON DELETE CASCADE,
            position integer NOT NULL CONSTRAINT ck_chunks_position CHECK (position >= 0),
            content text NOT NULL,
            content_hash text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{{}}'
                CONSTRAINT ck_chunks_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
            embedding vector({options.dim:d}) NOT NULL,
            tsv tsvector GENERATED ALWAYS AS
                (to_tsvector('{text_config}'::regconfig, content)) STORED,
            CONSTRAINT uq_chunks_document_id_position UNIQUE (document_id, position)
        )
        """
    )
    if options.dim <= 2000:
        # Keep vectors inline: TOASTed vectors make every exact-scan distance a detoast. (A
        # wider vector does not fit in a page: it stays TOASTable.)
        op.execute("ALTER TABLE pgsearch.chunks ALTER COLUMN embedding SET STORAGE PLAIN")
    # The index's storage (a later option: stores before it are all "vector"). halfvec and bit
    # index an expression, spelled as pgsearch.vector_index.index_expression spells it.
    half_opclass = opclass.replace("vector_", "halfvec_")
    indexed = {
        "vector": f"embedding {opclass}",
        "halfvec": f"(embedding::halfvec({options.dim:d})) {half_opclass}",
        "bit": f"(binary_quantize(embedding)::bit({options.dim:d})) bit_hamming_ops",
    }[options.storage]
    op.execute(
        f"CREATE INDEX ix_chunks_embedding_hnsw ON pgsearch.chunks USING hnsw ({indexed})"
        f" WITH (m = {options.m:d}, ef_construction = {options.ef_construction:d})"
    )
    op.execute("CREATE INDEX ix_chunks_tsv ON pgsearch.chunks USING gin (tsv)")
    op.execute(
        "CREATE INDEX ix_chunks_metadata ON pgsearch.chunks USING gin (metadata jsonb_path_ops)"
    )
    op.execute(
        "CREATE INDEX ix_documents_metadata ON pgsearch.documents"
        " USING gin (metadata jsonb_path_ops)"
    )
    op.execute(_KEYWORD_QUERY)
    conn.execute(
        sa.text(
            "INSERT INTO pgsearch.store_config"
            " (embedding_model, embedding_dim, distance, text_config, created_extension)"
            " VALUES (:model, :dim, :distance, :text_config, :created_extension)"
        ),
        {
            "model": options.model,
            "dim": options.dim,
            "distance": options.distance.value,
            "text_config": text_config,
            "created_extension": created_extension,
        },
    )


def downgrade() -> None:
    conn = op.get_bind()
    created_extension = conn.execute(
        sa.text("SELECT created_extension FROM pgsearch.store_config")
    ).scalar()
    # No CASCADE: objects that users built on top of pgsearch make the downgrade fail loudly
    # instead of disappearing with it.
    op.execute("DROP FUNCTION pgsearch.keyword_query(regconfig, text)")
    op.execute("DROP TABLE pgsearch.chunks")
    op.execute("DROP TABLE pgsearch.documents")
    op.execute("DROP TABLE pgsearch.store_config")
    op.execute("DROP SCHEMA pgsearch")
    if created_extension:
        try:
            with conn.begin_nested():
                conn.execute(sa.text("DROP EXTENSION vector"))
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "2BP01":  # dependent objects still exist
                raise
            context.config.print_stdout(
                "kept the vector extension: other objects in this database use it"
            )
