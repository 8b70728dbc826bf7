"""Running a search: route the vector leg, execute, and never return short.

Routing. A filtered vector search asks the planner how many chunks the filter selects (one
``EXPLAIN``, no rows read). At most ``exact_threshold`` chunks: the exact path, which scores
exactly those chunks (recall 1.0). More: the HNSW path with pgvector's iterative scans, which
keep walking the graph until enough rows pass the filter. An unfiltered search takes the HNSW
path. ``exact=True`` forces the exact path.

Never short. A search returns ``min(k, matching chunks)`` rows: when an HNSW scan stops early
(``hnsw.max_scan_tuples``, or a planner estimate far too high), the search runs again on the
exact path. With ``group_by="document"`` each document appears once, by its best chunk; legs
are fetched deeper until ``k`` documents are found or every matching chunk was seen.

Which index. The "hnsw" path is the index path: it is written for the vector index the store
has (:func:`pgsearch.index_catalog.cached_search_index`, read once a minute per engine), HNSW
or IVFFlat, on ``embedding`` itself, its ``halfvec`` cast or its binary quantization, with
that method's knobs. Without a vector index it is written as for the store's first HNSW index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection

from pgsearch.embedders.base import Embedder
from pgsearch.exceptions import ConfigurationError, InvalidSearchError, translate_errors
from pgsearch.index_catalog import (
    VectorIndexInfo,
    cached_search_index,
    index_method,
    index_storage,
)
from pgsearch.search import prepared, stages
from pgsearch.search.estimates import estimate_rows
from pgsearch.search.options import MAX_K, MAX_VARIANTS, SearchRequest
from pgsearch.search.results import SearchPath, SearchResult, SearchResults
from pgsearch.search.statements import (
    VECTOR_INDEX,
    IndexShape,
    VectorPath,
    knob_params,
)
from pgsearch.store_config import StoreSettings, check_embedder
from pgsearch.types import Distance, SearchMode
from pgsearch.vectors import check_query_vector, register_binary_vectors

__all__ = ["query_vector", "run_search"]

# How much deeper each retry of a document-grouped search fetches.
_GROWTH = 4


_PLAIN = (
    "chunk_id",
    "document_id",
    "external_id",
    "title",
    "position",
    "content",
    "metadata",
    "score",
)


def _rows_to_results(rows: Sequence[Any]) -> list[SearchResult]:
    if not rows:
        return []
    fields = rows[0]._fields
    if fields == _PLAIN:
        # Vector, text and bm25 rows: unpacked by position (a third of the time of by name).
        return [
            SearchResult(chunk, document, external, title, position, content, metadata, float(s))
            for chunk, document, external, title, position, content, metadata, s in rows
        ]
    ranked = "vector_rank" in fields
    scored = ranked and "vector_score" in fields
    return [
        SearchResult(
            chunk_id=row.chunk_id,
            document_id=row.document_id,
            external_id=row.external_id,
            title=row.title,
            position=row.position,
            content=row.content,
            metadata=row.metadata,
            score=float(row.score),
            vector_rank=row.vector_rank if ranked else None,
            text_rank=row.text_rank if ranked else None,
            vector_score=row.vector_score if scored else None,
            text_score=row.text_score if scored else None,
        )
        for row in rows
    ]


def _by_document(results: list[SearchResult], k: int) -> list[SearchResult]:
    """Each document's first (best) chunk, in rank order, at most ``k``."""
    seen: set[int] = set()
    best = []
    for result in results:
        if result.document_id not in seen:
            seen.add(result.document_id)
            best.append(result)
    return best[:k]


def query_vector(
    store: StoreSettings, request: SearchRequest, embedder: Embedder | None
) -> NDArray[np.float32]:
    """The request's checked query vector: given, or the embedder's embedding of the query.

    Raises:
        ConfigurationError: A query text to embed and no embedder.
        EmbeddingMismatchError: The vector or embedder does not match the store.
    """
    cosine = store.distance is Distance.COSINE
    if request.query_vector is not None:
        return check_query_vector(request.query_vector, store.embedding_dim, cosine=cosine)
    if embedder is None:
        raise ConfigurationError(
            f"{request.search_mode.value} search of a query text needs an embedder: give one, "
            "or search with query_vector"
        )
    check_embedder(store, embedder)
    embedded = embedder.embed_query(request.query or "")
    return check_query_vector(embedded, store.embedding_dim, cosine=cosine)


def index_shape(store: StoreSettings, index: VectorIndexInfo | None) -> IndexShape:
    """What the index path must spell for ``index`` (``None``: the store has no vector index)."""
    if index is None:
        return VECTOR_INDEX
    return IndexShape(index_method(index), index_storage(index), store.embedding_dim)


def run_search(
    connection: Connection,
    store: StoreSettings,
    request: SearchRequest,
    embedder: Embedder | None,
) -> SearchResults:
    """Run ``request`` on ``connection`` (the caller's transaction, or autocommit).

    Variants, a re-ranker and MMR (:mod:`pgsearch.search.stages`) work on the request's
    ``candidates`` (default ``max(4k, 40)``): retrieved first, then narrowed to ``k``.

    Args:
        connection: Where to run; settings last until its transaction ends.
        store: The store's settings.
        request: The checked request.
        embedder: Embeds a query text for vector and hybrid modes (unless ``query_vector``).
    """
    if request.has_stages:
        return _with_stages(connection, store, request, embedder)
    return _retrieve(connection, store, request, embedder)


def _with_stages(
    connection: Connection,
    store: StoreSettings,
    request: SearchRequest,
    embedder: Embedder | None,
) -> SearchResults:
    base = replace(
        request,
        k=max(request.depth, request.k),
        variants=None,
        query_vectors=None,
        expand=None,
        reranker=None,
        diversity=None,
    )
    queries = [request.query, *(request.variants or [])]
    if request.expand is not None:
        expanded = list(request.expand(request.query or ""))
        if not all(isinstance(q, str) for q in expanded):
            raise InvalidSearchError("expand must return a list of query texts")
        queries += expanded
    vectors = list(request.query_vectors if request.query_vectors is not None else [])
    queries = list(dict.fromkeys(queries))[: MAX_VARIANTS + 1 - len(vectors)]
    first = _retrieve(connection, store, base, embedder)
    results: list[SearchResult] = list(first)
    if len(queries) > 1 or vectors:
        rankings = [first]
        rankings += [
            _retrieve(connection, store, replace(base, query=q, query_vector=None), embedder)
            for q in queries[1:]
        ]
        # Each extra vector is a vector search: in hybrid mode the keyword leg ran once
        # already, and running it again per vector would count its evidence again.
        rankings += [
            _retrieve(
                connection, store, replace(base, mode=SearchMode.VECTOR, query_vector=v), embedder
            )
            for v in vectors
        ]
        results = stages.fuse_rankings(rankings, request.rrf_k)[: base.k]
    if request.reranker is not None:
        results = stages.rerank(request.query or "", results, request.reranker)
    if request.diversity is not None:
        with translate_errors():
            results = stages.mmr(connection, results, request.k, request.diversity)
    return SearchResults(results[: request.k], path=first.path, estimated_rows=first.estimated_rows)


def _retrieve(
    connection: Connection,
    store: StoreSettings,
    request: SearchRequest,
    embedder: Embedder | None,
) -> SearchResults:
    mode = request.search_mode
    key = request.filter_key
    params: dict[str, Any] = {
        "text_config": store.text_config,
        "query_text": request.query,
        "k1": float(request.k1),
        "b": float(request.b),
        "title_weight": request.resolved_title_weight,
    }
    if mode in (SearchMode.TEXT, SearchMode.BM25):
        bm25 = mode is SearchMode.BM25
        match = "any" if bm25 else request.text_match
        text_estimate = None
        if key is not None and match == "any":  # half and all select through the tsquery
            # A filter that selects few chunks: score those, not every chunk holding a word.
            with translate_errors():
                text_estimate = estimate_rows(connection, key)
        selective = text_estimate is not None and text_estimate <= request.exact_threshold
        statement = prepared.text(key, match, not bm25, selective)

        def fetch_text(limit: int, path: VectorPath) -> list[SearchResult]:
            rows = connection.execute(statement, {**params, "limit": limit}).all()
            return _rows_to_results(rows)

        return _complete(request, fetch_text, "exact", "text", text_estimate)

    params["query_embedding"] = query_vector(store, request, embedder)
    with translate_errors():
        register_binary_vectors(connection)
        index = cached_search_index(connection, store.distance, store.embedding_dim)
        estimate = None
        path: VectorPath = "exact" if request.exact else "hnsw"
        # Hybrid's keyword leg routes on the estimate too, even on a forced exact path.
        if key is not None and (not request.exact or mode is SearchMode.HYBRID):
            estimate = estimate_rows(connection, key)
            if estimate <= request.exact_threshold:
                path = "exact"

    shape = index_shape(store, index)
    lists = None if index is None else index.lists

    def settings_for(depth: int) -> dict[str, str]:
        return request.index_settings(
            depth, filtered=key is not None, method=shape.method, storage=shape.storage, lists=lists
        )

    settings_for(request.k)  # refuses knobs the index does not take before anything runs

    def fetch(limit: int, leg_path: VectorPath) -> list[SearchResult]:
        depth = max(limit, request.depth) if mode is SearchMode.HYBRID else limit
        settings = settings_for(depth) if leg_path == "hnsw" else {}
        knobs = len(settings)
        values = {**params, **knob_params(settings), "limit": depth, "k": limit}
        if leg_path == "hnsw" and shape.storage == "bit":
            values["binary_candidates"] = request.binary_candidates(depth)
        # The exact path reads full vectors whatever the index: one statement for any shape.
        leg_shape = shape if leg_path == "hnsw" else VECTOR_INDEX
        if mode is SearchMode.VECTOR:
            statement = prepared.vector(key, store.distance, leg_path, knobs, leg_shape)
        else:
            values["rrf_k"] = request.rrf_k
            values["alpha"] = float(request.alpha)
            values["max_postings"] = request.max_postings
            selective = estimate is not None and estimate <= request.exact_threshold
            statement = prepared.hybrid(
                key,
                store.distance,
                leg_path,
                knobs,
                request.text_match,
                request.fusion,
                selective,
                leg_shape,
            )
        return _rows_to_results(connection.execute(statement, values).all())

    return _complete(request, fetch, path, path, estimate)


def _complete(
    request: SearchRequest,
    fetch: Callable[[int, VectorPath], list[SearchResult]],
    path: VectorPath,
    label: SearchPath,
    estimate: int | None,
) -> SearchResults:
    """Fetch ``k`` results (``k`` documents when grouped), falling back to the exact path."""
    k = request.k
    limit = k
    vectors = request.search_mode not in (SearchMode.TEXT, SearchMode.BM25)
    while True:
        with translate_errors(vectors=vectors):
            rows = fetch(limit, path)
        results = _by_document(rows, k) if request.group_by == "document" else rows[:k]
        if len(results) >= k:
            break
        if len(rows) < limit:
            if path == "exact":
                break  # every matching chunk was seen
            # An HNSW scan can stop before it has seen every matching chunk (max_scan_tuples,
            # ef_search): only the exact path knows that fewer match.
            path = label = "exact"
        elif limit >= _max_limit(request):
            break
        else:
            limit = min(limit * _GROWTH, _max_limit(request))
    return SearchResults(results, path=label, estimated_rows=estimate)


def _max_limit(request: SearchRequest) -> int:
    # Grouped searches may fetch past MAX_K chunks on the exact path, which has no ef_search cap.
    return 100 * MAX_K if request.group_by == "document" else request.k
