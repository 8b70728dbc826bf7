"""Search statements: vector, text and hybrid (reciprocal rank fusion), each one SQL statement.

The SQL text is fixed per distance; every value (query vector, query text, text configuration,
limits) is a bound parameter. Each statement first takes the best chunk ids in an inner query, so
the planner can serve it from the HNSW or GIN index, then joins the rows it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from sqlalchemy import TextClause, text

from pgsearch.types import Distance

__all__ = [
    "SearchResult",
    "TextMatch",
    "hybrid_search_sql",
    "keyword_leg_sql",
    "text_search_sql",
    "vector_search_sql",
]

TextMatch = Literal["half", "all"]
"""How hybrid search's keyword leg matches: chunks with at least ``half`` the query's words
(the default), or with ``all`` of them (text mode's leg)."""

_QUERY_VECTOR = "CAST(:query_embedding AS vector)"
_WEBSEARCH = "websearch_to_tsquery(CAST(:text_config AS regconfig), :query_text)"
# Hybrid's keyword query, built by the SQL function the migration installs (see there): at
# least half of the query's words. IMMUTABLE, so it is evaluated once, while planning.
_KEYWORD_QUERY = "pgsearch.keyword_query(CAST(:text_config AS regconfig), :query_text)"

_RESULT_COLUMNS = """
    c.id AS chunk_id, c.document_id, d.external_id, d.title, c.position, c.content,
    c.metadata"""


@dataclass(frozen=True)
class SearchResult:
    """One ranked chunk.

    Attributes:
        chunk_id: ``pgsearch.chunks.id``.
        document_id: ``pgsearch.documents.id``.
        external_id: The document's caller-supplied key.
        title: The document's title.
        position: The chunk's position in its document (0-based).
        content: The chunk's text.
        metadata: The chunk's metadata (the document's, repeated).
        score: Higher is better. Vector mode: the distance's similarity (cosine similarity,
            inner product, negated L2). Text mode: ``ts_rank_cd``. Hybrid: the RRF score.
    """

    chunk_id: int
    document_id: int
    external_id: str
    title: str | None
    position: int
    content: str
    metadata: dict[str, Any]
    score: float


def _vector_leg(distance: Distance) -> str:
    return f"""
        SELECT id, embedding {distance.operator} {_QUERY_VECTOR} AS distance
        FROM pgsearch.chunks
        ORDER BY embedding {distance.operator} {_QUERY_VECTOR}
        LIMIT :limit"""


def _text_leg(tsquery: str, rank: str) -> str:
    """Best ``limit`` chunks matching ``tsquery``.

    The match condition spells the query out so that the planner can evaluate it while planning
    and estimate how many rows match: with a good estimate it picks the GIN index. The rank
    reads the query from a scalar subquery, which runs once rather than once per row.
    """
    return f"""
        SELECT c.id, {rank.format(query=f"(SELECT {tsquery})")} AS rank
        FROM pgsearch.chunks AS c
        WHERE c.tsv @@ {tsquery}
        ORDER BY rank DESC, c.id
        LIMIT :limit"""


# Text mode: every term must match (web-search semantics), ranked by cover density.
_TEXT_LEG = _text_leg(_WEBSEARCH, "ts_rank_cd(c.tsv, {query})")

# Hybrid's keyword leg: chunks with at least half the query's words (Lucene's "minimum should
# match: 50%"; RRF counts ranks, not scores, so a chunk sharing one word with a long question
# must not enter the fusion as a keyword hit), ranked by frequency with length normalisation
# (1), the closest built-in to BM25. On SciFact (train split, all-MiniLM-L6-v2) hybrid scores
# nDCG@10 0.689 with it, 0.686 with any one word and 0.665 with all words (text mode's leg);
# vector alone scores 0.658.
_KEYWORD_LEG = _text_leg(_KEYWORD_QUERY, "ts_rank(c.tsv, {query}, 1)")


@cache
def keyword_leg_sql() -> TextClause:
    """Hybrid search's keyword leg on its own: ``(id, rank)`` of the best ``limit`` chunks."""
    return text(_KEYWORD_LEG)


@cache
def vector_search_sql(distance: Distance) -> TextClause:
    """Nearest chunks by ``distance``; binds ``query_embedding`` and ``limit``."""
    return text(
        f"""
        SELECT {_RESULT_COLUMNS}, {distance.score_sql("nearest.distance")} AS score
        FROM ({_vector_leg(distance)}) AS nearest
        JOIN pgsearch.chunks AS c ON c.id = nearest.id
        JOIN pgsearch.documents AS d ON d.id = c.document_id
        ORDER BY nearest.distance, c.id
        """
    )


@cache
def text_search_sql() -> TextClause:
    """Chunks matching ``websearch_to_tsquery``, by ``ts_rank_cd``.

    Binds ``query_text``, ``text_config`` and ``limit``.
    """
    return text(
        f"""
        SELECT {_RESULT_COLUMNS}, matched.rank AS score
        FROM ({_TEXT_LEG}) AS matched
        JOIN pgsearch.chunks AS c ON c.id = matched.id
        JOIN pgsearch.documents AS d ON d.id = c.document_id
        ORDER BY matched.rank DESC, c.id
        """
    )


@cache
def hybrid_search_sql(distance: Distance, text_match: TextMatch = "half") -> TextClause:
    """Reciprocal rank fusion of the vector and keyword legs, in one statement.

    With ``text_match="half"`` the keyword leg matches chunks with at least half the query's
    words (see :func:`keyword_leg_sql`); with ``"all"`` it is text mode's leg. Each leg ranks
    its best ``limit`` chunks; a chunk scores ``1 / (rrf_k + rank)`` per leg it appears in.
    Binds ``query_embedding``, ``query_text``, ``text_config``, ``limit`` (depth of each leg),
    ``rrf_k`` and ``k`` (rows returned).
    """
    return text(
        f"""
        WITH vector_leg AS (
            SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
            FROM ({_vector_leg(distance)}) AS nearest
        ),
        text_leg AS (
            SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS rank
            FROM ({_KEYWORD_LEG if text_match == "half" else _TEXT_LEG}) AS matched
        ),
        fused AS (
            SELECT coalesce(v.id, t.id) AS id,
                   coalesce(1.0::float8 / (:rrf_k + v.rank), 0)
                   + coalesce(1.0::float8 / (:rrf_k + t.rank), 0) AS score
            FROM vector_leg AS v FULL OUTER JOIN text_leg AS t ON t.id = v.id
            ORDER BY score DESC, id
            LIMIT :k
        )
        SELECT {_RESULT_COLUMNS}, fused.score
        FROM fused
        JOIN pgsearch.chunks AS c ON c.id = fused.id
        JOIN pgsearch.documents AS d ON d.id = c.document_id
        ORDER BY fused.score DESC, c.id
        """
    )
