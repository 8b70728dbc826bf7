"""Stages after retrieval: multi-query fusion, re-ranking and MMR, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest
from sqlalchemy import URL

from pgsearch import (
    DocumentInput,
    EmbeddingMismatchError,
    HashingEmbedder,
    InvalidSearchError,
    Store,
)
from pgsearch.fusion import reciprocal_rank_fusion

DOCS = [
    DocumentInput("bees-1", "bees make honey in the hive"),
    DocumentInput("bees-2", "bees make honey in the hive!"),
    DocumentInput("bees-3", "bees make honey in their hive"),
    DocumentInput("wasps", "wasps build paper nests and make no honey"),
    DocumentInput("flowers", "flowers feed bees with nectar"),
    DocumentInput("bread", "sourdough bread needs a starter"),
]


@pytest.fixture
def store(make_database: Callable[[], URL]) -> Iterator[Store]:
    url = make_database().render_as_string(hide_password=False)
    with Store.open(url, embedder=HashingEmbedder(64)) as s:
        s.migrate()
        s.add(DOCS)
        yield s


class StandInCrossEncoder:
    """A tiny stand-in with sentence-transformers' CrossEncoder.predict signature: it prefers
    texts that mention nectar (a real one would be, e.g.,
    ``CrossEncoder("cross-encoder/ms-marco-MiniLM-L-6-v2")``)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def predict(self, sentences: list[tuple[str, str]], /) -> list[float]:
        self.pairs.extend(sentences)
        return [float("nectar" in text) + 0.01 * len(text) for _, text in sentences]


def test_a_cross_encoder_re_ranks_the_candidates(store: Store) -> None:
    encoder = StandInCrossEncoder()
    results = store.search("bees honey", 3, "text", reranker=encoder)
    assert results[0].external_id == "flowers"
    assert results[0].score == pytest.approx(1 + 0.01 * len("flowers feed bees with nectar"))
    assert all(query == "bees honey" for query, _ in encoder.pairs)
    assert len(encoder.pairs) == 5  # every candidate that matched, not just the top 3

    def by_length(query: str, texts: list[str]) -> list[float]:
        return [-len(text) for text in texts]

    shortest = store.search("bees honey", 2, "text", reranker=by_length)
    assert [r.external_id for r in shortest] == ["bees-1", "bees-2"]

    with pytest.raises(InvalidSearchError, match="one finite score per text"):
        store.search("bees", 2, "text", reranker=lambda q, texts: [1.0])
    with pytest.raises(InvalidSearchError, match="reranker must be"):
        store.search("bees", 2, "text", reranker=42)


def test_mmr_trades_relevance_for_diversity(store: Store) -> None:
    plain = store.search("bees make honey in the hive", 3, "vector")
    assert {r.external_id for r in plain} == {"bees-1", "bees-2", "bees-3"}
    same = store.search("bees make honey in the hive", 3, "vector", diversity=0.0)
    assert [r.chunk_id for r in same] == [r.chunk_id for r in plain]
    diverse = store.search("bees make honey in the hive", 3, "vector", diversity=0.7)
    assert diverse[0].external_id == plain[0].external_id  # the most relevant comes first
    assert len({r.external_id for r in diverse} & {"bees-1", "bees-2", "bees-3"}) < 3
    with pytest.raises(InvalidSearchError, match="diversity"):
        store.search("bees", 3, "vector", diversity=1.5)


def test_query_variants_are_fused_by_rrf(store: Store) -> None:
    variants = ["sourdough starter", "nectar for bees"]
    rankings = [[r.chunk_id for r in store.search(q, 40, "text")] for q in ["honey", *variants]]
    expected = reciprocal_rank_fusion(rankings, 60)[:4]
    fused = store.search("honey", 4, "text", variants=variants)
    assert [(r.chunk_id, r.score) for r in fused] == [
        (chunk, pytest.approx(score)) for chunk, score in expected
    ]
    assert "bread" in {r.external_id for r in fused}  # only a variant finds it

    seen: list[str] = []

    def expand(query: str) -> Sequence[str]:
        seen.append(query)
        return variants

    assert [r.chunk_id for r in store.search("honey", 4, "text", expand=expand)] == [
        r.chunk_id for r in fused
    ]
    assert seen == ["honey"]
    with pytest.raises(InvalidSearchError, match="at most 10 variants"):
        store.search("honey", 4, "text", variants=["x"] * 11)
    with pytest.raises(InvalidSearchError, match="list of query texts"):
        store.search("honey", 4, "text", variants="sourdough")  # type: ignore[arg-type]


def test_several_query_vectors_are_fused_by_rrf(store: Store) -> None:
    embedder = HashingEmbedder(64)
    honey, bread = embedder.embed_query("bees honey"), embedder.embed_query("sourdough bread")
    rankings = [
        [r.chunk_id for r in store.search(k=40, mode="vector", query_vector=v)]
        for v in (honey, bread)
    ]
    expected = reciprocal_rank_fusion(rankings, 60)[:4]
    fused = store.search(k=4, mode="vector", query_vector=honey, query_vectors=[bread])
    assert [(r.chunk_id, r.score) for r in fused] == [
        (chunk, pytest.approx(score)) for chunk, score in expected
    ]
    assert "bread" in {r.external_id for r in fused}  # only the second vector finds it

    # Hybrid: each vector with the query text's keyword leg, then fused with the text variants.
    mixed = store.search("honey", 4, "hybrid", query_vectors=[bread], variants=["nectar"])
    singles = [
        store.search("honey", 40, "hybrid"),
        store.search("nectar", 40, "hybrid"),
        store.search(k=40, mode="vector", query_vector=bread),  # the keyword leg runs once
    ]
    expected = reciprocal_rank_fusion([[r.chunk_id for r in s] for s in singles], 60)[:4]
    assert [r.chunk_id for r in mixed] == [chunk for chunk, _ in expected]

    # A 2-D array of query vectors (an embedder's output) works as a list does.
    stacked = store.search(
        k=4, mode="vector", query_vector=honey, query_vectors=embedder.embed_documents(["bread"])
    )
    listed = store.search(
        k=4, mode="vector", query_vector=honey, query_vectors=[embedder.embed_query("bread")]
    )
    assert [r.chunk_id for r in stacked] == [r.chunk_id for r in listed]

    with pytest.raises(InvalidSearchError, match="vector or hybrid mode"):
        store.search("honey", 4, "text", query_vectors=[bread])
    with pytest.raises(InvalidSearchError, match="at most 10 variants and query_vectors"):
        store.search("honey", 4, "hybrid", query_vectors=[bread] * 6, variants=["x"] * 5)
    with pytest.raises(EmbeddingMismatchError, match="dimension"):
        store.search(k=4, mode="vector", query_vector=honey, query_vectors=[[0.5] * 3])
