"""What a search returns: ranked rows, and which path served them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SearchPath", "SearchResult", "SearchResults"]

SearchPath = Literal["hnsw", "exact", "text"]


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
            inner product, negated L2). Text and bm25 modes: BM25. Hybrid: the fused score
            (convex combination, or RRF).
        vector_rank: Hybrid: the chunk's rank in the vector leg (``None`` if absent from it).
        text_rank: Hybrid: the chunk's rank in the keyword leg (``None`` if absent from it).
        vector_score: Hybrid: the chunk's vector-leg score (similarity), if in that leg.
        text_score: Hybrid: the chunk's keyword-leg score (BM25), if in that leg.
    """

    chunk_id: int
    document_id: int
    external_id: str
    title: str | None
    position: int
    content: str
    metadata: dict[str, Any]
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None
    vector_score: float | None = None
    text_score: float | None = None


class SearchResults(list[SearchResult]):
    """The ranked results, best first, with how they were found.

    Attributes:
        path: ``hnsw`` (the vector leg took the index path: the store's vector index, HNSW or
            IVFFlat, whatever its storage), ``exact`` (it scored every chunk the filter
            selects) or ``text`` (text and bm25 modes: the BM25 postings).
        estimated_rows: The planner's estimate of the chunks the filter selects, when a filter
            was routed (``None`` otherwise).
    """

    def __init__(
        self,
        results: list[SearchResult] | None = None,
        *,
        path: SearchPath,
        estimated_rows: int | None = None,
    ) -> None:
        super().__init__(results or [])
        self.path: SearchPath = path
        self.estimated_rows = estimated_rows
