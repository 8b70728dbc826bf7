"""Stages after retrieval: several queries fused, a re-ranker, and MMR for diversity.

Each stage works on the candidates a search retrieved (its ``candidates`` depth, default
``max(4k, 40)``), in this order:

1. **Multi-query.** The query's variants (given, or from an ``expand`` callable such as an LLM
   prompt) are searched one by one and their rankings fused by reciprocal rank fusion: RRF
   needs no comparable scores across queries, which different phrasings do not have.
2. **Re-ranking.** A callable ``(query, texts) -> scores``, or an object with a
   sentence-transformers ``CrossEncoder``-style ``predict(pairs)``, scores each candidate
   against the query; they are re-sorted by it.
3. **MMR.** Maximal marginal relevance (Carbonell & Goldstein, 1998) picks the results one by
   one, each maximising ``(1 - diversity) * relevance - diversity * max cosine similarity to
   those already picked``, with relevance the previous stage's score min-max normalised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import Connection, select

from pgsearch.exceptions import InvalidSearchError
from pgsearch.fusion import reciprocal_rank_fusion
from pgsearch.models import Chunk
from pgsearch.search.results import SearchResult

__all__ = ["CrossEncoderLike", "Reranker", "fuse_rankings", "mmr", "rerank"]


@runtime_checkable
class CrossEncoderLike(Protocol):
    """What sentence-transformers' ``CrossEncoder`` offers: scores for (query, text) pairs."""

    def predict(self, sentences: list[tuple[str, str]], /) -> Any:  # pragma: no cover
        ...


Reranker = Callable[[str, list[str]], Sequence[float]] | CrossEncoderLike


def fuse_rankings(rankings: Sequence[Sequence[SearchResult]], rrf_k: int) -> list[SearchResult]:
    """One ranking from several (one per query variant), by reciprocal rank fusion."""
    by_chunk = {r.chunk_id: r for ranking in rankings for r in ranking}
    fused = reciprocal_rank_fusion([[r.chunk_id for r in ranking] for ranking in rankings], rrf_k)
    return [replace(by_chunk[chunk_id], score=score) for chunk_id, score in fused]


def rerank(query: str, results: list[SearchResult], reranker: Reranker) -> list[SearchResult]:
    """``results`` re-sorted by the re-ranker's score (which becomes their ``score``)."""
    texts = [r.content for r in results]
    if not texts:
        return []
    if isinstance(reranker, CrossEncoderLike):
        raw = reranker.predict([(query, text) for text in texts])
    else:
        raw = reranker(query, texts)
    scores = np.asarray(raw, dtype=np.float64).reshape(-1)
    if scores.shape[0] != len(texts) or not np.isfinite(scores).all():
        raise InvalidSearchError(
            f"the re-ranker returned {scores.shape[0]} scores for {len(texts)} texts (or a NaN): "
            "it must return one finite score per text"
        )
    order = sorted(range(len(results)), key=lambda i: (-scores[i], results[i].chunk_id))
    return [replace(results[i], score=float(scores[i])) for i in order]


def _embeddings(connection: Connection, ids: list[int]) -> dict[int, np.ndarray[Any, Any]]:
    table = Chunk.__table__
    rows = connection.execute(select(table.c.id, table.c.embedding).where(table.c.id.in_(ids)))
    return {row.id: np.asarray(row.embedding, dtype=np.float64) for row in rows}


def mmr(
    connection: Connection, results: list[SearchResult], k: int, diversity: float
) -> list[SearchResult]:
    """Pick ``k`` of ``results`` by maximal marginal relevance (``score`` is kept)."""
    if not results:
        return []
    vectors = _embeddings(connection, [r.chunk_id for r in results])
    matrix = np.stack([vectors[r.chunk_id] for r in results])
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0, 1, norms)
    similarity = unit @ unit.T
    scores = np.array([r.score for r in results])
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    picked: list[int] = []
    closest = np.full(len(results), -np.inf)  # max similarity to the picked ones
    while len(picked) < min(k, len(results)):
        penalty = np.where(np.isinf(closest), 0.0, closest)
        value = (1 - diversity) * relevance - diversity * penalty
        value[picked] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        closest = np.maximum(closest, similarity[best])
    return [results[i] for i in picked]
