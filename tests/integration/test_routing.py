"""Routing between the exact and HNSW paths, never-short results, query vectors, bad input."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import URL, create_engine, event, text
from sqlalchemy.orm import Session

from pgsearch import (
    ChunkingOptions,
    DocumentInput,
    DocumentRepository,
    EmbeddingMismatchError,
    HashingEmbedder,
    InvalidSearchError,
    SearchRepository,
    Store,
)
from pgsearch.cli import main
from pgsearch.search.filters import compile_filter, parse_filter
from pgsearch.search.statements import Explain, VectorPath, knob_params, vector_statement
from pgsearch.types import Distance
from pgsearch.vectors import register_binary_vectors

WORDS = [f"zq{chr(97 + i // 26 % 26)}{chr(97 + i % 26)}" for i in range(300)]
EMBEDDER = HashingEmbedder(64)
HNSW = "ix_chunks_embedding_hnsw"


@pytest.fixture(scope="module")
def store(make_database: Callable[[], URL]) -> Iterator[Store]:
    """3,000 documents: 1 % "rare", half "common"."""
    rng = random.Random(11)
    documents = [
        DocumentInput(
            f"doc-{i}",
            " ".join(rng.choices(WORDS, k=12)),
            metadata={
                "kind": "rare" if i % 100 == 0 else "common" if i % 2 else "other",
                "n": i,
            },
        )
        for i in range(3000)
    ]
    with Store(create_engine(make_database()), EMBEDDER) as store:
        store.migrate()
        store.upsert(documents)
        store.optimize()
        yield store


def _query(i: int = 0) -> Any:
    return EMBEDDER.embed_query(" ".join(random.Random(i).choices(WORDS, k=5)))


def test_a_selective_filter_takes_the_exact_path_and_is_never_short(store: Store) -> None:
    for i in range(5):
        results = store.search(query_vector=_query(i), k=10, filter={"kind": "rare"})
        assert results.path == "exact"
        assert results.estimated_rows is not None and results.estimated_rows < 1000
        assert len(results) == 10
        assert {r.metadata["kind"] for r in results} == {"rare"}
        exact = store.search(query_vector=_query(i), k=10, filter={"kind": "rare"}, exact=True)
        assert [r.chunk_id for r in results] == [r.chunk_id for r in exact]


def test_a_broad_filter_takes_the_hnsw_path(store: Store) -> None:
    results = store.search(
        query_vector=_query(), k=10, filter={"kind": "common"}, exact_threshold=100
    )
    assert results.path == "hnsw"
    assert len(results) == 10 and {r.metadata["kind"] for r in results} == {"common"}
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)  # relaxed order, re-sorted
    assert store.search(query_vector=_query(), k=10).path == "hnsw"  # unfiltered


def test_an_hnsw_scan_that_comes_back_short_falls_back_to_exact(store: Store) -> None:
    with store.session() as session:
        # Make the planner take the HNSW index for a 1 % filter, without iterative scans: the
        # scan's 40 candidates hold about 0.4 rare chunks.
        for setting in ("enable_bitmapscan", "enable_seqscan", "enable_sort"):
            session.execute(text(f"SET LOCAL {setting} = off"))
        statement_plan = _plan(session, "hnsw", {"kind": "rare"})
        assert HNSW in statement_plan
        results = SearchRepository(session, EMBEDDER).search(
            query_vector=_query(),
            k=10,
            filter={"kind": "rare"},
            exact_threshold=0,
            iterative_scan="off",
        )
    assert len(results) == 10 and results.path == "exact"
    assert {r.metadata["kind"] for r in results} == {"rare"}


def test_fewer_matches_than_k_return_all_matches(store: Store) -> None:
    results = store.search(query_vector=_query(), k=1000, filter={"kind": "rare"})
    assert len(results) == 30


def _plan(session: Session, path: VectorPath, where: dict[str, Any] | None) -> str:
    register_binary_vectors(session.connection())
    settings = {"hnsw.ef_search": "40", "hnsw.iterative_scan": "relaxed_order"}
    node = parse_filter(where)
    clause = compile_filter(node) if node is not None else None
    statement = vector_statement(Distance.COSINE, clause, path, 2 if path == "hnsw" else 0)
    params = {"query_embedding": _query(), "limit": 10, **knob_params(settings)}
    return "\n".join(session.execute(Explain(statement), params).scalars())


def test_each_path_has_its_own_plan(store: Store) -> None:
    with store.session() as session:
        # Even with sorts and scans discouraged, the exact path never reaches the HNSW index.
        session.execute(text("SET LOCAL enable_sort = off"))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        exact = _plan(session, "exact", {"kind": "rare"})
        assert HNSW not in exact and "ix_chunks_metadata" in exact, exact
        session.execute(text("SET LOCAL enable_sort = on"))
        session.execute(text("SET LOCAL enable_seqscan = on"))
        assert HNSW in _plan(session, "hnsw", {"kind": "common"})
        assert HNSW in _plan(session, "hnsw", None)


def test_pgsearch_index_serves_range_filters(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    base = ["--database-url", url, "--embedder", "hashing:64"]
    where = {"n": {"$gte": 2980}}
    assert main([*base, "index", "metadata", "n"]) == 0
    assert "ix_chunks_metadata_n is ready" in capsys.readouterr().out
    try:
        with store.session() as session:
            session.execute(text("ANALYZE pgsearch.chunks"))
            assert "ix_chunks_metadata_n" in _plan(session, "exact", where)
        results = store.search(query_vector=_query(), k=50, filter=where)
        assert sorted(r.metadata["n"] for r in results) == list(range(2980, 3000))
    finally:
        assert main([*base, "index", "metadata", "n", "--drop"]) == 0
    with store.session() as session:
        assert "ix_chunks_metadata_n" not in _plan(session, "exact", where)
    assert main([*base, "index", "metadata", "bad key'"]) == 1
    assert "is not a field" in capsys.readouterr().err


def test_group_by_document_returns_each_document_once(
    session: Session, embedder: HashingEmbedder
) -> None:
    long = " ".join(f"Sentence {i} about honeybees and honey." for i in range(40))
    repository = DocumentRepository(session, embedder, chunking=ChunkingOptions(80, 0))
    repository.add([DocumentInput("long", long)])
    repository.add([DocumentInput(f"short-{i}", f"Note {i} on honey.") for i in range(5)])
    search = SearchRepository(session, embedder)
    chunks = search.search("honeybees honey", k=5, mode="vector", exact=True)
    assert [r.external_id for r in chunks].count("long") > 1
    for mode in ("vector", "text", "hybrid"):
        # Text mode needs every word: only "honey" is in every document.
        query = "honey" if mode == "text" else "honeybees honey"
        grouped = search.search(query, k=5, mode=mode, group_by="document")
        ids = [r.external_id for r in grouped]
        assert len(ids) == len(set(ids)) == 5, (mode, ids)
    best = search.search("honeybees honey", k=6, mode="vector", group_by="document", exact=True)
    assert best[0].external_id == chunks[0].external_id
    assert best[0].position == chunks[0].position


def test_query_vectors(session: Session, embedder: HashingEmbedder) -> None:
    DocumentRepository(session, embedder).add(
        [DocumentInput("bees", "Honeybees pollinate crops."), DocumentInput("db", "MVCC rows.")]
    )
    search = SearchRepository(session)  # no embedder: the vector is given
    vector = embedder.embed_query("pollinate crops")
    by_text = SearchRepository(session, embedder).search("pollinate crops", mode="vector")
    for given in (vector, vector.tolist(), vector.astype(np.float64)):
        by_vector = search.search(query_vector=given, k=10)
        assert [r.chunk_id for r in by_vector] == [r.chunk_id for r in by_text]
        assert [r.score for r in by_vector] == pytest.approx([r.score for r in by_text])
    hybrid = search.search("crops", mode="hybrid", query_vector=vector)
    assert hybrid[0].external_id == "bees" and hybrid[0].text_rank == 1
    with pytest.raises(EmbeddingMismatchError, match="3 dimensions"):
        search.search(query_vector=[0.1, 0.2, 0.3])
    with pytest.raises(EmbeddingMismatchError, match="NaN"):
        search.search(query_vector=np.full(64, np.nan))
    with pytest.raises(InvalidSearchError, match="needs a query text"):
        search.search(query_vector=vector, mode="text")


@pytest.mark.parametrize("k", [True, "5", None, 2.5, 0, 1001, -1])
def test_bad_k_is_refused(session: Session, embedder: HashingEmbedder, k: Any) -> None:
    with pytest.raises(InvalidSearchError, match="k"):
        SearchRepository(session, embedder).search("bees", k=k)


@pytest.mark.parametrize("mode", ["vector", "text", "hybrid"])
def test_k_up_to_1000_works_in_every_mode(
    session: Session, embedder: HashingEmbedder, corpus: list[DocumentInput], mode: str
) -> None:
    DocumentRepository(session, embedder).add(corpus)
    results = SearchRepository(session, embedder).search("honey", k=300, mode=mode)
    assert len(results) >= 1


@pytest.mark.parametrize(
    "query,message",
    [
        ("bees\x00", "NUL"),
        ("bees \ud800", "surrogate"),
        (" ".join(f"w{i}" for i in range(20_000)), "characters"),
        (" ".join(f"w{i}" for i in range(300)), "300 words"),
        ("x" * 100_000, "characters"),
    ],
    ids=["nul", "surrogate", "20k-words", "300-words", "100kB"],
)
def test_hostile_queries_are_refused(
    session: Session, embedder: HashingEmbedder, query: str, message: str
) -> None:
    for mode in ("vector", "text", "hybrid"):
        with pytest.raises(InvalidSearchError, match=message):
            SearchRepository(session, embedder).search(query, mode=mode)


def test_cli_filters_and_explains(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    base = ["--database-url", url, "--embedder", "hashing:64"]
    word = WORDS[3]
    code = main(
        [
            *base,
            "search",
            word,
            "--filter",
            '{"kind": "rare"}',
            "--mode",
            "vector",
            "--explain",
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "path: exact" in out.err
    assert "rare" in out.out and "common" not in out.out
    assert main([*base, "search", word, "--filter", '{"kind": {"$near": 1}}']) == 1
    assert "unknown filter operator '$near'" in capsys.readouterr().err
    assert main([*base, "search", word, "--filter", "{not json"]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert main([*base, "search", "\udcff\udcfe"]) == 1  # what argv holds for $'\xff\xfe'
    assert "not valid Unicode" in capsys.readouterr().err


def test_a_dead_pooled_connection_is_replaced_without_a_pre_ping(store: Store) -> None:
    assert store.search(query_vector=_query(), k=3).path == "hnsw"  # leaves a pooled connection
    with store.engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with psycopg.connect(
        store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert len(store.search(query_vector=_query(), k=3)) == 3


def test_estimates_are_kept_for_a_repeated_filter_until_statistics_change(store: Store) -> None:
    explained: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("EXPLAIN"):
            explained.append(statement)

    event.listen(store.engine, "after_cursor_execute", count)  # executions that ran
    try:
        where = {"kind": "rare", "n": {"$lt": 2500}}
        for i in range(3):
            assert store.search(query_vector=_query(i), k=5, filter=where).path == "exact"
        assert len(explained) == 1  # one EXPLAIN for three searches with the same filter
        store.search(query_vector=_query(), k=5, filter={"kind": "rare", "n": {"$lt": 2400}})
        assert len(explained) == 2  # another value is another filter
        store.optimize()  # ANALYZE: the planner's statistics changed
        store.search(query_vector=_query(), k=5, filter=where)
        assert len(explained) == 3
    finally:
        event.remove(store.engine, "after_cursor_execute", count)
