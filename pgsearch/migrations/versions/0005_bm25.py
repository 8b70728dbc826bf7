"""BM25 in plain SQL: postings and corpus totals kept by triggers, and ranking over them.

Revision ID: 0005_bm25
Revises: 0004_deferred_indexes
Create Date: 2026-12-04

Postings. ``pgsearch.bm25_postings`` holds a row per (lexeme, chunk): the lexeme's frequency in
the chunk and the chunk's length in tokens (stop words excluded: what ``to_tsvector`` keeps).
Its B-tree on ``(lexeme, chunk_id)`` serves a query's terms and the triggers' deletes. A term's
document frequency is the number of its postings. ``pgsearch.bm25_totals`` is an append-only
ledger of the number of chunks and their total length: one delta row per write statement, so
concurrent writers never wait on a shared counter row; ``pgsearch.bm25_compact()`` (run by
``pgsearch optimize``) folds it into one row. Statement-level triggers on ``pgsearch.chunks``
keep both in the writer's transaction: exact under inserts, updates, deletes, cascades and
TRUNCATE, whoever writes.

Ranking. Okapi BM25 with the Lucene (and bm25s) idf, ``ln(1 + (N - df + 0.5) / (df + 0.5))``,
which never goes negative for words in over half the chunks. A query's terms are the lexemes of
``to_tsvector(config, query)``: stemmed, stop words removed, as the stored ``tsv`` is. A search
reads the postings of its terms and nothing else: the cost grows with the matching postings,
not with the store.
"""

import importlib
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from pgsearch.exceptions import ConfigurationError, ExtensionMissingError

# The search functions of 0002 (frozen there): text_search and hybrid_search are redefined here
# with BM25 as their text ranking, and restored from there on downgrade.
_SEARCH_FUNCTIONS = importlib.import_module("pgsearch.migrations.versions.0002_search_functions")

revision: str = "0005_bm25"
down_revision: str | Sequence[str] | None = "0004_deferred_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = """
CREATE TABLE pgsearch.bm25_postings (
    lexeme text NOT NULL,
    chunk_id bigint NOT NULL,
    frequency integer NOT NULL,
    title_frequency integer NOT NULL,
    chunk_tokens integer NOT NULL
);
CREATE INDEX ix_bm25_postings_lexeme ON pgsearch.bm25_postings (lexeme, chunk_id)
    INCLUDE (frequency, title_frequency, chunk_tokens);
COMMENT ON TABLE pgsearch.bm25_postings IS
    'BM25 postings: a row per lexeme per chunk, with its frequency and the chunk length';
CREATE TABLE pgsearch.bm25_frequencies (
    lexeme text NOT NULL,
    chunks bigint NOT NULL
);
CREATE INDEX ix_bm25_frequencies_lexeme ON pgsearch.bm25_frequencies (lexeme) INCLUDE (chunks);
COMMENT ON TABLE pgsearch.bm25_frequencies IS
    'BM25 document frequencies as deltas: chunks holding a lexeme = sum(chunks) of its rows';
CREATE TABLE pgsearch.bm25_totals (
    chunks bigint NOT NULL,
    tokens bigint NOT NULL
);
COMMENT ON TABLE pgsearch.bm25_totals IS
    'BM25 corpus size as deltas: sum(chunks) chunks holding sum(tokens) tokens';
CREATE TABLE pgsearch.bm25_vocabulary (
    lexeme text NOT NULL
);
CREATE INDEX ix_bm25_vocabulary_lexeme ON pgsearch.bm25_vocabulary (lexeme);
CREATE INDEX ix_bm25_vocabulary_trigrams ON pgsearch.bm25_vocabulary
    USING gin (lexeme __TRGM__.gin_trgm_ops);
COMMENT ON TABLE pgsearch.bm25_vocabulary IS
    'Lexemes seen in chunks, for the trigram fallback of text search (duplicates possible)'
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

CREATE FUNCTION pgsearch._bm25_round(score double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- Scores to 1e-9: chunks with the same postings tie exactly (and fall back on their id),
    -- whatever order a plan summed their terms in.
    -- In floating point: numeric rounding cost more than the scoring of a common word's postings.
    SELECT round(score * 1e9) / 1e9
$$;

CREATE FUNCTION pgsearch._bm25_totals(OUT chunks double precision, OUT average double precision)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- N, the number of chunks, and avgdl, their average length in tokens, from the ledger.
    SELECT CAST(coalesce(sum(t.chunks), 0) AS double precision),
           CAST(sum(t.tokens) AS double precision) / nullif(sum(t.chunks), 0)
    FROM pgsearch.bm25_totals AS t
$$;

CREATE FUNCTION pgsearch._bm25_idf(chunks double precision, df double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    -- Lucene's (and bm25s') idf, never negative.
    SELECT ln(1 + (chunks - df + 0.5) / (df + 0.5))
$$;

CREATE FUNCTION pgsearch._bm25_frequencies(
    terms text[], OUT lexeme text, OUT df double precision
)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- Each term held by some chunk, once, with its document frequency from the ledger.
    SELECT f.lexeme, CAST(sum(f.chunks) AS double precision)
    FROM pgsearch.bm25_frequencies AS f
    WHERE f.lexeme = ANY(terms)
    GROUP BY f.lexeme
    HAVING sum(f.chunks) > 0
$$;

CREATE FUNCTION pgsearch._bm25_idfs(terms text[], OUT lexeme text, OUT idf double precision)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- Each term held by some chunk, once, with its idf.
    SELECT f.lexeme, pgsearch._bm25_idf(t.chunks, f.df)
    FROM pgsearch._bm25_frequencies(terms) AS f, pgsearch._bm25_totals() AS t
$$;

CREATE FUNCTION pgsearch._bm25_weight(
    idf double precision, frequency integer, title_frequency integer, chunk_tokens integer,
    k1 double precision, b double precision, title_weight double precision,
    average double precision
)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    -- One term's share of a chunk's score: idf * tf (k1 + 1) / (tf + k1 (1 - b + b |D| / avgdl)),
    -- an occurrence in the title counting title_weight times (1: title and body alike).
    SELECT idf * (frequency + (title_weight - 1) * title_frequency) * (k1 + 1)
           / (frequency + (title_weight - 1) * title_frequency
              + k1 * (1 - b + b * chunk_tokens / greatest(average, 1e-9)))
$$;

CREATE FUNCTION pgsearch.text_terms(config regconfig, query text)
RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    terms text[] := pgsearch.query_lexemes(config, query);
    corrected text[];
BEGIN
    IF coalesce(cardinality(terms), 0) = 0
       OR EXISTS (SELECT FROM pgsearch.bm25_postings AS p WHERE p.lexeme = ANY(terms)) THEN
        RETURN terms;
    END IF;
    -- No chunk holds any of the words (misspelled, say): take, for each, the most similar
    -- lexeme of the store by trigrams (pg_trgm's % operator and its similarity threshold).
    SELECT array_agg(DISTINCT best.lexeme) INTO corrected
    FROM unnest(terms) AS t(term),
    LATERAL (
        SELECT v.lexeme FROM pgsearch.bm25_vocabulary AS v
        WHERE v.lexeme OPERATOR(__TRGM__.%) t.term
        ORDER BY __TRGM__.similarity(v.lexeme, t.term) DESC, v.lexeme
        LIMIT 1
    ) AS best;
    RETURN coalesce(corrected, terms);
END
$$;

CREATE FUNCTION pgsearch.bm25_common_cutoff(terms text[], max_postings bigint)
RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- The terms rarest first while their postings add up to at most max_postings (the rarest
    -- always): the commonest words of a long query are left out, as Lucene's common-terms
    -- query does, so a ranking over them reads a bounded number of postings. A NULL bound
    -- returns the terms as given.
    SELECT CASE WHEN max_postings IS NULL THEN terms ELSE coalesce((
        SELECT array_agg(b.lexeme ORDER BY b.df, b.lexeme)
        FROM (
            SELECT f.lexeme, f.df,
                   sum(f.df) OVER (ORDER BY f.df, f.lexeme) AS running,
                   row_number() OVER (ORDER BY f.df, f.lexeme) AS n
            FROM pgsearch._bm25_frequencies(terms) AS f
        ) AS b
        WHERE b.running <= max_postings OR b.n = 1), '{}') END
$$;

CREATE FUNCTION pgsearch.bm25_ranking(
    terms text[], k1 double precision, b double precision,
    title_weight double precision DEFAULT 1,
    OUT chunk_id bigint, OUT score double precision
)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1000
AS $$
    -- Every chunk that contains a term, with its BM25 score: the sum of _bm25_weight over
    -- the terms in it. Each term's idf is computed once, from the frequency ledger, and its
    -- postings are read once, in index order.
    WITH totals AS MATERIALIZED (SELECT * FROM pgsearch._bm25_totals()),
    idf AS MATERIALIZED (SELECT * FROM pgsearch._bm25_idfs(terms))
    SELECT p.chunk_id, pgsearch._bm25_round(sum(pgsearch._bm25_weight(
        i.idf, p.frequency, p.title_frequency, p.chunk_tokens, k1, b, title_weight, t.average)))
    FROM idf AS i
    JOIN pgsearch.bm25_postings AS p ON p.lexeme = i.lexeme, totals AS t
    GROUP BY p.chunk_id
$$;

CREATE FUNCTION pgsearch.bm25_top(
    terms text[], k integer, k1 double precision, b double precision,
    title_weight double precision DEFAULT 1,
    OUT chunk_id bigint, OUT score double precision
)
RETURNS SETOF record
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 100
AS $$
-- The k best chunks by BM25, the same rows and scores as bm25_ranking's best k, without
-- reading every posting of common words (MaxScore, Turtle & Flood 1995). A term adds at most
-- idf * (k1 + 1) to a score. Terms go rarest first; the chunks holding one of the first m are
-- scored exactly (over all the terms), and once the k-th best of them beats what the other
-- terms together could add, no chunk holding only those could enter the top k. Once the
-- candidates' terms hold a tenth of the query's postings, one pass over them all is cheaper
-- than probing the candidates, and gives the same top k.
#variable_conflict use_column
DECLARE
    total double precision;
    average double precision;
    ordered text[];
    idfs double precision[];
    bounds double precision[];  -- bounds[m]: the most terms m.. could add together
    dfs double precision[];
    all_postings double precision;
    m integer := 1;
    best_ids bigint[];
    best_scores double precision[];
BEGIN
    SELECT t.chunks, t.average INTO total, average FROM pgsearch._bm25_totals() AS t;
    SELECT array_agg(f.lexeme ORDER BY f.df, f.lexeme),
           array_agg(pgsearch._bm25_idf(total, f.df) ORDER BY f.df, f.lexeme),
           array_agg(f.df ORDER BY f.df, f.lexeme), sum(f.df)
    INTO ordered, idfs, dfs, all_postings
    FROM pgsearch._bm25_frequencies(terms) AS f;
    IF ordered IS NULL OR k < 1 THEN
        RETURN;
    END IF;
    bounds := array_fill(0::double precision, ARRAY[cardinality(ordered) + 1]);
    FOR i IN REVERSE cardinality(ordered)..1 LOOP
        bounds[i] := bounds[i + 1] + idfs[i] * (k1 + 1);
    END LOOP;
    LOOP
        IF m >= cardinality(ordered)
           OR (SELECT sum(d) FROM unnest(dfs[1:m]) AS d) * 10 >= all_postings THEN
            -- Every term's postings, scored in one pass without a candidate list: cheaper
            -- than probing the postings of candidates that hold a tenth of them (measured
            -- 4x per posting on the Debian set).
            RAISE DEBUG 'pgsearch.bm25_top: every posting of the % terms scored',
                cardinality(ordered);
            RETURN QUERY
            SELECT r.chunk_id, r.score
            FROM pgsearch.bm25_ranking(ordered, k1, b, title_weight) AS r
            ORDER BY r.score DESC, r.chunk_id LIMIT k;
            RETURN;
        END IF;
        SELECT array_agg(s.chunk_id ORDER BY s.score DESC, s.chunk_id),
               array_agg(s.score ORDER BY s.score DESC, s.chunk_id)
        INTO best_ids, best_scores
        FROM (
            SELECT r.chunk_id, r.score FROM pgsearch._bm25_scores(
                ordered, idfs, m, k1, b, title_weight, average) AS r
            ORDER BY r.score DESC, r.chunk_id LIMIT k) AS s;
        EXIT WHEN coalesce(cardinality(best_ids), 0) >= k
                  AND bounds[m + 1] < best_scores[cardinality(best_scores)];
        -- More candidates only raise the k-th best score: the first m whose remaining terms
        -- stay below today's k-th best is enough, or the next one without k candidates yet.
        m := m + 1;
        IF coalesce(cardinality(best_ids), 0) >= k THEN
            WHILE m < cardinality(ordered)
                  AND bounds[m + 1] >= best_scores[cardinality(best_scores)] LOOP
                m := m + 1;
            END LOOP;
        END IF;
    END LOOP;
    RAISE DEBUG 'pgsearch.bm25_top: the chunks holding % of % terms decided the top %',
        m, cardinality(ordered), k;
    RETURN QUERY
    SELECT t.chunk_id, t.score FROM unnest(best_ids, best_scores) AS t(chunk_id, score);
END
$$;

CREATE FUNCTION pgsearch.bm25_scores(
    terms text[], chunk_ids bigint[], k1 double precision, b double precision,
    title_weight double precision DEFAULT 1,
    OUT chunk_id bigint, OUT score double precision
)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- BM25 of the given chunks (those a tsquery or a filter selected, say): the postings of
    -- the terms in those chunks only, idf from the frequency ledger.
    WITH totals AS MATERIALIZED (SELECT * FROM pgsearch._bm25_totals()),
    idf AS MATERIALIZED (SELECT * FROM pgsearch._bm25_idfs(terms))
    SELECT p.chunk_id, pgsearch._bm25_round(sum(pgsearch._bm25_weight(
        i.idf, p.frequency, p.title_frequency, p.chunk_tokens, k1, b, title_weight, t.average)))
    FROM pgsearch.bm25_postings AS p
    JOIN idf AS i ON i.lexeme = p.lexeme, totals AS t
    WHERE p.lexeme = ANY(terms) AND p.chunk_id = ANY(chunk_ids)
    GROUP BY p.chunk_id
$$;

CREATE FUNCTION pgsearch._bm25_scores(
    ordered text[], idfs double precision[], m integer, k1 double precision,
    b double precision, title_weight double precision, average double precision,
    OUT chunk_id bigint, OUT score double precision
)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- Exact scores, over every term, of the chunks that hold one of the first m terms.
    -- Both conditions on the postings index: (lexeme, chunk_id) pairs, one scan per term.
    SELECT p.chunk_id, pgsearch._bm25_round(sum(pgsearch._bm25_weight(
        t.idf, p.frequency, p.title_frequency, p.chunk_tokens, k1, b, title_weight, average)))
    FROM unnest(ordered, idfs) AS t(lexeme, idf)
    JOIN pgsearch.bm25_postings AS p ON p.lexeme = t.lexeme
    WHERE p.chunk_id = ANY(ARRAY(
          SELECT DISTINCT c.chunk_id FROM pgsearch.bm25_postings AS c
          WHERE c.lexeme = ANY(ordered[1:m])))
    GROUP BY p.chunk_id
$$;

CREATE FUNCTION pgsearch._bm25_count() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (SELECT count(*) FROM old_rows) = (
            SELECT count(*) FROM old_rows AS o JOIN new_rows AS n USING (id)
            WHERE o.tsv IS NOT DISTINCT FROM n.tsv
        ) THEN
            RETURN NULL;  -- metadata or embedding only: the text, and so BM25, is unchanged
        END IF;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM pgsearch.bm25_postings AS p
        USING old_rows AS o, unnest(o.tsv) AS u
        WHERE p.lexeme = u.lexeme AND p.chunk_id = o.id;
        INSERT INTO pgsearch.bm25_frequencies (lexeme, chunks)
        SELECT u.lexeme, -count(*) FROM old_rows AS o, unnest(o.tsv) AS u GROUP BY u.lexeme;
        INSERT INTO pgsearch.bm25_totals (chunks, tokens)
        SELECT -count(*), -coalesce(sum(pgsearch.tsv_length(o.tsv)), 0) FROM old_rows AS o
        HAVING count(*) > 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        -- One unnest of the new tsvectors feeds the postings, vocabulary and both ledgers
        -- (a chunk's length is the sum of its lexemes' frequencies: tsv_length).
        WITH u AS MATERIALIZED (
            SELECT n.id, x.lexeme, coalesce(cardinality(x.positions), 1) AS frequency,
                   coalesce(cardinality(array_positions(x.weights, 'A')), 0) AS title_frequency
            FROM new_rows AS n, unnest(n.tsv) AS x
        ), postings AS (
            INSERT INTO pgsearch.bm25_postings
                (lexeme, chunk_id, frequency, title_frequency, chunk_tokens)
            SELECT u.lexeme, u.id, u.frequency, u.title_frequency,
                   sum(u.frequency) OVER (PARTITION BY u.id)
            FROM u
        ), vocabulary AS (
            INSERT INTO pgsearch.bm25_vocabulary (lexeme)
            SELECT DISTINCT u.lexeme FROM u
            WHERE NOT EXISTS (
                SELECT FROM pgsearch.bm25_vocabulary AS v WHERE v.lexeme = u.lexeme)
        ), frequencies AS (
            INSERT INTO pgsearch.bm25_frequencies (lexeme, chunks)
            SELECT u.lexeme, count(*) FROM u GROUP BY u.lexeme
        )
        INSERT INTO pgsearch.bm25_totals (chunks, tokens)
        SELECT count(*), coalesce((SELECT sum(u.frequency) FROM u), 0) FROM new_rows
        HAVING count(*) > 0;
    END IF;
    -- Searches sum the ledgers: after 1,000 write statements (as many totals rows), the writer
    -- that finds it so folds both (unless another is folding), so that they never grow
    -- without pgsearch optimize. The fold costs in proportion to what those writes added.
    IF (SELECT count(*) FROM (SELECT FROM pgsearch.bm25_totals LIMIT 1001) AS r) > 1000
       AND pg_try_advisory_xact_lock(CAST(x'7067736d32356363' AS bigint)) THEN
        WITH gone AS (DELETE FROM pgsearch.bm25_totals RETURNING chunks, tokens)
        INSERT INTO pgsearch.bm25_totals (chunks, tokens)
        SELECT sum(chunks), sum(tokens) FROM gone HAVING count(*) > 0;
        WITH gone AS (DELETE FROM pgsearch.bm25_frequencies RETURNING lexeme, chunks)
        INSERT INTO pgsearch.bm25_frequencies (lexeme, chunks)
        SELECT lexeme, sum(chunks) FROM gone GROUP BY lexeme HAVING sum(chunks) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgsearch._bm25_truncate() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE pgsearch.bm25_postings, pgsearch.bm25_frequencies, pgsearch.bm25_totals,
        pgsearch.bm25_vocabulary;
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
    -- Fold the totals ledger into one row. Rows that concurrent writers add meanwhile are not
    -- in this statement's snapshot and stay as they are: the sums never change.
    PERFORM pg_advisory_xact_lock(CAST(x'7067736d32356363' AS bigint));  -- one at a time
    WITH gone AS (DELETE FROM pgsearch.bm25_frequencies RETURNING lexeme, chunks)
    INSERT INTO pgsearch.bm25_frequencies (lexeme, chunks)
    SELECT lexeme, sum(chunks) FROM gone GROUP BY lexeme HAVING sum(chunks) <> 0;
    WITH gone AS (DELETE FROM pgsearch.bm25_totals RETURNING chunks, tokens)
    INSERT INTO pgsearch.bm25_totals (chunks, tokens)
    SELECT sum(chunks), sum(tokens) FROM gone HAVING count(*) > 0;
    -- Concurrent writers may both add a new lexeme: keep one.
    DELETE FROM pgsearch.bm25_vocabulary AS a USING pgsearch.bm25_vocabulary AS b
    WHERE a.lexeme = b.lexeme AND a.ctid > b.ctid;
END
$$
"""

_BACKFILL = """
INSERT INTO pgsearch.bm25_postings (lexeme, chunk_id, frequency, title_frequency, chunk_tokens)
SELECT u.lexeme, c.id, coalesce(cardinality(u.positions), 1),
       coalesce(cardinality(array_positions(u.weights, 'A')), 0), l.tokens
FROM pgsearch.chunks AS c, LATERAL pgsearch.tsv_length(c.tsv) AS l(tokens), unnest(c.tsv) AS u;
INSERT INTO pgsearch.bm25_vocabulary (lexeme)
SELECT DISTINCT u.lexeme FROM pgsearch.chunks AS c, unnest(c.tsv) AS u;
INSERT INTO pgsearch.bm25_frequencies (lexeme, chunks)
SELECT u.lexeme, count(*) FROM pgsearch.chunks AS c, unnest(c.tsv) AS u GROUP BY u.lexeme;
INSERT INTO pgsearch.bm25_totals (chunks, tokens)
SELECT count(*), coalesce(sum(pgsearch.tsv_length(tsv)), 0) FROM pgsearch.chunks
HAVING count(*) > 0
"""


# The BM25 leg of the SQL search functions, routed as text mode is in Python: no filter,
# bm25_top (MaxScore); a filter the planner expects to select at most 10,000 chunks
# (DEFAULT_EXACT_THRESHOLD), bm25_scores of those chunks; another, bm25_ranking, then the
# filter. __TERMS__ and __PARAMETERS__ are the terms and (k1, b, title_weight) of each function.
_TEXT_LEG = r"""
    route := pgsearch._vector_route(compiled.clause, compiled.args, filtered);
    ranking := CASE
        WHEN NOT filtered THEN 'pgsearch.bm25_top(__TERMS__, $5, __PARAMETERS__)'
        WHEN route.path = 'exact' THEN format(
            'pgsearch.bm25_scores(__TERMS__, ARRAY(SELECT c.id FROM pgsearch.chunks c'
            ' WHERE %s), __PARAMETERS__)', compiled.clause)
        ELSE 'pgsearch.bm25_ranking(__TERMS__, __PARAMETERS__)'
    END;
    RETURN QUERY EXECUTE format(
        'SELECT c.id, d.external_id, d.title, c.position, c.content, c.metadata,'
        ' CAST(matched.rank AS double precision)'
        ' FROM (SELECT c.id, r.score AS rank'
        '       FROM %s AS r JOIN pgsearch.chunks c ON c.id = r.chunk_id'
        '       WHERE %s'
        '       ORDER BY rank DESC, c.id LIMIT $5) AS matched'
        ' JOIN pgsearch.chunks c ON c.id = matched.id'
        ' JOIN pgsearch.documents d ON d.id = c.document_id'
        ' ORDER BY matched.rank DESC, c.id', ranking, compiled.clause)
        USING compiled.args, NULL::vector, $1, store.text_config, $2__USING__;
"""


def _text_function(signature: str, check: str, terms: str, parameters: str, using: str) -> str:
    leg = (
        _TEXT_LEG.replace("__TERMS__", terms)
        .replace("__PARAMETERS__", parameters)
        .replace("__USING__", using)
    )
    columns: str = _SEARCH_FUNCTIONS._RESULT_COLUMNS
    return (
        f"""
CREATE OR REPLACE FUNCTION {signature}
RETURNS TABLE ("""
        + columns
        + f"""
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
#variable_conflict use_column
DECLARE
    store record;
    compiled record;
    route record;
    ranking text;
    filtered boolean := $3 IS NOT NULL AND $3 <> '{{}}';
BEGIN
    {check}
    PERFORM pgsearch._check_range('k', $2, 1, 1000);
    compiled := pgsearch.filter_clause($3);
    store := pgsearch._search_store(NULL);"""
        + leg
        + """END
$$
"""
    )


_TEXT_SEARCH = _text_function(
    "pgsearch.text_search(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')",
    "PERFORM pgsearch._check_query($1, 'text');",
    "pgsearch.text_terms($4, $3)",
    "1.2, 0.75, 2",
    "",
)

_BM25_SEARCH = _text_function(
    "pgsearch.bm25_search(\n    query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}',"
    "\n    k1 double precision DEFAULT 1.2, b double precision DEFAULT 0.75\n)",
    "PERFORM pgsearch._check_query($1, 'bm25');\n"
    "    IF NOT ($4 BETWEEN 0 AND 100 AND $5 BETWEEN 0 AND 1) THEN\n"
    "        RAISE EXCEPTION USING ERRCODE = '22023',\n"
    "            MESSAGE = format('k1 = %s, b = %s: use k1 from 0 to 100, b from 0 to 1',\n"
    "                $4, $5);\n"
    "    END IF;",
    "pgsearch.query_lexemes($4, $3)",
    "$6, $7, 1",
    ", $4, $5",
)

_HYBRID_SEARCH = (
    r"""
CREATE FUNCTION pgsearch.hybrid_search(
    query text,
    query_embedding vector,
    k integer DEFAULT 10,
    filter jsonb DEFAULT '{}',
    rrf_k integer DEFAULT 60,
    fusion text DEFAULT 'convex',
    alpha double precision DEFAULT 0.5,
    max_postings bigint DEFAULT 30000
)
RETURNS TABLE ("""
    + _SEARCH_FUNCTIONS._RESULT_COLUMNS
    + r""",
    vector_rank bigint,
    text_rank bigint,
    vector_score double precision,
    text_score double precision
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
#variable_conflict use_column
DECLARE
    store record;
    compiled record;
    route record;
    filtered boolean := $4 IS NOT NULL AND $4 <> '{}';
    depth integer;
    path text;
    ids bigint[];
    scores double precision[];
    vector_ranks bigint[];
    text_ranks bigint[];
    vector_scores double precision[];
    text_scores double precision[];
BEGIN
    PERFORM pgsearch._check_query($1, 'hybrid');
    PERFORM pgsearch._check_embedding($2);
    PERFORM pgsearch._check_range('k', $3, 1, 1000);
    PERFORM pgsearch._check_range('rrf_k', $5, 1, 1000000);
    IF $6 IS NULL OR $6 NOT IN ('convex', 'rrf') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('fusion = %L: use convex or rrf', $6);
    END IF;
    IF $7 IS NULL OR NOT $7 BETWEEN 0 AND 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('alpha = %s: use a number from 0 to 1', coalesce($7::text, 'NULL'));
    END IF;
    IF $8 IS NOT NULL AND $8 < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('max_postings = %s: use a positive number, or NULL for no bound', $8);
    END IF;
    -- Each leg ranks max(4k, 40) chunks, at most MAX_K (1000), and never fewer than k.
    depth := greatest(least(greatest(4 * $3, 40), 1000), $3);
    compiled := pgsearch.filter_clause($4);
    store := pgsearch._search_store($2);
    route := pgsearch._vector_route(compiled.clause, compiled.args, filtered);
    path := route.path;
    RAISE DEBUG 'pgsearch.hybrid_search: % path (%)', path,
        CASE WHEN route.estimate IS NULL THEN 'no filter'
             ELSE format('the planner expects %s chunks to pass the filter', route.estimate) END;
    LOOP
        IF path = 'hnsw' THEN
            PERFORM pgsearch._hnsw_knobs(depth, filtered);
        END IF;
        -- Legs ranked by (distance, id) and (BM25 desc, id); scores min-max normalised over
        -- each leg's candidates (1 when they all tie). convex: alpha * vector + (1 - alpha) *
        -- text, 0 for a leg a chunk is absent from; rrf: 1 / (rrf_k + rank) per leg.
        EXECUTE format(
            'WITH vector_leg AS ('
            '    SELECT s.id, s.rank, s.score, coalesce((s.score - min(s.score) OVER ())'
            '           / nullif(max(s.score) OVER () - min(s.score) OVER (), 0), 1) AS normalised'
            '    FROM (SELECT nearest.id, %3$s AS score,'
            '                 row_number() OVER (ORDER BY nearest.distance, nearest.id) AS rank'
            '          FROM (%1$s) AS nearest) AS s'
            '), text_leg AS ('
            '    SELECT s.id, s.rank, s.score, coalesce((s.score - min(s.score) OVER ())'
            '           / nullif(max(s.score) OVER () - min(s.score) OVER (), 0), 1) AS normalised'
            '    FROM (SELECT matched.id, matched.rank AS score,'
            '                 row_number() OVER (ORDER BY matched.rank DESC, matched.id) AS rank'
            '          FROM (SELECT c.id, r.score AS rank'
            '                FROM pgsearch.bm25_ranking(pgsearch.bm25_common_cutoff('
            '                         pgsearch.text_terms($4, $3), $9), 1.2, 0.75, 2) AS r'
            '                JOIN pgsearch.chunks c ON c.id = r.chunk_id'
            '                WHERE %2$s'
            '                ORDER BY rank DESC, c.id LIMIT $5) AS matched) AS s'
            '), fused AS ('
            '    SELECT coalesce(v.id, t.id) AS id, %4$s AS score,'
            '           v.rank AS vector_rank, t.rank AS text_rank,'
            '           v.score AS vector_score, t.score AS text_score'
            '    FROM vector_leg v FULL JOIN text_leg t ON t.id = v.id'
            '    ORDER BY 2 DESC, 1'
            '    LIMIT $6'
            ')'
            ' SELECT array_agg(f.id ORDER BY f.score DESC, f.id),'
            '        array_agg(f.score ORDER BY f.score DESC, f.id),'
            '        array_agg(f.vector_rank ORDER BY f.score DESC, f.id),'
            '        array_agg(f.text_rank ORDER BY f.score DESC, f.id),'
            '        array_agg(f.vector_score ORDER BY f.score DESC, f.id),'
            '        array_agg(f.text_score ORDER BY f.score DESC, f.id)'
            ' FROM fused f',
            pgsearch._vector_leg(store.operator, compiled.clause, path), compiled.clause,
            CASE WHEN store.cosine THEN '1 - nearest.distance' ELSE '-nearest.distance' END,
            CASE WHEN $6 = 'rrf'
                 THEN 'coalesce(CAST(1.0 AS double precision) / ($7 + v.rank), 0)'
                      ' + coalesce(CAST(1.0 AS double precision) / ($7 + t.rank), 0)'
                 ELSE '$8 * coalesce(v.normalised, 0) + (1 - $8) * coalesce(t.normalised, 0)'
            END)
            INTO ids, scores, vector_ranks, text_ranks, vector_scores, text_scores
            USING compiled.args, $2, $1, store.text_config, depth, $3, $5, $7, $8;
        EXIT WHEN path = 'exact' OR coalesce(cardinality(ids), 0) >= $3;
        -- Never short: an HNSW scan can stop before it has seen every matching chunk.
        RAISE DEBUG 'pgsearch.hybrid_search: hnsw path found % of % rows, exact path',
            coalesce(cardinality(ids), 0), $3;
        path := 'exact';
    END LOOP;
    RETURN QUERY
    SELECT c.id, d.external_id, d.title, c.position, c.content, c.metadata,
           f.score, f.vector_rank, f.text_rank, f.vector_score, f.text_score
    FROM unnest(ids, scores, vector_ranks, text_ranks, vector_scores, text_scores)
         WITH ORDINALITY AS f (id, score, vector_rank, text_rank, vector_score, text_score, n)
    JOIN pgsearch.chunks AS c ON c.id = f.id
    JOIN pgsearch.documents AS d ON d.id = c.document_id
    ORDER BY f.n;
END
$$
"""
)

_COMMENTS = {
    "pgsearch.tsv_length(tsvector)": (
        "Tokens in a tsvector's text, stop words excluded: BM25's document length."
    ),
    "pgsearch.query_lexemes(regconfig, text)": (
        "A query's BM25 terms: the lexemes of to_tsvector(config, query), stemmed, stop words"
        " removed, as the stored tsv is normalised."
    ),
    "pgsearch._bm25_totals()": (
        "pgsearch internal: N (chunks) and avgdl (their average length) from the ledger."
    ),
    "pgsearch._bm25_idf(double precision, double precision)": (
        "pgsearch internal: Lucene's idf, ln(1 + (N - df + 0.5) / (df + 0.5))."
    ),
    "pgsearch._bm25_frequencies(text[])": (
        "pgsearch internal: each of the terms that some chunk holds, once, with its document"
        " frequency from the ledger."
    ),
    "pgsearch._bm25_idfs(text[])": (
        "pgsearch internal: each of the terms that some chunk holds, once, with its idf from"
        " the frequency ledger."
    ),
    "pgsearch._bm25_weight(double precision, integer, integer, integer, double precision,"
    " double precision, double precision, double precision)": (
        "pgsearch internal: one term's share of a chunk's BM25 score; the one formula every"
        " ranking function uses."
    ),
    "pgsearch._bm25_round(double precision)": (
        "pgsearch internal: a BM25 score to 1e-9, so that equal chunks tie whatever the order"
        " of summation."
    ),
    "pgsearch.text_terms(regconfig, text)": (
        "Text search's terms: query_lexemes, or, when no chunk holds any of them (misspelled"
        " words), the store's most similar lexeme to each by pg_trgm similarity."
    ),
    "pgsearch.bm25_ranking(text[], double precision, double precision, double precision)": (
        "Every chunk holding one of the terms, with its Okapi BM25 score for k1 and b (an"
        " occurrence in the title counting title_weight times), from the postings: idf"
        " ln(1 + (N - df + 0.5) / (df + 0.5)); the cost grows with the terms' postings."
    ),
    "pgsearch.bm25_top(text[], integer, double precision, double precision, double precision)": (
        "The k best chunks by BM25 for the terms: the same rows and scores as the best k of"
        " bm25_ranking, found by MaxScore: terms rarest first, stopping once the chunks holding"
        " only the remaining (common) terms cannot reach the k-th best score (one pass over"
        " every posting once the candidates' terms hold a tenth of them)."
    ),
    "pgsearch.bm25_scores(text[], bigint[], double precision, double precision,"
    " double precision)": (
        "BM25 scores of the given chunks for the terms (those a tsquery or a filter selected):"
        " reads only their postings; idf from pgsearch.bm25_frequencies."
    ),
    "pgsearch._bm25_scores(text[], double precision[], integer, double precision,"
    " double precision, double precision, double precision)": (
        "pgsearch internal: exact BM25 scores, over every term, of the chunks holding one of"
        " the first m terms."
    ),
    "pgsearch._bm25_count()": (
        "pgsearch internal: statement trigger that keeps the BM25 postings and totals of the"
        " inserted, deleted or updated chunks."
    ),
    "pgsearch._bm25_truncate()": (
        "pgsearch internal: empties the BM25 postings and totals when pgsearch.chunks is truncated."
    ),
    "pgsearch.bm25_compact()": (
        "Folds the BM25 totals ledger into one row (pgsearch optimize runs it); safe beside"
        " concurrent writers."
    ),
    "pgsearch.text_search(text, integer, jsonb)": (
        "The k (1 to 1000) chunks that contain any of the query's words (stop words removed,"
        " stemmed by the store's text configuration; text_terms corrects misspellings when"
        " none matches) and pass filter, by BM25 (k1 1.2, b 0.75, a title word counting"
        " twice), best first. The same rows as pgsearch's Python search in text mode."
    ),
    "pgsearch.bm25_search(text, integer, jsonb, double precision, double precision)": (
        "Plain Okapi BM25 with k1 (0 to 100) and b (0 to 1): the chunks holding any of the"
        " query's terms, title and body alike, no misspelling fallback. The same rows as"
        " pgsearch's Python search in bm25 mode."
    ),
    "pgsearch.bm25_common_cutoff(text[], bigint)": (
        "A query's terms, rarest first, while their postings add up to at most max_postings"
        " (the rarest always; a NULL bound returns the terms as given): hybrid_search's bound"
        " on its BM25 leg's work."
    ),
    "pgsearch.hybrid_search(text, vector, integer, jsonb, integer, text, double precision,"
    " bigint)": (
        "A vector leg (query_embedding, routed like vector_search) and a BM25 leg (as"
        " text_search, over bm25_common_cutoff(terms, max_postings): the commonest words of a"
        " query whose words hold more than max_postings postings are left out, default 30000,"
        " NULL for none), each ranking max(4k, 40) chunks (at most 1000) that pass filter, fused:"
        " convex (default), alpha * the vector score + (1 - alpha) * the BM25 score, each"
        " min-max normalised over its leg's candidates (0 where absent); or rrf, the sum of"
        " 1 / (rrf_k + rank) over the legs. Each row carries both legs' ranks and scores (NULL"
        " where absent). The same rows as pgsearch's Python search in hybrid mode."
    ),
}


def _trigram_schema(conn: sa.Connection) -> str:
    """The schema of pg_trgm, as an identifier ready for SQL (``regnamespace`` output quotes
    a name that needs it), created in ``pgsearch`` when the database lacks it."""
    schema = conn.execute(
        sa.text(
            "SELECT CAST(extnamespace::regnamespace AS text) FROM pg_extension"
            " WHERE extname = 'pg_trgm'"
        )
    ).scalar()
    if schema is not None:
        return str(schema)
    available = conn.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if available is None:
        raise ExtensionMissingError(
            "this PostgreSQL server lacks pg_trgm (a contrib module that text search's "
            "misspelling fallback needs): install the server's contrib package"
        )
    try:
        with conn.begin_nested():
            conn.execute(sa.text("CREATE EXTENSION pg_trgm WITH SCHEMA pgsearch"))
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            raise ExtensionMissingError(
                "this role may not create the pg_trgm extension: ask a superuser or the "
                "database owner to run `CREATE EXTENSION pg_trgm;` in this database, then "
                "migrate again"
            ) from exc
        raise
    return "pgsearch"


def _tsv(config: str, with_title: bool) -> str:
    # The configuration was checked by the first revision (a name from pg_ts_config).
    body = f"to_tsvector('{config}'::regconfig, content)"
    if with_title:
        body = f"setweight(to_tsvector('{config}'::regconfig, coalesce(title, '')), 'A') || {body}"
    return (
        f"ALTER TABLE pgsearch.chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({body}) STORED"
    )


def _replace_tsv(config: str, *, with_title: bool) -> None:
    """Regenerate ``tsv`` (a generated column's expression cannot change before PG 17)."""
    op.execute("ALTER TABLE pgsearch.chunks DROP COLUMN tsv")  # and ix_chunks_tsv with it
    op.execute("DELETE FROM pgsearch.deferred_indexes WHERE name = 'ix_chunks_tsv'")
    op.execute(_tsv(config, with_title))
    op.execute("CREATE INDEX ix_chunks_tsv ON pgsearch.chunks USING gin (tsv)")


def upgrade() -> None:
    conn = op.get_bind()
    config = conn.execute(sa.text("SELECT text_config FROM pgsearch.store_config")).scalar()
    if not isinstance(config, str) or not config.replace("_", "").isalnum():
        raise ConfigurationError(f"pgsearch.store_config holds text_config {config!r}")
    trigrams = _trigram_schema(conn)
    # A new signature and new result columns: CREATE OR REPLACE cannot change those.
    op.execute("DROP FUNCTION pgsearch.hybrid_search(text, vector, integer, jsonb, integer)")
    # Titles are searched: chunks carry their document's title, weighted A in tsv.
    op.execute("ALTER TABLE pgsearch.chunks ADD COLUMN title text")
    op.execute(
        "UPDATE pgsearch.chunks AS c SET title = d.title FROM pgsearch.documents AS d"
        " WHERE d.id = c.document_id AND d.title IS NOT NULL"
    )
    _replace_tsv(config, with_title=True)
    op.execute(_TABLES.replace("__TRGM__", trigrams))
    op.execute(_FUNCTIONS.replace("__TRGM__", trigrams))
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
    op.execute(
        "DROP FUNCTION pgsearch.hybrid_search("
        "text, vector, integer, jsonb, integer, text, double precision, bigint)"
    )
    op.execute(_SEARCH_FUNCTIONS._HYBRID_SEARCH)
    # The same signature: 0002's definition replaces 0005's.
    op.execute(
        _SEARCH_FUNCTIONS._TEXT_SEARCH.replace("CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ", 1)
    )
    for signature, comment in _SEARCH_FUNCTIONS._COMMENTS.items():
        if signature.startswith(("pgsearch.text_search", "pgsearch.hybrid_search")):
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
        DROP FUNCTION pgsearch.bm25_ranking(
            text[], double precision, double precision, double precision);
        DROP FUNCTION pgsearch.bm25_top(
            text[], integer, double precision, double precision, double precision);
        DROP FUNCTION pgsearch.bm25_scores(
            text[], bigint[], double precision, double precision, double precision);
        DROP FUNCTION pgsearch._bm25_scores(
            text[], double precision[], integer, double precision, double precision,
            double precision, double precision);
        DROP FUNCTION pgsearch.bm25_common_cutoff(text[], bigint);
        DROP FUNCTION pgsearch.text_terms(regconfig, text);
        DROP FUNCTION pgsearch._bm25_round(double precision);
        DROP FUNCTION pgsearch._bm25_weight(
            double precision, integer, integer, integer, double precision, double precision,
            double precision, double precision);
        DROP FUNCTION pgsearch._bm25_idfs(text[]);
        DROP FUNCTION pgsearch._bm25_frequencies(text[]);
        DROP FUNCTION pgsearch._bm25_idf(double precision, double precision);
        DROP FUNCTION pgsearch._bm25_totals();
        DROP FUNCTION pgsearch.query_lexemes(regconfig, text);
        DROP FUNCTION pgsearch.tsv_length(tsvector);
        DELETE FROM pgsearch.deferred_indexes
            WHERE name IN ('ix_bm25_postings_lexeme', 'ix_bm25_vocabulary_trigrams');
        DROP TABLE pgsearch.bm25_vocabulary;
        DROP TABLE pgsearch.bm25_totals;
        DROP TABLE pgsearch.bm25_frequencies;
        DROP TABLE pgsearch.bm25_postings
        """
    )
    conn = op.get_bind()
    config = conn.execute(sa.text("SELECT text_config FROM pgsearch.store_config")).scalar()
    _replace_tsv(str(config), with_title=False)
    op.execute("ALTER TABLE pgsearch.chunks DROP COLUMN title")
    # pg_trgm in schema pgsearch is the one this revision created.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm'"
        " AND extnamespace = 'pgsearch'::regnamespace) THEN DROP EXTENSION pg_trgm; END IF;"
        " END $$"
    )
