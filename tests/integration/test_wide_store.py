"""A store of 3,072-dimension vectors (text-embedding-3-large): indexed as halfvec.

pgvector indexes at most 2,000 dimensions of ``vector``; ``storage="halfvec"`` builds the
store's HNSW index on ``embedding::halfvec(3072)`` instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import sqlalchemy as sa

from pgsearch import (
    ConfigurationError,
    DocumentInput,
    HashingEmbedder,
    SearchRepository,
    Store,
    StoreOptions,
)
from pgsearch.migrations import upgrade
from tests.integration.test_index_storage import Plans

DIM = 3072


def test_wide_vectors_need_halfvec_storage(make_database: Callable[[], sa.URL]) -> None:
    with pytest.raises(ConfigurationError, match=r"1 to 2,000 dimensions .*storage=halfvec"):
        StoreOptions(dim=DIM, model="m")
    with pytest.raises(ConfigurationError, match="unknown index storage"):
        StoreOptions(dim=8, model="m", storage="float8")  # type: ignore[arg-type]

    engine = sa.create_engine(make_database())
    upgrade(engine, StoreOptions(dim=DIM, model=f"hashing-{DIM}", storage="halfvec"))
    with engine.connect() as conn:
        definition = conn.exec_driver_sql(
            "SELECT pg_get_indexdef('pgsearch.ix_chunks_embedding_hnsw'::regclass)"
        ).scalar_one()
        storage = conn.exec_driver_sql(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'pgsearch.chunks'::regclass"
            " AND attname = 'embedding'"
        ).scalar_one()
    assert "((embedding)::halfvec(3072)) halfvec_cosine_ops" in definition
    assert storage != "p"  # a 12 KB vector cannot stay inline in an 8 KB page

    store = Store(engine, embedder=HashingEmbedder(DIM))
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, DIM)).astype(np.float32)
    store.upsert(
        [
            DocumentInput(f"d{i}", f"document {i}", vectors=[vector])
            for i, vector in enumerate(vectors)
        ]
    )
    results = store.search(query_vector=vectors[3], k=3, mode="vector")
    assert results[0].external_id == "d3" and results[0].score == pytest.approx(1.0, abs=1e-5)
    # Served by the halfvec index (sequential scans off: the table is tiny).
    with store.session() as session:
        session.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plans = Plans(session)
        found, legs = plans.run(
            SearchRepository(session).search, query_vector=vectors[5], k=3, mode="vector"
        )
        assert found[0].external_id == "d5"
        assert any("Index Scan using ix_chunks_embedding_hnsw" in leg for leg in legs), legs
    engine.dispose()
