"""SQL search uses whichever vector index the store has; pgsearch.vector_indexes shows them.

Revision ID: 0006_vector_index_search
Revises: 0005_bm25
Create Date: 2026-12-11

The store's vector index may be HNSW or IVFFlat, on ``embedding`` itself, on its ``halfvec``
cast or on its binary quantization (issue 14). A compressed index serves only a query that
orders by its own expression, so ``pgsearch.vector_search`` and ``pgsearch.hybrid_search`` now
write their vector leg for the index they find, as the Python search does
(:mod:`pgsearch.search.statements`):

* ``pgsearch._search_index()`` reads the catalog on each call: the valid, non-partial index on
  ``pgsearch.chunks.embedding`` (spelled as :func:`pgsearch.vector_index.index_expression`
  spells it) that serves the store's distance, the newest when several do;
* ``pgsearch._vector_leg`` orders by that index's expression: ``halfvec(D)`` casts of both
  sides, or the Hamming distance of the binary quantizations over ``20 * k`` candidates
  (``DEFAULT_BINARY_OVERSAMPLE``, at most 10,000) re-ranked by the exact distance;
* ``pgsearch._hnsw_knobs`` sets that method's knobs for the transaction: ``hnsw.ef_search``
  (raised to the candidates of a ``bit`` index) and ``hnsw.iterative_scan``, or
  ``ivfflat.probes`` (``round(sqrt(lists))``) and ``ivfflat.iterative_scan = relaxed_order``.

Scores are the exact distance whatever the index. ``vector_search`` and ``hybrid_search``
themselves are unchanged: they call these functions. The view ``pgsearch.vector_indexes``
lists the vector indexes of pgsearch's tables. The SQL is frozen here; the downgrade restores
the definitions of 0002 (frozen there).
"""

import importlib
from collections.abc import Sequence

from alembic import op

# The search functions of 0002 (frozen there): _vector_leg and _hnsw_knobs are redefined here,
# and restored from there on downgrade.
_SEARCH_FUNCTIONS = importlib.import_module("pgsearch.migrations.versions.0002_search_functions")

revision: str = "0006_vector_index_search"
down_revision: str | Sequence[str] | None = "0005_bm25"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VIEW = r"""
CREATE VIEW pgsearch.vector_indexes AS
SELECT ci.relname AS name,
       ct.relname AS table_name,
       am.amname AS method,
       split_part(opc.opcname, '_', 1) AS storage,
       CASE regexp_replace(opc.opcname, '^[a-z]+_(.*)_ops$', '\1')
           WHEN 'ip' THEN 'inner_product'
           ELSE regexp_replace(opc.opcname, '^[a-z]+_(.*)_ops$', '\1')
       END AS distance,
       opc.opcname AS opclass,
       -- pgvector's defaults, overridden by the index's own options
       CASE am.amname WHEN 'hnsw' THEN jsonb_build_object('m', 16, 'ef_construction', 64)
                      ELSE jsonb_build_object('lists', 100) END
       || coalesce((SELECT jsonb_object_agg(split_part(o.option, '=', 1),
                                            CAST(split_part(o.option, '=', 2) AS integer))
                    FROM unnest(ci.reloptions) AS o (option)
                    WHERE split_part(o.option, '=', 1) IN ('m', 'ef_construction', 'lists')),
                   '{}') AS parameters,
       pg_get_expr(i.indexprs, i.indrelid) AS expression,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       i.indisvalid AS valid,
       pg_relation_size(ci.oid) AS size_bytes,
       nullif(ia.atttypmod, -1) AS dimensions
FROM pg_index AS i
JOIN pg_class AS ci ON ci.oid = i.indexrelid
JOIN pg_class AS ct ON ct.oid = i.indrelid
JOIN pg_am AS am ON am.oid = ci.relam
JOIN pg_opclass AS opc ON opc.oid = i.indclass[0]
JOIN pg_attribute AS ia ON ia.attrelid = ci.oid AND ia.attnum = 1
WHERE ct.relnamespace = 'pgsearch'::regnamespace AND am.amname IN ('hnsw', 'ivfflat')
"""

_VIEW_COMMENT = (
    "The HNSW and IVFFlat indexes of pgsearch's tables: method, storage (vector, halfvec or bit),"
    " distance and operator class, build parameters (pgvector's defaults filled in), indexed"
    " expression, partial predicate, validity, size and dimensions. Searches use the newest"
    " valid, non-partial one on chunks.embedding that serves the store's distance."
)

_SEARCH_INDEX = r"""
CREATE FUNCTION pgsearch._search_index(
    OUT name text, OUT method text, OUT storage text, OUT dimensions integer, OUT lists integer
)
LANGUAGE sql STABLE
AS $$
    -- Python's pgsearch.index_catalog.search_index: NULLs when the store has none.
    SELECT ci.relname, am.amname, split_part(opc.opcname, '_', 1), s.embedding_dim,
           CASE WHEN am.amname = 'ivfflat' THEN coalesce((
               SELECT CAST(split_part(o.option, '=', 2) AS integer)
               FROM unnest(ci.reloptions) AS o (option)
               WHERE split_part(o.option, '=', 1) = 'lists'), 100) END
    FROM pgsearch.store_config AS s
    JOIN pg_index AS i ON i.indrelid = 'pgsearch.chunks'::regclass
    JOIN pg_class AS ci ON ci.oid = i.indexrelid
    JOIN pg_am AS am ON am.oid = ci.relam
    JOIN pg_opclass AS opc ON opc.oid = i.indclass[0]
    WHERE am.amname IN ('hnsw', 'ivfflat') AND i.indisvalid AND i.indpred IS NULL
      AND CASE opc.opcname
          WHEN 'bit_hamming_ops' THEN pg_get_expr(i.indexprs, i.indrelid)
               = format('(binary_quantize(embedding))::bit(%s)', s.embedding_dim)
          WHEN format('halfvec_%s_ops', CASE s.distance WHEN 'inner_product' THEN 'ip'
                                                          ELSE s.distance END)
               THEN pg_get_expr(i.indexprs, i.indrelid)
                    = format('(embedding)::halfvec(%s)', s.embedding_dim)
          WHEN format('vector_%s_ops', CASE s.distance WHEN 'inner_product' THEN 'ip'
                                                         ELSE s.distance END)
               THEN i.indexprs IS NULL AND i.indkey[0] = (
                   SELECT a.attnum FROM pg_attribute AS a
                   WHERE a.attrelid = i.indrelid AND a.attname = 'embedding')
          ELSE false
      END
    ORDER BY ci.oid DESC
    LIMIT 1
$$
"""

_KNOBS = r"""
CREATE OR REPLACE FUNCTION pgsearch._hnsw_knobs(depth integer, filtered boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    store_index record := pgsearch._search_index();
    candidates integer := depth;
BEGIN
    -- Python's SearchRequest.index_settings with its defaults, for the rest of the
    -- transaction (SET LOCAL), for the store's vector index.
    IF store_index.method = 'ivfflat' THEN
        -- pgvector's advice: sqrt(lists) probes; iterate when the probed lists run short.
        PERFORM set_config('ivfflat.probes',
                           CAST(greatest(1, round(sqrt(store_index.lists))) AS text), true);
        PERFORM set_config('ivfflat.iterative_scan', 'relaxed_order', true);
        RETURN;
    END IF;
    IF store_index.storage = 'bit' THEN
        -- A bit index's scan returns the candidates that are re-ranked (DEFAULT_BINARY_OVERSAMPLE).
        candidates := greatest(depth, least(depth * 20, 10000));
    END IF;
    PERFORM set_config('hnsw.ef_search',
                       CAST(least(greatest(40, candidates), 1000) AS text), true);
    PERFORM set_config('hnsw.iterative_scan',
                       CASE WHEN filtered OR candidates > 1000 THEN 'relaxed_order' ELSE 'off' END,
                       true);
END
$$
"""

_LEG = r"""
CREATE OR REPLACE FUNCTION pgsearch._vector_leg(operator text, clause text, path text)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    store_index record;
BEGIN
    IF operator NOT IN ('<=>', '<->', '<#>') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%L is not a pgvector distance operator', operator);
    END IF;
    -- Rows (id, distance) of the best $5 chunks by distance to $2 that pass the filter; the
    -- distance is always the exact one.
    IF path = 'exact' THEN
        -- OFFSET 0 fences the subquery: the ORDER BY cannot reach an index (recall 1.0).
        RETURN format('SELECT scored.id, scored.distance FROM (SELECT c.id,'
                      ' c.embedding %1$s $2 AS distance FROM pgsearch.chunks c WHERE %2$s'
                      ' OFFSET 0) AS scored ORDER BY scored.distance, scored.id LIMIT $5',
                      operator, clause);
    END IF;
    -- ORDER BY the index's expression LIMIT: the store's vector index serves it.
    store_index := pgsearch._search_index();
    IF store_index.storage = 'halfvec' THEN
        RETURN format('SELECT c.id, c.embedding %1$s $2 AS distance FROM pgsearch.chunks c'
                      ' WHERE %2$s ORDER BY CAST(c.embedding AS halfvec(%3$s))'
                      ' %1$s CAST($2 AS halfvec(%3$s)) LIMIT $5',
                      operator, clause, store_index.dimensions);
    END IF;
    IF store_index.storage = 'bit' THEN
        -- Hamming-distance candidates, re-ranked by the exact distance.
        RETURN format('SELECT candidate.id, candidate.embedding %1$s $2 AS distance FROM ('
                      'SELECT c.id, c.embedding FROM pgsearch.chunks c WHERE %2$s'
                      ' ORDER BY CAST(binary_quantize(c.embedding) AS bit(%3$s))'
                      ' <~> binary_quantize($2) LIMIT greatest($5, least($5 * 20, 10000)))'
                      ' AS candidate ORDER BY 2, 1 LIMIT $5',
                      operator, clause, store_index.dimensions);
    END IF;
    RETURN format('SELECT c.id, c.embedding %1$s $2 AS distance FROM pgsearch.chunks c'
                  ' WHERE %2$s ORDER BY c.embedding %1$s $2 LIMIT $5', operator, clause);
END
$$
"""

_COMMENTS = {
    "pgsearch._search_index()": (
        "pgsearch internal: the vector index searches use (name, method, storage, dimensions,"
        " IVFFlat lists): the newest valid, non-partial index on chunks.embedding, spelled as"
        " pgsearch spells vector, halfvec and bit storage, that serves the store's distance;"
        " NULLs when there is none."
    ),
    "pgsearch._hnsw_knobs(integer, boolean)": (
        "pgsearch internal: the knobs of the store's vector index for the rest of the"
        " transaction, as the Python search sets them: hnsw.ef_search (raised to a bit index's"
        " candidates) and hnsw.iterative_scan, or ivfflat.probes (round(sqrt(lists))) and"
        " ivfflat.iterative_scan (relaxed_order)."
    ),
    "pgsearch._vector_leg(text, text, text)": (
        "pgsearch internal: the SQL of a vector leg, (id, exact distance) of the $5 nearest"
        " chunks to $2 that pass the filter clause, on the exact path or the index path, which"
        " orders by the store's vector index's expression (halfvec casts; binary quantization"
        " over 20 candidates per row re-ranked by the exact distance)."
    ),
    "pgsearch.vector_search(vector, integer, jsonb)": (
        "The k (1 to 1000) chunks nearest to query_embedding that pass filter, best first;"
        " score is cosine similarity, the inner product or the negated L2 distance, by the"
        " store's distance, always computed exactly. A filter the planner expects to select at"
        " most 10,000 chunks is scored exactly; otherwise, and without a filter, the store's"
        " vector index serves the search (HNSW or IVFFlat, on vector, halfvec or bit storage;"
        " its knobs are set for the transaction), and if it finds fewer than k rows the exact"
        " path runs instead. The same rows as pgsearch's Python search in vector mode. RAISE"
        " DEBUG tells the path."
    ),
}


def upgrade() -> None:
    op.execute(_VIEW)
    op.execute(
        f"COMMENT ON VIEW pgsearch.vector_indexes IS {_SEARCH_FUNCTIONS._quote(_VIEW_COMMENT)}"
    )
    for statement in (_SEARCH_INDEX, _KNOBS, _LEG):
        op.execute(statement)
    for signature, comment in _COMMENTS.items():
        # Fixed strings of this file, not input.
        op.execute(f"COMMENT ON FUNCTION {signature} IS {_SEARCH_FUNCTIONS._quote(comment)}")


def downgrade() -> None:
    # The same signatures: 0002's definitions replace these.
    for statement in (_SEARCH_FUNCTIONS._KNOBS, _SEARCH_FUNCTIONS._LEG):
        op.execute(statement.replace("CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ", 1))
    for signature, comment in _SEARCH_FUNCTIONS._COMMENTS.items():
        if signature in _COMMENTS:
            op.execute(f"COMMENT ON FUNCTION {signature} IS {_SEARCH_FUNCTIONS._quote(comment)}")
    op.execute("DROP FUNCTION pgsearch._search_index()")
    op.execute("DROP VIEW pgsearch.vector_indexes")
