"""Search from SQL: pgsearch.vector_search, text_search, hybrid_search and filter_clause.

Revision ID: 0002_search_functions
Revises: 0001_create_store
Create Date: 2026-11-24

PL/pgSQL twins of the Python search (:mod:`pgsearch.search`): the same filter language,
statements, routing and never-short rule, so that a SQL user gets the rows
``SearchRepository.search`` returns. The SQL is frozen here: later revisions replace these
functions, they never edit this file.

The functions read the store's distance and text-search configuration from the
``pgsearch.store_config`` row on every call; the distance picks the pgvector operator from a
fixed table, so nothing a caller passes ever becomes SQL text. A filter compiles to a clause
over ``pgsearch.chunks c`` whose values are the elements of one ``jsonb[]`` parameter,
referenced as ``($1)[i]`` and passed with ``EXECUTE ... USING``; metadata key segments, checked
against ``[A-Za-z0-9_-]+``, are rendered with ``quote_literal`` so that expression indexes on
``(metadata -> 'key')`` match, as in Python.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_search_functions"
down_revision: str | Sequence[str] | None = "0001_create_store"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# -- the filter language --------------------------------------------------------------------------

_DESCRIBE = r"""
CREATE FUNCTION pgsearch._describe(value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    -- A value as JSON text for an error message, cut at 80 characters (Python's _describe).
    SELECT CASE WHEN length(t) <= 80 THEN t ELSE left(t, 77) || '...' END
    FROM (SELECT CAST(value AS text)) AS v (t)
$$
"""

_NEST = r"""
CREATE FUNCTION pgsearch._filter_nest(path text[], value jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
AS $$
DECLARE
    nested jsonb := value;
BEGIN
    -- {a, b}, v -> {"a": {"b": v}}: the containment that finds v at a.b
    FOR i IN REVERSE cardinality(path)..1 LOOP
        nested := jsonb_build_object(path[i], nested);
    END LOOP;
    RETURN nested;
END
$$
"""

_CONDITION = r"""
CREATE FUNCTION pgsearch._filter_condition(
    key text, operator text, value jsonb, INOUT args jsonb[], OUT clause text
)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    place text := format('filter %L %s', key, operator);
    kind text := jsonb_typeof(value);
    is_column boolean := key IN ('external_id', 'title');
    column_sql text;
    path text[];
    target text := 'c.metadata';
    target_text text;
    comparison text;
    condition text;
    item jsonb;
    matches text[] := '{}';
    refs text[] := '{}';
BEGIN
    IF operator NOT IN ('$eq', '$ne', '$in', '$nin', '$lt', '$lte', '$gt', '$gte', '$exists',
                        '$contains', '$like', '$ilike') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            'unknown filter operator %L on %L: use $contains $eq $exists $gt $gte $ilike $in '
            '$like $lt $lte $ne $nin', operator, key);
    END IF;

    -- The checks of Python's _condition, in its order.
    IF operator IN ('$eq', '$ne') THEN
        IF is_column AND NOT (kind = 'string' OR (kind = 'null' AND key = 'title')) THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('%s: %s is text, compare it with a string', place, key);
        END IF;
    ELSIF operator IN ('$in', '$nin') THEN
        IF kind <> 'array' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                '%s: needs a list of values, got %s', place, pgsearch._describe(value));
        END IF;
        IF is_column AND EXISTS (SELECT FROM jsonb_array_elements(value) AS e (v)
                                 WHERE jsonb_typeof(e.v) <> 'string') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('%s: %s is text, list strings', place, key);
        END IF;
        IF NOT is_column AND EXISTS (SELECT FROM jsonb_array_elements(value) AS e (v)
                                     WHERE jsonb_typeof(e.v) IN ('array', 'object')) THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('%s: list strings, numbers, booleans or null', place);
        END IF;
    ELSIF operator IN ('$lt', '$lte', '$gt', '$gte') THEN
        IF NOT (kind = 'string' OR (kind = 'number' AND NOT is_column)) THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                '%s: compares with %s, got %s', place,
                CASE WHEN is_column THEN 'a string' ELSE 'a number or a string' END,
                pgsearch._describe(value));
        END IF;
    ELSIF operator = '$exists' THEN
        IF kind <> 'boolean' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                '%s: needs true or false, got %s', place, pgsearch._describe(value));
        END IF;
    ELSIF operator = '$contains' THEN
        IF is_column AND kind <> 'string' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('%s: %s is text, look for a string', place, key);
        END IF;
        IF kind = 'null' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('%s: needs a value to look for, got null', place);
        END IF;
    ELSIF kind <> 'string' THEN  -- $like, $ilike
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            '%s: needs a LIKE pattern string, got %s', place, pgsearch._describe(value));
    END IF;

    comparison := CASE operator WHEN '$lt' THEN '<' WHEN '$lte' THEN '<='
                                WHEN '$gt' THEN '>' WHEN '$gte' THEN '>=' END;

    IF is_column THEN
        -- A document column: chunks whose document matches, so every leg stays on chunks.
        column_sql := CASE key WHEN 'title' THEN 'd.title' ELSE 'd.external_id' END;
        IF operator IN ('$eq', '$ne') AND kind = 'null' THEN
            condition := column_sql || ' IS NULL';
        ELSIF operator IN ('$in', '$nin') THEN
            IF jsonb_array_length(value) = 0 THEN
                clause := CASE operator WHEN '$in' THEN 'false' ELSE 'true' END;
                RETURN;
            END IF;
            FOR item IN SELECT e.v FROM jsonb_array_elements(value) AS e (v) LOOP
                args := array_append(args, item);
                refs := refs || format('(($1)[%s] #>> ''{}'')', cardinality(args));
            END LOOP;
            condition := format('%s IN (%s)', column_sql, array_to_string(refs, ', '));
        ELSIF operator = '$exists' THEN
            condition := column_sql || CASE WHEN value = 'true' THEN ' IS NOT NULL'
                                            ELSE ' IS NULL' END;
        ELSE
            args := array_append(args, value);
            condition := format(
                CASE
                    WHEN operator IN ('$eq', '$ne') THEN '%1$s = (($1)[%2$s] #>> ''{}'')'
                    WHEN comparison IS NOT NULL THEN '%1$s %3$s (($1)[%2$s] #>> ''{}'')'
                    WHEN operator = '$contains' THEN 'strpos(%1$s, ($1)[%2$s] #>> ''{}'') > 0'
                    WHEN operator = '$like' THEN '%1$s LIKE (($1)[%2$s] #>> ''{}'')'
                    ELSE '%1$s ILIKE (($1)[%2$s] #>> ''{}'')'
                END,
                column_sql, cardinality(args), comparison);
        END IF;
        clause := format('c.document_id IN (SELECT d.id FROM pgsearch.documents d WHERE %s)',
                         condition);
        IF operator IN ('$ne', '$nin') THEN
            clause := format('NOT (%s)', clause);
        END IF;
        RETURN;
    END IF;

    -- A metadata key: segments checked by the caller, rendered as literals.
    path := string_to_array(key, '.');
    FOR i IN 1..cardinality(path) LOOP
        target_text := format('(%s ->> %s)', target, quote_literal(path[i]));
        target := format('(%s -> %s)', target, quote_literal(path[i]));
    END LOOP;

    IF operator IN ('$eq', '$ne', '$in', '$nin') THEN
        FOR item IN
            SELECT e.v FROM jsonb_array_elements(
                CASE WHEN operator IN ('$in', '$nin') THEN value ELSE jsonb_build_array(value) END
            ) AS e (v)
        LOOP
            IF jsonb_typeof(item) IN ('array', 'object') THEN
                -- Exact equality: containment would match a part of an array or object.
                args := array_append(args, item);
                matches := matches || format('%s = ($1)[%s]', target, cardinality(args));
            ELSE
                -- Containment, which the GIN index on metadata serves.
                args := array_append(args, pgsearch._filter_nest(path, item));
                matches := matches || format('c.metadata @> ($1)[%s]', cardinality(args));
            END IF;
        END LOOP;
        condition := CASE cardinality(matches)
            WHEN 0 THEN 'false'
            WHEN 1 THEN matches[1]
            ELSE '(' || array_to_string(matches, ' OR ') || ')'
        END;
        IF operator IN ('$eq', '$in') THEN
            clause := condition;
        ELSIF kind IN ('array', 'object') THEN
            -- $ne of an array or object: the equality is NULL where the key is missing, and
            -- $ne matches rows without the key (the filter language's rule).
            clause := format('(%s) IS NOT TRUE', condition);
        ELSE
            clause := format('NOT (%s)', condition);
        END IF;
    ELSIF operator = '$contains' THEN
        args := array_append(args, pgsearch._filter_nest(
            path, CASE WHEN kind IN ('array', 'object') THEN value
                       ELSE jsonb_build_array(value) END));
        clause := format('c.metadata @> ($1)[%s]', cardinality(args));
    ELSIF comparison IS NOT NULL THEN
        -- Numbers with numbers, strings with strings; another JSON type does not match.
        args := array_append(args, value);
        clause := format('(jsonb_typeof(%1$s) = %2$L AND %1$s %3$s ($1)[%4$s])',
                         target, kind, comparison, cardinality(args));
    ELSIF operator = '$exists' THEN
        clause := target || CASE WHEN value = 'true' THEN ' IS NOT NULL' ELSE ' IS NULL' END;
    ELSE
        args := array_append(args, value);
        clause := format('(jsonb_typeof(%s) = ''string'' AND %s %s (($1)[%s] #>> ''{}''))',
                         target, target_text,
                         CASE operator WHEN '$like' THEN 'LIKE' ELSE 'ILIKE' END,
                         cardinality(args));
    END IF;
END
$$
"""

_NODE = r"""
CREATE FUNCTION pgsearch._filter_node(
    node jsonb, place text, INOUT args jsonb[], INOUT size integer, OUT clause text
)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    entry record;
    operation record;
    item jsonb;
    part text;
    parts text[] := '{}';
    members text[];
BEGIN
    IF jsonb_typeof(node) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            '%s must be a JSON object, got %s', place, coalesce(pgsearch._describe(node), 'NULL'));
    END IF;
    FOR entry IN SELECT e.key, e.value FROM jsonb_each(node) AS e LOOP
        size := size + 1;
        IF size > 1000 THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = 'the filter has more than 1000 conditions';
        END IF;
        IF entry.key IN ('$and', '$or') THEN
            IF jsonb_typeof(entry.value) <> 'array' OR jsonb_array_length(entry.value) = 0 THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                    MESSAGE = format('%s needs a non-empty list of filters', entry.key);
            END IF;
            members := '{}';
            FOR item IN SELECT e.v FROM jsonb_array_elements(entry.value) AS e (v) LOOP
                SELECT r.args, r.size, r.clause INTO args, size, part
                FROM pgsearch._filter_node(item, entry.key || ' item', args, size) AS r;
                members := members || part;
            END LOOP;
            parts := parts || ('(' || array_to_string(
                members, CASE entry.key WHEN '$and' THEN ' AND ' ELSE ' OR ' END) || ')');
        ELSIF entry.key = '$not' THEN
            SELECT r.args, r.size, r.clause INTO args, size, part
            FROM pgsearch._filter_node(entry.value, '$not', args, size) AS r;
            -- A comparison on a missing key is NULL: coalesce keeps NOT two-valued.
            parts := parts || format('NOT coalesce(%s, false)', part);
        ELSIF left(entry.key, 1) = '$' THEN
            RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                'unknown filter operator %L at the top of a filter: use $and, $or, $not, '
                'or a field name', entry.key);
        ELSE
            IF entry.key NOT IN ('external_id', 'title')
               AND entry.key !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$' THEN
                RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                    'filter key %s is not a field: use a metadata key made of letters, digits, '
                    '''_'' or ''-'' (dots for nested keys, e.g. author.name), or external_id / '
                    'title', pgsearch._describe(to_jsonb(entry.key)));
            END IF;
            IF jsonb_typeof(entry.value) = 'object'
               AND EXISTS (SELECT FROM jsonb_object_keys(entry.value) AS o (name)
                           WHERE left(o.name, 1) = '$') THEN
                IF EXISTS (SELECT FROM jsonb_object_keys(entry.value) AS o (name)
                           WHERE left(o.name, 1) <> '$') THEN
                    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
                        'filter %L mixes operators and plain keys: write {"%s": {"$eq": {...}}} '
                        'to match an object', entry.key, entry.key);
                END IF;
                FOR operation IN SELECT e.key, e.value FROM jsonb_each(entry.value) AS e LOOP
                    SELECT r.args, r.clause INTO args, part
                    FROM pgsearch._filter_condition(
                        entry.key, operation.key, operation.value, args) AS r;
                    parts := parts || part;
                END LOOP;
            ELSE
                SELECT r.args, r.clause INTO args, part
                FROM pgsearch._filter_condition(entry.key, '$eq', entry.value, args) AS r;
                parts := parts || part;
            END IF;
        END IF;
    END LOOP;
    -- An empty object has no condition: true, as an empty filter is.
    clause := CASE cardinality(parts)
        WHEN 0 THEN 'true'
        WHEN 1 THEN parts[1]
        ELSE '(' || array_to_string(parts, ' AND ') || ')'
    END;
END
$$
"""

_FILTER_CLAUSE = r"""
CREATE FUNCTION pgsearch.filter_clause(filter jsonb, OUT clause text, OUT args jsonb[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF $1 IS NULL OR $1 = '{}' THEN
        clause := 'true';
        args := '{}';
        RETURN;
    END IF;
    SELECT r.clause, r.args INTO clause, args
    FROM pgsearch._filter_node($1, 'the filter', '{}', 0) AS r;
END
$$
"""

# -- search ---------------------------------------------------------------------------------------

_STORE = r"""
CREATE FUNCTION pgsearch._search_store(
    query_embedding vector,
    OUT operator text, OUT cosine boolean, OUT text_config regconfig
)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    store record;
BEGIN
    SELECT s.embedding_model, s.embedding_dim, s.distance, s.text_config INTO store
    FROM pgsearch.store_config AS s;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = 'pgsearch.store_config is empty: run `pgsearch migrate` on this database';
    END IF;
    IF $1 IS NOT NULL AND vector_dims($1) <> store.embedding_dim THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            'the query embedding has %s dimensions, the store holds %s: embed the query with '
            'the store''s model (%s)', vector_dims($1), store.embedding_dim, store.embedding_model);
    END IF;
    -- The operator comes from this fixed table, never from a caller.
    operator := CASE store.distance WHEN 'cosine' THEN '<=>' WHEN 'l2' THEN '<->'
                                    WHEN 'inner_product' THEN '<#>' END;
    cosine := store.distance = 'cosine';
    text_config := CAST(store.text_config AS regconfig);
END
$$
"""

_CHECK_RANGE = r"""
CREATE FUNCTION pgsearch._check_range(name text, value integer, low integer, high integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF value IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s must be an integer from %s to %s, got NULL', name, low, high);
    END IF;
    IF value < low OR value > high THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s=%s is out of range: use %s to %s', name, value, low, high);
    END IF;
END
$$
"""

_CHECK_QUERY = r"""
CREATE FUNCTION pgsearch._check_query(query text, mode text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    words bigint;
BEGIN
    IF query IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s search needs a query text, got NULL', mode);
    END IF;
    IF query !~ '\S' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'the query is empty: give some words to search for';
    END IF;
    -- Bounds that keep one query from holding a connection (MAX_QUERY_CHARS, MAX_QUERY_WORDS).
    IF length(query) > 10000 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            'the query has %s characters, more than 10,000: search with a shorter text (or its '
            'embedding, with pgsearch.vector_search)', to_char(length(query), 'FM999,999,999'));
    END IF;
    SELECT count(*) INTO words FROM regexp_matches(query, '\S+', 'g');
    IF words > 256 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format(
            'the query has %s words, more than 256: search with a shorter text (or its '
            'embedding, with pgsearch.vector_search)', to_char(words, 'FM999,999,999'));
    END IF;
END
$$
"""

_CHECK_EMBEDDING = r"""
CREATE FUNCTION pgsearch._check_embedding(query_embedding vector)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'the query embedding is NULL: give the embedding of the query text';
    END IF;
END
$$
"""

_ROUTE = r"""
CREATE FUNCTION pgsearch._vector_route(
    clause text, args jsonb[], filtered boolean, OUT path text, OUT estimate bigint
)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    plan json;
BEGIN
    IF NOT filtered THEN
        path := 'hnsw';
        RETURN;
    END IF;
    -- The planner's estimate of the chunks the filter selects; no row is read.
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM pgsearch.chunks c WHERE ' || clause
        INTO plan USING args;
    estimate := trunc(CAST(plan -> 0 -> 'Plan' ->> 'Plan Rows' AS numeric));
    -- DEFAULT_EXACT_THRESHOLD: scoring that many chunks exactly costs about 10 ms.
    path := CASE WHEN estimate <= 10000 THEN 'exact' ELSE 'hnsw' END;
END
$$
"""

_KNOBS = r"""
CREATE FUNCTION pgsearch._hnsw_knobs(depth integer, filtered boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    -- Python's SearchRequest.hnsw_settings with the default ef_search (40) and
    -- iterative_scan (relaxed_order), for the rest of the transaction (SET LOCAL).
    PERFORM set_config('hnsw.ef_search', CAST(least(greatest(40, depth), 1000) AS text), true);
    PERFORM set_config('hnsw.iterative_scan',
                       CASE WHEN filtered OR depth > 1000 THEN 'relaxed_order' ELSE 'off' END,
                       true);
END
$$
"""

_LEG = r"""
CREATE FUNCTION pgsearch._vector_leg(operator text, clause text, path text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    IF operator NOT IN ('<=>', '<->', '<#>') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%L is not a pgvector distance operator', operator);
    END IF;
    -- Rows (id, distance) of the best $5 chunks by distance to $2 that pass the filter.
    IF path = 'hnsw' THEN
        -- ORDER BY distance LIMIT: the HNSW index serves it.
        RETURN format('SELECT c.id, c.embedding %1$s $2 AS distance FROM pgsearch.chunks c'
                      ' WHERE %2$s ORDER BY c.embedding %1$s $2 LIMIT $5', operator, clause);
    END IF;
    -- OFFSET 0 fences the subquery: the ORDER BY cannot reach the HNSW index (recall 1.0).
    RETURN format('SELECT scored.id, scored.distance FROM (SELECT c.id,'
                  ' c.embedding %1$s $2 AS distance FROM pgsearch.chunks c WHERE %2$s OFFSET 0)'
                  ' AS scored ORDER BY scored.distance, scored.id LIMIT $5', operator, clause);
END
$$
"""

_RESULT_COLUMNS = """
    chunk_id bigint,
    external_id text,
    title text,
    "position" integer,
    content text,
    metadata jsonb,
    score double precision"""

_VECTOR_SEARCH = (
    r"""
CREATE FUNCTION pgsearch.vector_search(
    query_embedding vector, k integer DEFAULT 10, filter jsonb DEFAULT '{}'
)
RETURNS TABLE ("""
    + _RESULT_COLUMNS
    + r"""
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
#variable_conflict use_column
DECLARE
    store record;
    compiled record;
    route record;
    filtered boolean := $3 IS NOT NULL AND $3 <> '{}';
    path text;
    ids bigint[];
    distances double precision[];
BEGIN
    PERFORM pgsearch._check_embedding($1);
    PERFORM pgsearch._check_range('k', $2, 1, 1000);
    compiled := pgsearch.filter_clause($3);
    store := pgsearch._search_store($1);
    route := pgsearch._vector_route(compiled.clause, compiled.args, filtered);
    path := route.path;
    RAISE DEBUG 'pgsearch.vector_search: % path (%)', path,
        CASE WHEN route.estimate IS NULL THEN 'no filter'
             ELSE format('the planner expects %s chunks to pass the filter', route.estimate) END;
    LOOP
        IF path = 'hnsw' THEN
            PERFORM pgsearch._hnsw_knobs($2, filtered);
        END IF;
        EXECUTE format(
            'SELECT array_agg(nearest.id ORDER BY nearest.distance, nearest.id),'
            ' array_agg(nearest.distance ORDER BY nearest.distance, nearest.id)'
            ' FROM (%s) AS nearest',
            pgsearch._vector_leg(store.operator, compiled.clause, path))
            INTO ids, distances
            USING compiled.args, $1, NULL::text, NULL::regconfig, $2;
        EXIT WHEN path = 'exact' OR coalesce(cardinality(ids), 0) >= $2;
        -- Never short: an HNSW scan can stop before it has seen every matching chunk.
        RAISE DEBUG 'pgsearch.vector_search: hnsw path found % of % rows, exact path',
            coalesce(cardinality(ids), 0), $2;
        path := 'exact';
    END LOOP;
    RETURN QUERY
    SELECT c.id, d.external_id, d.title, c.position, c.content, c.metadata,
           CASE WHEN store.cosine THEN 1 - v.distance ELSE -v.distance END
    FROM unnest(ids, distances) WITH ORDINALITY AS v (id, distance, n)
    JOIN pgsearch.chunks AS c ON c.id = v.id
    JOIN pgsearch.documents AS d ON d.id = c.document_id
    ORDER BY v.n;
END
$$
"""
)

_TEXT_SEARCH = (
    r"""
CREATE FUNCTION pgsearch.text_search(query text, k integer DEFAULT 10, filter jsonb DEFAULT '{}')
RETURNS TABLE ("""
    + _RESULT_COLUMNS
    + r"""
)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
#variable_conflict use_column
DECLARE
    store record;
    compiled record;
BEGIN
    PERFORM pgsearch._check_query($1, 'text');
    PERFORM pgsearch._check_range('k', $2, 1, 1000);
    compiled := pgsearch.filter_clause($3);
    store := pgsearch._search_store(NULL);
    -- The match condition spells the tsquery out, so that the planner folds it and estimates
    -- how many rows match (and picks the GIN index); the rank reads it once, from a subquery.
    RETURN QUERY EXECUTE format(
        'SELECT c.id, d.external_id, d.title, c.position, c.content, c.metadata,'
        ' CAST(matched.rank AS double precision)'
        ' FROM (SELECT c.id, ts_rank_cd(c.tsv, (SELECT websearch_to_tsquery($4, $3))) AS rank'
        '       FROM pgsearch.chunks c'
        '       WHERE c.tsv @@ websearch_to_tsquery($4, $3) AND %s'
        '       ORDER BY rank DESC, c.id LIMIT $5) AS matched'
        ' JOIN pgsearch.chunks c ON c.id = matched.id'
        ' JOIN pgsearch.documents d ON d.id = c.document_id'
        ' ORDER BY matched.rank DESC, c.id', compiled.clause)
        USING compiled.args, NULL::vector, $1, store.text_config, $2;
END
$$
"""
)

_HYBRID_SEARCH = (
    r"""
CREATE FUNCTION pgsearch.hybrid_search(
    query text,
    query_embedding vector,
    k integer DEFAULT 10,
    filter jsonb DEFAULT '{}',
    rrf_k integer DEFAULT 60
)
RETURNS TABLE ("""
    + _RESULT_COLUMNS
    + r""",
    vector_rank bigint,
    text_rank bigint
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
BEGIN
    PERFORM pgsearch._check_query($1, 'hybrid');
    PERFORM pgsearch._check_embedding($2);
    PERFORM pgsearch._check_range('k', $3, 1, 1000);
    PERFORM pgsearch._check_range('rrf_k', $5, 1, 1000000);
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
        -- Reciprocal rank fusion: 1 / (rrf_k + rank) per leg a chunk appears in, ranks by
        -- (distance, id) and (keyword rank desc, id); best score first, then chunk id.
        EXECUTE format(
            'WITH vector_leg AS ('
            '    SELECT nearest.id,'
            '           row_number() OVER (ORDER BY nearest.distance, nearest.id) AS rank'
            '    FROM (%1$s) AS nearest'
            '), text_leg AS ('
            '    SELECT matched.id,'
            '           row_number() OVER (ORDER BY matched.rank DESC, matched.id) AS rank'
            '    FROM (SELECT c.id,'
            '                 ts_rank(c.tsv, (SELECT pgsearch.keyword_query($4, $3)), 1) AS rank'
            '          FROM pgsearch.chunks c'
            '          WHERE c.tsv @@ pgsearch.keyword_query($4, $3) AND %2$s'
            '          ORDER BY rank DESC, c.id LIMIT $5) AS matched'
            '), fused AS ('
            '    SELECT coalesce(v.id, t.id) AS id,'
            '           coalesce(CAST(1.0 AS double precision) / ($7 + v.rank), 0)'
            '           + coalesce(CAST(1.0 AS double precision) / ($7 + t.rank), 0) AS score,'
            '           v.rank AS vector_rank, t.rank AS text_rank'
            '    FROM vector_leg v FULL JOIN text_leg t ON t.id = v.id'
            '    ORDER BY score DESC, coalesce(v.id, t.id)'
            '    LIMIT $6'
            ')'
            ' SELECT array_agg(f.id ORDER BY f.score DESC, f.id),'
            '        array_agg(f.score ORDER BY f.score DESC, f.id),'
            '        array_agg(f.vector_rank ORDER BY f.score DESC, f.id),'
            '        array_agg(f.text_rank ORDER BY f.score DESC, f.id)'
            ' FROM fused f',
            pgsearch._vector_leg(store.operator, compiled.clause, path), compiled.clause)
            INTO ids, scores, vector_ranks, text_ranks
            USING compiled.args, $2, $1, store.text_config, depth, $3, $5;
        EXIT WHEN path = 'exact' OR coalesce(cardinality(ids), 0) >= $3;
        -- Never short: an HNSW scan can stop before it has seen every matching chunk.
        RAISE DEBUG 'pgsearch.hybrid_search: hnsw path found % of % rows, exact path',
            coalesce(cardinality(ids), 0), $3;
        path := 'exact';
    END LOOP;
    RETURN QUERY
    SELECT c.id, d.external_id, d.title, c.position, c.content, c.metadata,
           f.score, f.vector_rank, f.text_rank
    FROM unnest(ids, scores, vector_ranks, text_ranks)
         WITH ORDINALITY AS f (id, score, vector_rank, text_rank, n)
    JOIN pgsearch.chunks AS c ON c.id = f.id
    JOIN pgsearch.documents AS d ON d.id = c.document_id
    ORDER BY f.n;
END
$$
"""
)

_COMMENTS = {
    "pgsearch._describe(jsonb)": "pgsearch internal: a JSON value for an error message.",
    "pgsearch._filter_nest(text[], jsonb)": (
        'pgsearch internal: {a,b}, v -> {"a": {"b": v}}, the containment that finds v at a.b.'
    ),
    "pgsearch._filter_condition(text, text, jsonb, jsonb[])": (
        "pgsearch internal: checks one filter condition and compiles it to SQL over"
        " pgsearch.chunks c, appending its values to args."
    ),
    "pgsearch._filter_node(jsonb, text, jsonb[], integer)": (
        "pgsearch internal: checks one filter object and compiles it to SQL (recursive)."
    ),
    "pgsearch.filter_clause(jsonb)": (
        "Checks a pgsearch filter (the filter language of pgsearch.search.filters) and compiles"
        " it into a boolean SQL clause over pgsearch.chunks aliased c. The clause refers to its"
        " values as ($1)[i], elements of args: run it with EXECUTE ... USING args. Keys are"
        " checked and rendered as literals; values never enter the clause. Raises SQLSTATE 22023"
        " naming the wrong part of a malformed filter. NULL or {} compiles to true."
    ),
    "pgsearch._search_store(vector)": (
        "pgsearch internal: the store's distance operator, whether it is cosine, and its text"
        " search configuration; checks the query embedding's dimension."
    ),
    "pgsearch._check_range(text, integer, integer, integer)": (
        "pgsearch internal: raises 22023 unless low <= value <= high."
    ),
    "pgsearch._check_query(text, text)": (
        "pgsearch internal: raises 22023 for a NULL, blank or oversized query text."
    ),
    "pgsearch._check_embedding(vector)": (
        "pgsearch internal: raises 22023 for a NULL query embedding."
    ),
    "pgsearch._vector_route(text, jsonb[], boolean)": (
        "pgsearch internal: exact (the planner expects at most 10,000 chunks to pass the"
        " filter) or hnsw, and the planner's estimate."
    ),
    "pgsearch._hnsw_knobs(integer, boolean)": (
        "pgsearch internal: hnsw.ef_search and hnsw.iterative_scan for the rest of the"
        " transaction, as the Python search sets them."
    ),
    "pgsearch._vector_leg(text, text, text)": (
        "pgsearch internal: the SQL of a vector leg, (id, distance) of the $5 nearest chunks to"
        " $2 that pass the filter clause, on the hnsw or the exact path."
    ),
    "pgsearch.vector_search(vector, integer, jsonb)": (
        "The k (1 to 1000) chunks nearest to query_embedding that pass filter, best first;"
        " score is cosine similarity, the inner product or the negated L2 distance, by the"
        " store's distance. A filter the planner expects to select at most 10,000 chunks is"
        " scored exactly; otherwise, and without a filter, the HNSW index serves the search"
        " (hnsw.ef_search and hnsw.iterative_scan are set for the transaction), and if it finds"
        " fewer than k rows the exact path runs instead. The same rows as pgsearch's Python"
        " search in vector mode. RAISE DEBUG tells the path."
    ),
    "pgsearch.text_search(text, integer, jsonb)": (
        "The k (1 to 1000) chunks matching websearch_to_tsquery(store text configuration,"
        " query) that pass filter, by ts_rank_cd, best first. The same rows as pgsearch's"
        " Python search in text mode."
    ),
    "pgsearch.hybrid_search(text, vector, integer, jsonb, integer)": (
        "Reciprocal rank fusion of a vector leg (query_embedding, routed like vector_search)"
        " and a keyword leg (pgsearch.keyword_query, ranked by ts_rank(tsv, q, 1)), each"
        " ranking max(4k, 40) chunks (at most 1000) that pass filter: score = sum of"
        " 1 / (rrf_k + rank) over the legs a chunk appears in; vector_rank and text_rank are"
        " NULL where it is absent. The same rows as pgsearch's Python search in hybrid mode."
    ),
}

_FUNCTIONS = [
    _DESCRIBE,
    _NEST,
    _CONDITION,
    _NODE,
    _FILTER_CLAUSE,
    _STORE,
    _CHECK_RANGE,
    _CHECK_QUERY,
    _CHECK_EMBEDDING,
    _ROUTE,
    _KNOBS,
    _LEG,
    _VECTOR_SEARCH,
    _TEXT_SEARCH,
    _HYBRID_SEARCH,
]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    for statement in _FUNCTIONS:
        op.execute(statement)
    for signature, comment in _COMMENTS.items():
        # Fixed strings of this file, not input.
        op.execute(f"COMMENT ON FUNCTION {signature} IS {_quote(comment)}")


def downgrade() -> None:
    # No CASCADE: objects that users built on these functions make the downgrade fail loudly.
    for signature in reversed(list(_COMMENTS)):
        op.execute(f"DROP FUNCTION {signature}")
