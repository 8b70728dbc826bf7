"""BM25 in plain SQL: corpus statistics kept by triggers, and the functions that rank with them.

Revision ID: 0005_bm25
Revises: 0004_deferred_indexes
Create Date: 2026-12-04

Statistics. ``pgsearch.bm25_lexemes`` holds, per lexeme, how many chunks contain it;
``pgsearch.bm25_totals`` the number of chunks and their total length in tokens (stop words
excluded: what ``to_tsvector`` keeps). Both are append-only ledgers of deltas: statement-level
triggers on ``pgsearch.chunks`` add one row per lexeme per statement (negative for deletes), in
the writer's transaction, so they are exact under inserts, updates, deletes and cascades, and
concurrent writers never wait on a shared counter row. Readers sum the deltas of the query's
lexemes (a B-tree range per lexeme); ``pgsearch.bm25_compact()`` (run by ``pgsearch optimize``)
folds them into one row per lexeme.

Ranking. Okapi BM25 with the Lucene (and bm25s) idf, ``ln(1 + (N - df + 0.5) / (df + 0.5))``,
which never goes negative for words in over half the chunks. A query's terms are the lexemes of
``to_tsvector(config, query)``: stemmed, stop words removed, the same normalisation as the
stored ``tsv``. Only chunks that contain a term are scored: the GIN index finds them, so the
cost grows with the matching postings, not with the store.
"""

import importlib
from collections.abc import Sequence

from alembic import op

# The search functions of 0002 (frozen there): text_search and hybrid_search are redefined here
# with BM25 as their text ranking, and restored from there on downgrade.
_SEARCH_FUNCTIONS = importlib.import_module("pgsearch.migrations.versions.0002_search_functions")

revision: str = "0005_bm25"
down_revision: str | Sequence[str] | None = "0004_deferred_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = """
CREATE TABLE pgsearch.bm25_lexemes (
    lexeme text NOT NULL,
    chunks bigint NOT NULL
);
CREATE INDEX ix_bm25_lexemes_lexeme ON pgsearch.bm25_lexemes (lexeme);
COMMENT ON TABLE pgsearch.bm25_lexemes IS
    'BM25 document frequencies as deltas: chunks containing each lexeme = sum(chunks)';
CREATE TABLE pgsearch.bm25_totals (
    chunks bigint NOT NULL,
    tokens bigint NOT NULL
);
COMMENT ON TABLE pgsearch.bm25_totals IS
    'BM25 corpus size as deltas: sum(chunks) chunks holding sum(tokens) tokens'
"""

_FUNCTIONS = r"""
CREATE FUNCTION pgsearch.tsv_length(tsv tsvector)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- Tokens in the text (stop words excluded); a lexeme stored without positions counts once.
    SELECT coalesce(sum(coalesce(cardinality(positions), 1)), 0) FROM unnest(tsv)
$$;

CREATE FUNCTION pgsearch.query_lexemes(config regconfig, query text)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- The query's terms, normalised as the stored tsv is: stemmed, stop words removed.
    SELECT tsvector_to_array(to_tsvector(config, query))
$$;

CREATE FUNCTION pgsearch.any_lexeme(terms text[])
RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- Chunks that contain any of the terms; an empty query when there are none.
    SELECT coalesce(
        CAST(array_to_string(ARRAY(SELECT quote_literal(t) FROM unnest(terms) AS t), ' | ')
             AS tsquery),
        CAST('' AS tsquery))
$$;

CREATE FUNCTION pgsearch.bm25_idf(terms text[])
RETURNS double precision[]
LANGUAGE sql STABLE PARALLEL SAFE STRICT
AS $$
    WITH n AS (SELECT coalesce(sum(chunks), 0) AS chunks FROM pgsearch.bm25_totals),
    df AS (
        SELECT lexeme, sum(chunks) AS chunks FROM pgsearch.bm25_lexemes
        WHERE lexeme = ANY(terms) GROUP BY lexeme
    )
    SELECT ARRAY(
        SELECT ln(1 + (n.chunks - coalesce(df.chunks, 0) + 0.5) / (coalesce(df.chunks, 0) + 0.5))
        FROM unnest(terms) WITH ORDINALITY AS t(lexeme, i)
        LEFT JOIN df USING (lexeme)
        ORDER BY t.i)
    FROM n
$$;

CREATE FUNCTION pgsearch.bm25_avg_length()
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CAST(sum(tokens) AS double precision) / nullif(sum(chunks), 0) FROM pgsearch.bm25_totals
$$;

CREATE FUNCTION pgsearch.bm25_score(
    tsv tsvector, terms text[], idfs double precision[],
    k1 double precision, b double precision, avg_length double precision
)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- The sum, over the query's terms in the chunk, of
    --     idf * tf (k1 + 1) / (tf + k1 (1 - b + b |D| / avgdl))
    WITH doc AS (
        SELECT lexeme, coalesce(cardinality(positions), 1) AS tf FROM unnest(tsv)
    ),
    len AS (SELECT sum(tf) AS tokens FROM doc)
    SELECT coalesce(sum(
        q.idf * d.tf * (k1 + 1)
        / (d.tf + k1 * (1 - b + b * len.tokens / greatest(avg_length, 1e-9)))), 0)
    FROM unnest(terms, idfs) AS q(lexeme, idf)
    JOIN doc AS d USING (lexeme), len
$$;

CREATE FUNCTION pgsearch._bm25_count() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO pgsearch.bm25_lexemes (lexeme, chunks)
        SELECT u.lexeme, -count(*) FROM old_rows AS o, unnest(o.tsv) AS u GROUP BY u.lexeme;
        INSERT INTO pgsearch.bm25_totals (chunks, tokens)
        SELECT -count(*), -coalesce(sum(pgsearch.tsv_length(o.tsv)), 0) FROM old_rows AS o
        HAVING count(*) > 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO pgsearch.bm25_lexemes (lexeme, chunks)
        SELECT u.lexeme, count(*) FROM new_rows AS n, unnest(n.tsv) AS u GROUP BY u.lexeme;
        INSERT INTO pgsearch.bm25_totals (chunks, tokens)
        SELECT count(*), coalesce(sum(pgsearch.tsv_length(n.tsv)), 0) FROM new_rows AS n
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgsearch._bm25_truncate() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE pgsearch.bm25_lexemes, pgsearch.bm25_totals;
    RETURN NULL;
END
$$;

CREATE TRIGGER bm25_inserted AFTER INSERT ON pgsearch.chunks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgsearch._bm25_count();
CREATE TRIGGER bm25_deleted AFTER DELETE ON pgsearch.chunks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgsearch._bm25_count();
CREATE TRIGGER bm25_updated AFTER UPDATE ON pgsearch.chunks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgsearch._bm25_count();
CREATE TRIGGER bm25_truncated AFTER TRUNCATE ON pgsearch.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION pgsearch._bm25_truncate();

CREATE FUNCTION pgsearch.bm25_compact()
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    -- Fold the deltas into one row per lexeme. Rows that concurrent writers add meanwhile are
    -- not in this statement's snapshot and stay as they are: the sums never change.
    PERFORM pg_advisory_xact_lock(CAST(x'7067736d32356363' AS bigint));  -- one at a time
    WITH gone AS (DELETE FROM pgsearch.bm25_lexemes RETURNING lexeme, chunks)
    INSERT INTO pgsearch.bm25_lexemes (lexeme, chunks)
    SELECT lexeme, sum(chunks) FROM gone GROUP BY lexeme HAVING sum(chunks) <> 0;
    WITH gone AS (DELETE FROM pgsearch.bm25_totals RETURNING chunks, tokens)
    INSERT INTO pgsearch.bm25_totals (chunks, tokens)
    SELECT sum(chunks), sum(tokens) FROM gone HAVING count(*) > 0;
END
$$
"""

_BACKFILL = """
INSERT INTO pgsearch.bm25_lexemes (lexeme, chunks)
SELECT u.lexeme, count(*) FROM pgsearch.chunks AS c, unnest(c.tsv) AS u GROUP BY u.lexeme;
INSERT INTO pgsearch.bm25_totals (chunks, tokens)
SELECT count(*), coalesce(sum(pgsearch.tsv_length(tsv)), 0) FROM pgsearch.chunks
HAVING count(*) > 0
"""


# The BM25 leg of the SQL search functions, as text mode runs it in Python: chunks with any of
# the query's terms, by BM25. $3 is the query, $4 the text configuration.
_BM25_RANK = (
    "pgsearch.bm25_score(c.tsv, (SELECT pgsearch.query_lexemes($4, $3)),"
    " (SELECT pgsearch.bm25_idf(pgsearch.query_lexemes($4, $3))), %s, %s,"
    " (SELECT pgsearch.bm25_avg_length()))"
)
_BM25_MATCH = "c.tsv @@ pgsearch.any_lexeme(pgsearch.query_lexemes($4, $3))"


def _replaced(sql: str, *pairs: tuple[str, str]) -> str:
    sql = sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    for old, new in pairs:
        assert old in sql, old
        sql = sql.replace(old, new)
    return sql


_TEXT_SEARCH = _replaced(
    _SEARCH_FUNCTIONS._TEXT_SEARCH,
    (
        "ts_rank_cd(c.tsv, (SELECT websearch_to_tsquery($4, $3)))",
        _BM25_RANK.replace("%s, %s", "1.2, 0.75"),
    ),
    ("c.tsv @@ websearch_to_tsquery($4, $3)", _BM25_MATCH),
)

_BM25_SEARCH = _replaced(
    _SEARCH_FUNCTIONS._TEXT_SEARCH,
    (
        "pgsearch.text_search(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')",
        "pgsearch.bm25_search(\n    query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}',"
        "\n    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75\n)",
    ),
    (
        "PERFORM pgsearch._check_query($1, 'text');",
        "PERFORM pgsearch._check_query($1, 'bm25');\n"
        "    IF NOT ($4 BETWEEN 0 AND 100 AND $5 BETWEEN 0 AND 1) THEN\n"
        "        RAISE EXCEPTION USING ERRCODE = '22023',\n"
        "            MESSAGE = format('k1 = %s, b = %s: use k1 from 0 to 100, b from 0 to 1',\n"
        "                $4, $5);\n"
        "    END IF;",
    ),
    (
        "ts_rank_cd(c.tsv, (SELECT websearch_to_tsquery($4, $3)))",
        _BM25_RANK.replace("%s, %s", "$6, $7"),
    ),
    ("c.tsv @@ websearch_to_tsquery($4, $3)", _BM25_MATCH),
    (
        "USING compiled.args, NULL::vector, $1, store.text_config, $2;",
        "USING compiled.args, NULL::vector, $1, store.text_config, $2, $4, $5;",
    ),
)

_HYBRID_SEARCH = _replaced(
    _SEARCH_FUNCTIONS._HYBRID_SEARCH,
    (
        "ts_rank(c.tsv, (SELECT pgsearch.keyword_query($4, $3)), 1) AS rank'",
        _BM25_RANK.replace("%s, %s", "1.2, 0.75") + " AS rank'",
    ),
    ("c.tsv @@ pgsearch.keyword_query($4, $3) AND %2$s", _BM25_MATCH + " AND %2$s"),
)

_COMMENTS = {
    "pgsearch.tsv_length(tsvector)": (
        "Tokens in a tsvector's text, stop words excluded: BM25's document length."
    ),
    "pgsearch.query_lexemes(regconfig, text)": (
        "A query's BM25 terms: the lexemes of to_tsvector(config, query), stemmed, stop words"
        " removed, as the stored tsv is normalised."
    ),
    "pgsearch.any_lexeme(text[])": "A tsquery matching any of the terms (OR).",
    "pgsearch.bm25_idf(text[])": (
        "BM25 idf of each term, ln(1 + (N - df + 0.5) / (df + 0.5)), from the statistics"
        " ledgers: N chunks, df chunks containing the term."
    ),
    "pgsearch.bm25_avg_length()": "Average chunk length in tokens (NULL for an empty store).",
    "pgsearch.bm25_score(tsvector, text[], double precision[], double precision,"
    " double precision, double precision)": (
        "Okapi BM25 of one chunk's tsv for the terms with their idfs, given k1, b and the"
        " average chunk length."
    ),
    "pgsearch._bm25_count()": (
        "pgsearch internal: statement trigger that adds the inserted, deleted or updated"
        " chunks' lexemes and lengths to the BM25 statistics ledgers."
    ),
    "pgsearch._bm25_truncate()": (
        "pgsearch internal: empties the BM25 statistics when pgsearch.chunks is truncated."
    ),
    "pgsearch.bm25_compact()": (
        "Folds the BM25 statistics ledgers into one row per lexeme (pgsearch optimize runs it);"
        " safe beside concurrent writers."
    ),
    "pgsearch.text_search(text, integer, jsonb)": (
        "The k (1 to 1000) chunks that contain any of the query's words (stop words removed,"
        " stemmed by the store's text configuration) and pass filter, by BM25 (k1 1.2, b 0.75),"
        " best first. The same rows as pgsearch's Python search in text mode."
    ),
    "pgsearch.bm25_search(text, integer, jsonb, double precision, double precision)": (
        "Like text_search, with BM25's k1 (0 to 100) and b (0 to 1) given. The same rows as"
        " pgsearch's Python search in bm25 mode."
    ),
    "pgsearch.hybrid_search(text, vector, integer, jsonb, integer)": (
        "Reciprocal rank fusion of a vector leg (query_embedding, routed like vector_search)"
        " and a BM25 leg (as text_search), each ranking max(4k, 40) chunks (at most 1000) that"
        " pass filter: score = sum of 1 / (rrf_k + rank) over the legs a chunk appears in;"
        " vector_rank and text_rank are NULL where it is absent. The same rows as pgsearch's"
        " Python search in hybrid mode."
    ),
}


def upgrade() -> None:
    op.execute(_TABLES)
    op.execute(_FUNCTIONS)
    op.execute(_BACKFILL)
    for statement in (_TEXT_SEARCH, _BM25_SEARCH, _HYBRID_SEARCH):
        op.execute(statement)
    for signature, comment in _COMMENTS.items():
        op.execute(f"COMMENT ON FUNCTION {signature} IS {_SEARCH_FUNCTIONS._quote(comment)}")


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION pgsearch.bm25_search(text, integer, jsonb, double precision,"
        " double precision)"
    )
    for name in ("_TEXT_SEARCH", "_HYBRID_SEARCH"):
        op.execute(_replaced(getattr(_SEARCH_FUNCTIONS, name)))
    for signature, comment in _SEARCH_FUNCTIONS._COMMENTS.items():
        if signature in _COMMENTS:
            op.execute(f"COMMENT ON FUNCTION {signature} IS {_SEARCH_FUNCTIONS._quote(comment)}")
    op.execute(
        """
        DROP TRIGGER bm25_inserted ON pgsearch.chunks;
        DROP TRIGGER bm25_deleted ON pgsearch.chunks;
        DROP TRIGGER bm25_updated ON pgsearch.chunks;
        DROP TRIGGER bm25_truncated ON pgsearch.chunks;
        DROP FUNCTION pgsearch.bm25_compact();
        DROP FUNCTION pgsearch._bm25_truncate();
        DROP FUNCTION pgsearch._bm25_count();
        DROP FUNCTION pgsearch.bm25_score(
            tsvector, text[], double precision[], double precision, double precision,
            double precision);
        DROP FUNCTION pgsearch.bm25_avg_length();
        DROP FUNCTION pgsearch.bm25_idf(text[]);
        DROP FUNCTION pgsearch.any_lexeme(text[]);
        DROP FUNCTION pgsearch.query_lexemes(regconfig, text);
        DROP FUNCTION pgsearch.tsv_length(tsvector);
        DROP TABLE pgsearch.bm25_totals;
        DROP TABLE pgsearch.bm25_lexemes
        """
    )
