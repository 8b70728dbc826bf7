"""The planner's own choice on a store of realistic size, after `Store.optimize()`.

test_search forces index scans on a tiny table; here nothing is forced: with a few thousand
chunks, merged GIN pending lists and fresh statistics, each search must pick its index unaided.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import URL, Select, create_engine, text
from sqlalchemy.orm import Session

from pgsearch import DocumentInput, HashingEmbedder, Store
from pgsearch.indexes import after_bulk_write
from pgsearch.search.statements import (
    Explain,
    hybrid_statement,
    knob_params,
    text_statement,
    vector_statement,
)
from pgsearch.types import Distance
from pgsearch.vectors import register_binary_vectors

# 2,000 made-up words, each in about 1 % of the documents, like real vocabulary: a query
# word matches few rows, so an index beats a scan (nonsense words survive stemming as they are).
WORDS = [f"zq{chr(97 + i // 26 % 26)}{chr(97 + i % 26)}{i // 676}" for i in range(2000)]
QUERY = f"{WORDS[10]} {WORDS[20]}"


@pytest.fixture(scope="module")
def store(make_database: Callable[[], URL]) -> Iterator[Store]:
    rng = random.Random(7)
    documents = [DocumentInput(f"doc-{i}", " ".join(rng.choices(WORDS, k=20))) for i in range(3000)]
    with Store(create_engine(make_database()), HashingEmbedder(64)) as store:
        store.migrate()
        store.upsert(documents)
        store.optimize()
        yield store


@pytest.mark.parametrize(
    "statement,indexes",
    [
        (vector_statement(Distance.COSINE, None, "hnsw", 2), ["ix_chunks_embedding_hnsw"]),
        (text_statement(None, "all"), ["ix_chunks_tsv"]),
        (
            hybrid_statement(Distance.COSINE, None, "hnsw", 2, "half"),
            ["ix_chunks_embedding_hnsw", "ix_chunks_tsv"],
        ),
        (
            hybrid_statement(Distance.COSINE, None, "hnsw", 2, "all"),
            ["ix_chunks_embedding_hnsw", "ix_chunks_tsv"],
        ),
    ],
    ids=["vector", "text", "hybrid", "hybrid-all"],
)
def test_planner_picks_the_indexes(
    store: Store, statement: Select[Any], indexes: list[str]
) -> None:
    params = {
        "query_embedding": HashingEmbedder(64).embed_query(QUERY),
        **knob_params({"hnsw.ef_search": "40", "hnsw.iterative_scan": "off"}),
        "query_text": QUERY,
        "text_config": "english",
        "limit": 10,
        "k": 10,
        "rrf_k": 60,
    }
    with store.session() as session:
        register_binary_vectors(session.connection())
        plan = "\n".join(session.execute(Explain(statement), params).scalars())
    for index in indexes:
        assert index in plan, plan


def test_optimize_tolerates_a_role_that_does_not_own_the_indexes(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text("CREATE ROLE pgsearch_test_writer NOLOGIN"))
        conn.execute(text("GRANT USAGE ON SCHEMA pgsearch TO pgsearch_test_writer"))
        conn.execute(text("GRANT ALL ON ALL TABLES IN SCHEMA pgsearch TO pgsearch_test_writer"))
        conn.execute(text("SET LOCAL ROLE pgsearch_test_writer"))
        with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
            after_bulk_write(session)  # merging needs ownership: skipped with a warning
            assert session.execute(text("SELECT current_user")).scalar() == "pgsearch_test_writer"
        transaction.rollback()
