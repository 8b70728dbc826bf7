"""Search statements, built with SQLAlchemy Core over the ORM tables.

Every statement first ranks chunk ids in an inner query, so that the planner can serve it from
the HNSW or GIN index, then joins the rows it returns. A filter is a clause added to each leg
(:mod:`pgsearch.search.filters`); values are bound parameters.

Vector legs come in two SQL texts, because a prepared plan outlives ``SET LOCAL`` and settings
cannot force one plan or the other:

* ``hnsw``, the index path (whichever vector index the store has, :class:`IndexShape`):
  ``ORDER BY embedding <=> :query LIMIT :limit``, which an HNSW or IVFFlat index on
  ``embedding`` serves. Its knobs (``hnsw.ef_search``, ``ivfflat.probes``, ...) are set by
  ``set_config(..., true)`` in a one-row ``knobs`` subquery that the leg joins laterally, so
  they reach the index scan in the same round trip and end with the transaction. A compressed
  index is used only by a query that orders by its expression
  (:func:`pgsearch.vector_index.index_expression`): a ``halfvec`` index by
  ``embedding::halfvec(D) <=> :query::halfvec(D)``; a ``bit`` index by the Hamming distance
  ``binary_quantize(embedding)::bit(D) <~> binary_quantize(:query)``, over-fetching
  ``binary_candidates`` rows that are re-ranked by the exact distance. Every leg returns the
  exact, full-precision distance, whatever it ordered its scan by.
* ``exact``: the distance of every chunk the filter selects, behind ``OFFSET 0`` (the subquery
  is not flattened, so the ``ORDER BY`` cannot reach the HNSW index), sorted: recall 1.0, at a
  cost proportional to the chunks the filter selects, which a B-tree or GIN index narrows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ClauseElement,
    ColumnElement,
    Executable,
    Float,
    FromClause,
    Integer,
    Select,
    Subquery,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import BIT, REGCONFIG
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from pgsearch.models import Chunk, Document
from pgsearch.search.filters import FilterNode as FilterNode
from pgsearch.search.options import (
    DEFAULT_ALPHA,
    DEFAULT_B,
    DEFAULT_K1,
    DEFAULT_TITLE_WEIGHT,
    Fusion,
)
from pgsearch.types import Distance
from pgsearch.vector_index import IndexMethod, Storage
from pgsearch.vectors import VectorParam

__all__ = [
    "VECTOR_INDEX",
    "Explain",
    "IndexShape",
    "VectorPath",
    "count_estimate_statement",
    "hybrid_statement",
    "keyword_leg",
    "knob_params",
    "text_statement",
    "vector_statement",
]

VectorPath = Literal["hnsw", "exact"]
Filter = ColumnElement[bool] | None
"""A compiled filter (:func:`pgsearch.search.filters.compile_filter`), or ``None``."""
TextMatch = Literal["any", "half", "all"]
"""Which chunks the keyword leg ranks: those with ``any`` of the query's words (stop words
removed), with at least ``half`` of them, or ``all`` (``websearch_to_tsquery``: quotes, ``or``
and ``-word`` mean what they say)."""

chunks = Chunk.__table__
documents = Document.__table__

QUERY_VECTOR = bindparam("query_embedding", type_=VectorParam())
_QUERY_TEXT: BindParameter[str] = bindparam("query_text")
_TEXT_CONFIG = cast(bindparam("text_config"), REGCONFIG)
# Row counts are rendered into the statement: a generic plan that does not know its LIMIT
# assumes a tenth of the table and joins it by hash instead of by index (1.8 vs 1.3 ms).
_LIMIT: BindParameter[int] = bindparam("limit", type_=Integer, literal_execute=True)
_K: BindParameter[int] = bindparam("k", type_=Integer, literal_execute=True)
_RRF_K: BindParameter[int] = bindparam("rrf_k")
_ALPHA: BindParameter[float] = bindparam("alpha", DEFAULT_ALPHA, type_=Float)
_K1: BindParameter[float] = bindparam("k1", DEFAULT_K1, type_=Float)
_B: BindParameter[float] = bindparam("b", DEFAULT_B, type_=Float)
_TITLE_WEIGHT: BindParameter[float] = bindparam("title_weight", DEFAULT_TITLE_WEIGHT, type_=Float)
_MAX_POSTINGS: BindParameter[int | None] = bindparam("max_postings", None, type_=BigInteger)
# Rows a bit index's Hamming scan hands to the exact re-ranking (see IndexShape).
_BINARY_CANDIDATES: BindParameter[int] = bindparam(
    "binary_candidates", type_=Integer, literal_execute=True
)


@dataclass(frozen=True)
class IndexShape:
    """The vector index the index path is written for: what its ``ORDER BY`` must spell.

    Attributes:
        method: ``hnsw`` or ``ivfflat`` (the SQL is the same; the knobs differ).
        storage: ``vector`` (``embedding`` itself), ``halfvec`` or ``bit`` (an expression).
        dimensions: The store's dimension, which the expressions of ``halfvec`` and ``bit``
            spell out (``embedding::halfvec(384)``).
    """

    method: IndexMethod = "hnsw"
    storage: Storage = "vector"
    dimensions: int = 0


# The store's first index (HNSW on embedding), and what a store without a vector index gets.
VECTOR_INDEX = IndexShape()


def _clause(where: Filter) -> ColumnElement[bool]:
    return true() if where is None else where


def _distance(
    distance: Distance, embedding: ColumnElement[Any] | None = None
) -> ColumnElement[float]:
    """The exact distance from ``embedding`` (default: the chunk's) to the query."""
    if embedding is None:
        embedding = chunks.c.embedding
    if distance is Distance.COSINE:
        return embedding.cosine_distance(QUERY_VECTOR)  # type: ignore[no-any-return]
    if distance is Distance.L2:
        return embedding.l2_distance(QUERY_VECTOR)  # type: ignore[no-any-return]
    return embedding.max_inner_product(QUERY_VECTOR)  # type: ignore[no-any-return]


def _score(distance: Distance, value: ColumnElement[Any]) -> ColumnElement[float]:
    """Higher is better: cosine similarity, the inner product, the negated L2 distance."""
    return 1 - value if distance is Distance.COSINE else -value


def knob_params(settings: Mapping[str, str]) -> dict[str, str]:
    """The bound parameters of a statement built for ``len(settings)`` knobs."""
    params = {}
    for index, (name, value) in enumerate(settings.items()):
        params[f"knob_name_{index}"] = name
        params[f"knob_value_{index}"] = value
    return params


def _knobs(count: int) -> Subquery:
    """One row that applies ``count`` settings for the transaction (``SET LOCAL`` semantics).

    Names and values are bound (see :func:`knob_params`), so one statement serves any values.
    """
    applied = func.concat(
        *(
            func.set_config(bindparam(f"knob_name_{i}"), bindparam(f"knob_value_{i}"), true())
            for i in range(count)
        )
    )
    return select(applied.label("applied")).subquery("knobs")


def _index_order(distance: Distance, index: IndexShape) -> ColumnElement[float]:
    """What the index path orders by: the index's own expression and operator."""
    if index.storage == "halfvec":
        half = HALFVEC(index.dimensions)
        embedding = cast(chunks.c.embedding, half)
        return embedding.op(distance.operator, return_type=Float)(cast(QUERY_VECTOR, half))
    if index.storage == "bit":
        bits = cast(func.binary_quantize(chunks.c.embedding), BIT(index.dimensions))
        return bits.op("<~>", return_type=Float)(func.binary_quantize(QUERY_VECTOR))
    return _distance(distance)


_ROW_COLUMNS = ("document_id", "position", "content", "metadata")


def _hnsw_leg(
    distance: Distance,
    where: ColumnElement[bool],
    knobs: Subquery,
    *,
    rows: bool = False,
    index: IndexShape = VECTOR_INDEX,
) -> FromClause:
    """The index scan; with ``rows``, it also returns the chunks' columns (no join back).

    ``(id, distance)`` with the exact distance, ordered by the index's expression.
    """
    if index.storage == "bit":
        return _binary_leg(distance, where, knobs, rows=rows, index=index)
    d = _distance(distance)
    columns = [chunks.c[name] for name in _ROW_COLUMNS] if rows else []
    return (
        select(chunks.c.id, d.label("distance"), *columns)
        .where(where, knobs.c.applied.is_not(None))
        .order_by(_index_order(distance, index))
        .limit(_LIMIT)
        .correlate(knobs)
        .lateral("nearest")
    )


def _binary_leg(
    distance: Distance,
    where: ColumnElement[bool],
    knobs: Subquery,
    *,
    rows: bool,
    index: IndexShape,
) -> FromClause:
    """A ``bit`` index's Hamming scan of ``binary_candidates`` rows, re-ranked exactly."""
    columns = [chunks.c[name] for name in _ROW_COLUMNS] if rows else []
    candidates = (
        select(chunks.c.id, chunks.c.embedding, *columns)
        .where(where, knobs.c.applied.is_not(None))
        .order_by(_index_order(distance, index))
        .limit(_BINARY_CANDIDATES)
        .correlate(knobs)
        .lateral("candidates")
    )
    d = _distance(distance, candidates.c.embedding)
    kept = [candidates.c[name] for name in _ROW_COLUMNS] if rows else []
    return (
        select(candidates.c.id, d.label("distance"), *kept)
        .order_by(d, candidates.c.id)
        .limit(_LIMIT)
        .correlate(knobs)
        .lateral("nearest")
    )


def _exact_leg(distance: Distance, where: ColumnElement[bool]) -> Subquery:
    scored = (
        select(chunks.c.id, _distance(distance).label("distance"))
        .where(where)
        .offset(0)  # an optimisation fence: this subquery is never served by the HNSW index
        .subquery("scored")
    )
    return (
        select(scored.c.id, scored.c.distance)
        .order_by(scored.c.distance, scored.c.id)
        .limit(_LIMIT)
        .subquery("nearest")
    )


def _vector_leg(
    distance: Distance,
    where: ColumnElement[bool],
    path: VectorPath,
    knobs_count: int,
    index: IndexShape = VECTOR_INDEX,
) -> FromClause:
    """``(id, distance)`` of the nearest ``limit`` chunks on ``path``."""
    if path == "exact":
        return _exact_leg(distance, where)
    knobs = _knobs(knobs_count)
    nearest = _hnsw_leg(distance, where, knobs, index=index)
    return (
        select(nearest.c.id, nearest.c.distance)
        .select_from(knobs)
        .join(nearest, true())
        .subquery("nearest_ids")
    )


def _result_columns() -> list[ColumnElement[Any]]:
    return [
        chunks.c.id.label("chunk_id"),
        chunks.c.document_id,
        documents.c.external_id,
        documents.c.title,
        chunks.c.position,
        chunks.c.content,
        chunks.c.metadata,
    ]


def _joined(ranked: FromClause, *extra: ColumnElement[Any]) -> Select[Any]:
    return (
        select(*_result_columns(), *extra)
        .join_from(ranked, chunks, chunks.c.id == ranked.c.id)
        .join(documents, documents.c.id == chunks.c.document_id)
    )


def vector_statement(
    distance: Distance,
    where: Filter,
    path: VectorPath,
    knobs_count: int,
    index: IndexShape = VECTOR_INDEX,
) -> Select[Any]:
    """Nearest chunks; binds ``query_embedding``, ``limit`` and :func:`knob_params` (and
    ``binary_candidates`` on the index path of a ``bit`` index)."""
    return _vector_statement(distance, _clause(where), path, knobs_count, index)


def _vector_statement(
    distance: Distance,
    where: ColumnElement[bool],
    path: VectorPath,
    knobs_count: int,
    index: IndexShape,
) -> Select[Any]:
    if path == "exact":
        exact = _exact_leg(distance, where)
        score = _score(distance, exact.c.distance).label("score")
        return _joined(exact, score).order_by(exact.c.distance, chunks.c.id)
    knobs = _knobs(knobs_count)
    leg = _hnsw_leg(distance, where, knobs, rows=True, index=index)
    return (
        select(
            leg.c.id.label("chunk_id"),
            leg.c.document_id,
            documents.c.external_id,
            documents.c.title,
            leg.c.position,
            leg.c.content,
            leg.c.metadata,
            _score(distance, leg.c.distance).label("score"),
        )
        .select_from(knobs)
        .join(leg, true())
        .join(documents, documents.c.id == leg.c.document_id)
        .order_by(leg.c.distance, leg.c.id)
    )


def _websearch() -> ColumnElement[Any]:
    return func.websearch_to_tsquery(_TEXT_CONFIG, _QUERY_TEXT)


def _match(text_match: TextMatch) -> ColumnElement[Any]:
    """The tsquery a chunk must also match with ``text_match`` ``half`` or ``all``."""
    if text_match == "half":
        # IMMUTABLE SQL function of the first migration: folded while planning, GIN-served.
        return func.pgsearch.keyword_query(_TEXT_CONFIG, _QUERY_TEXT)
    return _websearch()


def _ranking(call: Any) -> Any:
    """A BM25 function's ``(chunk_id, score)`` rows as a FROM item."""
    return call.table_valued(column("chunk_id", BigInteger), column("score", Float)).alias(
        "ranking"
    )


def _text_leg(
    where: Filter,
    text_match: TextMatch,
    fallback: bool = True,
    selective: bool = False,
    bounded: bool = False,
) -> Subquery:
    """Best ``limit`` chunks by BM25 (the functions of migration 0005), three ways:

    * no filter, any word: ``pgsearch.bm25_top`` returns the best ``limit`` only, skipping the
      postings of common words that cannot change them (MaxScore);
    * ``half`` / ``all``, or a ``selective`` filter (one the planner expects to select few
      chunks): the tsquery and the filter select the chunks, through their indexes, and
      ``pgsearch.bm25_scores`` reads only their postings;
    * another filter, any word: ``pgsearch.bm25_ranking`` scores every chunk holding a word,
      and the filter keeps those it selects.

    With ``fallback`` (text and hybrid), the terms are ``pgsearch.text_terms``: misspelled
    words are replaced by the store's most similar lexemes when none matches; without (bm25
    mode), plain ``query_lexemes``. With ``bounded`` (hybrid), ``pgsearch.bm25_common_cutoff``
    leaves out the commonest terms beyond ``max_postings`` postings.
    """
    lexemes = func.pgsearch.text_terms if fallback else func.pgsearch.query_lexemes
    terms = lexemes(_TEXT_CONFIG, _QUERY_TEXT)
    if bounded:
        terms = func.pgsearch.bm25_common_cutoff(terms, _MAX_POSTINGS)
    if where is None and text_match == "any":
        ranking = _ranking(func.pgsearch.bm25_top(terms, _LIMIT, _K1, _B, _TITLE_WEIGHT))
        leg = select(ranking.c.chunk_id.label("id"), ranking.c.score.label("rank"))
    elif text_match != "any" or (selective and where is not None):
        matched = select(chunks.c.id).where(_clause(where))
        if text_match != "any":
            matched = matched.where(chunks.c.tsv.op("@@")(_match(text_match)))
        selected = func.array(matched.scalar_subquery())
        ranking = _ranking(func.pgsearch.bm25_scores(terms, selected, _K1, _B, _TITLE_WEIGHT))
        leg = select(ranking.c.chunk_id.label("id"), ranking.c.score.label("rank"))
    else:
        ranking = _ranking(func.pgsearch.bm25_ranking(terms, _K1, _B, _TITLE_WEIGHT))
        leg = (
            select(ranking.c.chunk_id.label("id"), ranking.c.score.label("rank"))
            .join(chunks, chunks.c.id == ranking.c.chunk_id)
            .where(_clause(where))
        )
    order = (ranking.c.score.desc(), ranking.c.chunk_id)
    return leg.order_by(*order).limit(_LIMIT).subquery("matched")


def keyword_leg(where: Filter = None, text_match: TextMatch = "any") -> Select[Any]:
    """Text mode's keyword leg on its own (hybrid's without its ``max_postings`` bound):
    ``(id, rank)`` of the best ``limit`` chunks."""
    leg = _text_leg(where, text_match)
    return select(leg.c.id, leg.c.rank)


def text_statement(
    where: Filter, text_match: TextMatch = "any", fallback: bool = True, selective: bool = False
) -> Select[Any]:
    """Chunks that the match selects, by BM25; with ``selective``, the filter's chunks are
    selected first and only theirs are scored.

    Binds ``query_text``, ``text_config``, ``k1``, ``b``, ``title_weight`` and ``limit``.
    """
    leg = _text_leg(where, text_match, fallback, selective)
    return _joined(leg, leg.c.rank.label("score")).order_by(leg.c.rank.desc(), chunks.c.id)


def hybrid_statement(
    distance: Distance,
    where: Filter,
    path: VectorPath,
    knobs_count: int,
    text_match: TextMatch,
    fusion: Fusion = "convex",
    selective: bool = False,
    index: IndexShape = VECTOR_INDEX,
) -> Select[Any]:
    """The vector and keyword legs, fused in one statement (``selective``: the filter selects
    few chunks, and the keyword leg scores those alone; ``index``: the vector index the
    vector leg's index path orders for).

    Each leg ranks its best ``limit`` chunks that pass the filter. ``convex``: a chunk scores
    ``alpha * v + (1 - alpha) * t``, where ``v`` and ``t`` are its leg scores min-max
    normalised over the leg's candidates (0 where it is absent). ``rrf``: ``1 / (rrf_k + rank)``
    per leg it appears in. Binds ``query_embedding``, ``query_text``, ``text_config``,
    ``limit`` (depth of each leg), ``alpha``, ``rrf_k``, ``max_postings`` and ``k`` (rows
    returned); ``binary_candidates`` on the index path of a ``bit`` index.
    """
    nearest = _vector_leg(distance, _clause(where), path, knobs_count, index)
    vector_ranked = _ranked(
        nearest.c.id,
        _score(distance, nearest.c.distance),
        (nearest.c.distance, nearest.c.id),
        "vector_leg",
    )
    matched = _text_leg(where, text_match, selective=selective, bounded=True)
    text_ranked = _ranked(
        matched.c.id, matched.c.rank, (matched.c.rank.desc(), matched.c.id), "text_leg"
    )
    v, t = vector_ranked, text_ranked
    if fusion == "rrf":
        score = func.coalesce(1.0 / (_RRF_K + v.c.rank), 0) + func.coalesce(
            1.0 / (_RRF_K + t.c.rank), 0
        )
    else:
        score = _ALPHA * func.coalesce(v.c.normalised, 0) + (1 - _ALPHA) * func.coalesce(
            t.c.normalised, 0
        )
    fused = (
        select(
            func.coalesce(v.c.id, t.c.id).label("id"),
            score.label("score"),
            v.c.rank.label("vector_rank"),
            t.c.rank.label("text_rank"),
            v.c.score.label("vector_score"),
            t.c.score.label("text_score"),
        )
        .select_from(v.join(t, t.c.id == v.c.id, full=True))
        .order_by(score.desc(), func.coalesce(v.c.id, t.c.id))
        .limit(_K)
        .cte("fused")
    )
    extra = (fused.c.vector_rank, fused.c.text_rank, fused.c.vector_score, fused.c.text_score)
    return _joined(fused, fused.c.score, *extra).order_by(fused.c.score.desc(), chunks.c.id)


def _ranked(
    chunk_id: ColumnElement[Any],
    score: ColumnElement[Any],
    order: tuple[ColumnElement[Any], ...],
    name: str,
) -> Any:
    """A leg's chunks with their rank, score and min-max normalised score (1 if all tie)."""
    low, high = func.min(score).over(), func.max(score).over()
    normalised = func.coalesce((score - low) / func.nullif(high - low, 0), 1.0)
    return select(
        chunk_id.label("id"),
        func.row_number().over(order_by=order).label("rank"),
        score.label("score"),
        normalised.label("normalised"),
    ).cte(name)


def count_estimate_statement(where: ColumnElement[bool]) -> Select[Any]:
    """``SELECT 1 FROM chunks WHERE <filter>``, for the planner's row estimate (EXPLAIN)."""
    return select(literal(1)).select_from(chunks).where(where)


class Explain(Executable, ClauseElement):
    """``EXPLAIN (<options>) <statement>``, with the statement's own bound parameters.

    Args:
        statement: The statement to explain.
        options: EXPLAIN options from a fixed set, e.g. ``"FORMAT JSON"`` or ``"ANALYZE"``.
    """

    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy's own declaration style)
        ("statement", InternalTraversal.dp_clauseelement),
        ("explain_options", InternalTraversal.dp_string),
    ]
    # The plan comes back as one untyped column: nothing for a cached result to adapt.
    _all_selected_columns: tuple[()] = ()
    _OPTIONS = frozenset({"FORMAT JSON", "FORMAT TEXT", "ANALYZE", "ANALYZE, BUFFERS"})

    def __init__(self, statement: Select[Any], options: str = "FORMAT TEXT") -> None:
        if options not in self._OPTIONS:
            raise ValueError(f"unsupported EXPLAIN options {options!r}")
        self.statement = statement
        self.explain_options = options


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXPLAIN ({element.explain_options}) " + compiler.process(element.statement, **kw)
