"""Built statements, kept per filter and shape in bounded LRU caches.

Applications repeat a few filters (a tenant, a source, a language) with ever new queries, and
building a SQLAlchemy statement costs more than running it on a selective filter. Statements are
keyed by the filter's canonical JSON (:attr:`SearchRequest.filter_key
<pgsearch.search.options.SearchRequest.filter_key>`) and their shape, which includes the vector
index the index path orders for (its method, storage and dimensions: a ``halfvec`` or ``bit``
index is used only by a statement that spells its expression); values other than the filter's
are bound at execution.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select

from pgsearch.search.filters import compile_filter, parse_filter
from pgsearch.search.options import Fusion, TextMatch
from pgsearch.search.statements import (
    VECTOR_INDEX,
    Explain,
    IndexShape,
    VectorPath,
    count_estimate_statement,
    hybrid_statement,
    text_statement,
    vector_statement,
)
from pgsearch.types import Distance

__all__ = ["estimate_statement", "hybrid", "text", "vector"]

_SIZE = 1024


@lru_cache(maxsize=_SIZE)
def _where(key: str | None) -> ColumnElement[bool] | None:
    if key is None:
        return None
    node = parse_filter(json.loads(key))  # checked when the request was made
    return None if node is None else compile_filter(node)


@lru_cache(maxsize=_SIZE)
def estimate_statement(key: str) -> Explain:
    """``EXPLAIN (FORMAT JSON)`` of the chunks the filter ``key`` selects."""
    where = _where(key)
    assert where is not None
    return Explain(count_estimate_statement(where), "FORMAT JSON")


@lru_cache(maxsize=_SIZE)
def text(
    key: str | None, text_match: TextMatch, fallback: bool = True, selective: bool = False
) -> Select[Any]:
    """Text (``fallback``) and bm25 modes' statement for the filter ``key`` (``None``: none);
    ``selective``: the filter selects few chunks, scored alone."""
    return text_statement(_where(key), text_match, fallback, selective)


@lru_cache(maxsize=_SIZE)
def vector(
    key: str | None,
    distance: Distance,
    path: VectorPath,
    knobs: int,
    index: IndexShape = VECTOR_INDEX,
) -> Select[Any]:
    """Vector mode's statement for the filter ``key``, path, number of knobs and index."""
    return vector_statement(distance, _where(key), path, knobs, index)


@lru_cache(maxsize=_SIZE)
def hybrid(
    key: str | None,
    distance: Distance,
    path: VectorPath,
    knobs: int,
    text_match: TextMatch,
    fusion: Fusion,
    selective: bool = False,
    index: IndexShape = VECTOR_INDEX,
) -> Select[Any]:
    """Hybrid mode's statement for the filter ``key``, path, knobs, keyword match, fusion,
    whether the filter is ``selective`` (its chunks alone are scored by BM25), and index."""
    return hybrid_statement(
        distance, _where(key), path, knobs, text_match, fusion, selective, index
    )
