"""Search: one request type, a filter language, routed statements and their results.

* :mod:`~pgsearch.search.options`: :class:`SearchRequest`, checked when made.
* :mod:`~pgsearch.search.filters`: the filter language, parsed and compiled to clauses.
* :mod:`~pgsearch.search.statements`: the SQLAlchemy Core statements of each mode and path.
* :mod:`~pgsearch.search.runner`: routing (exact or HNSW) and the never-short guarantee.
* :mod:`~pgsearch.search.estimates`: the planner's row estimates that routing reads.
* :mod:`~pgsearch.search.prepared`: built statements, kept per filter and shape.
* :mod:`~pgsearch.search.results`: :class:`SearchResult` and :class:`SearchResults`.
"""

from pgsearch.search.filters import parse_filter
from pgsearch.search.options import (
    DEFAULT_EF_SEARCH,
    DEFAULT_EXACT_THRESHOLD,
    MAX_K,
    GroupBy,
    IterativeScan,
    SearchRequest,
    TextMatch,
)
from pgsearch.search.results import SearchPath, SearchResult, SearchResults
from pgsearch.search.runner import run_search

__all__ = [
    "DEFAULT_EF_SEARCH",
    "DEFAULT_EXACT_THRESHOLD",
    "MAX_K",
    "GroupBy",
    "IterativeScan",
    "SearchPath",
    "SearchRequest",
    "SearchResult",
    "SearchResults",
    "TextMatch",
    "parse_filter",
    "run_search",
]
