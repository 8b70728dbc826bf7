"""Search uses whichever vector index the store has: HNSW or IVFFlat, on vector, halfvec or bit.

A compressed index serves only a query that orders by its expression; a query that does not
silently scans the table. Each (method, storage) index is built on a small store of clustered
unit vectors, the store's HNSW index dropped, and the plans that auto_explain logs for the
statements a search runs (Python vector and hybrid search, SQL ``vector_search`` and
``hybrid_search``) must scan it. Scores are the exact distance whatever the index, and recall
against the exact path is high. Sequential scans are disabled in these transactions, so that a
plan on a table this small shows an index scan exactly when an index can serve the query.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.orm import Session

from pgsearch import InvalidSearchError, SearchRepository, StoreOptions, VectorIndex
from pgsearch.index_catalog import (
    cached_search_index,
    forget_search_index,
    search_index,
    vector_indexes,
)
from pgsearch.migrations import upgrade
from pgsearch.search.options import SearchRequest
from pgsearch.types import Distance, vector_literal
from pgsearch.vector_index import STORE_INDEX_NAME

DIM = 32
CHUNKS = 400
CENTERS = 16
LISTS = 10
K = 10
COMBINATIONS = [(m, s) for m in ("hnsw", "ivfflat") for s in ("vector", "halfvec", "bit")]


def _unit(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    unit: np.ndarray[Any, Any] = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return unit


RNG = np.random.default_rng(14)
_CENTERS = RNG.normal(size=(CENTERS, DIM))
VECTORS = _unit(_CENTERS[np.arange(CHUNKS) % CENTERS] + 0.35 * RNG.normal(size=(CHUNKS, DIM)))
QUERIES = _unit(_CENTERS[RNG.integers(0, CENTERS, 8)] + 0.35 * RNG.normal(size=(8, DIM)))


@pytest.fixture(scope="module")
def engine(make_database: Callable[[], URL]) -> Iterator[Engine]:
    """A cosine store of 400 one-chunk documents; words ``topicN`` say their cluster."""
    engine = create_engine(make_database())
    upgrade(engine, StoreOptions(dim=DIM, model=f"test-{DIM}"))
    with engine.begin() as conn:
        for i, vector in enumerate(VECTORS):
            content = f"chunk {i} topic{i % CENTERS} word{i % 7}"
            document = conn.execute(
                text(
                    "INSERT INTO pgsearch.documents (external_id, title, content, metadata,"
                    " content_hash) VALUES (:e, :t, :c, CAST(:m AS jsonb), md5(:c)) RETURNING id"
                ),
                {"e": f"doc-{i}", "t": f"Doc {i}", "c": content, "m": json.dumps({"n": i})},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO pgsearch.chunks (document_id, position, content, content_hash,"
                    " metadata, title, embedding)"
                    " VALUES (:d, 0, :c, md5(:c), CAST(:m AS jsonb), :t, CAST(:v AS vector))"
                ),
                {
                    "d": document,
                    "c": content,
                    "m": json.dumps({"n": i}),
                    "t": f"Doc {i}",
                    "v": vector_literal(vector.tolist()),
                },
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE pgsearch.chunks"))
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A rolled-back transaction with sequential scans disabled; the index cache forgotten
    before and after (the test changes the indexes inside its transaction)."""
    forget_search_index(engine)
    with engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            session.execute(text("SET LOCAL enable_seqscan = off"))
            yield session
        transaction.rollback()
    forget_search_index(engine)


def _execute(session: Session, statement: psycopg.sql.Composable) -> None:
    dbapi: Any = session.connection().connection.dbapi_connection
    session.execute(text(statement.as_string(dbapi)))


def _replace_index(session: Session, index: VectorIndex) -> None:
    """Build ``index`` and drop the store's HNSW index, in the session's transaction."""
    _execute(session, index.create_statement(DIM, lists=LISTS))
    session.execute(text(f"DROP INDEX pgsearch.{STORE_INDEX_NAME}"))
    forget_search_index(session.connection().engine)


def _index(method: str, storage: str, **options: Any) -> VectorIndex:
    return VectorIndex(
        name=f"ix_test_{method}_{storage}",
        table="chunks",
        schema="pgsearch",
        method=method,  # type: ignore[arg-type]
        storage=storage,  # type: ignore[arg-type]
        **options,
    )


class Plans:
    """The plans auto_explain logs (nested statements included) on a session's connection."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.lines: list[str] = []
        try:
            with session.begin_nested():
                session.execute(text("LOAD 'auto_explain'"))
        except Exception as exc:  # pragma: no cover - a server without auto_explain
            pytest.skip(f"auto_explain cannot be loaded here: {exc}")
        for setting in (
            "auto_explain.log_min_duration = 0",
            "auto_explain.log_nested_statements = on",
            "auto_explain.log_level = notice",
            "client_min_messages = notice",
        ):
            session.execute(text(f"SET LOCAL {setting}"))
        dbapi: Any = session.connection().connection.dbapi_connection
        dbapi.add_notice_handler(lambda d: self.lines.append(str(d.message_primary)))

    def run(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
        """``call(*args, **kwargs)``, and the plans of the statements it ran that read chunk
        embeddings."""
        # A statement's plan arrives with the next statement's messages.
        self.session.execute(text("SELECT 1"))
        self.lines.clear()
        result = call(*args, **kwargs)
        self.session.execute(text("SELECT 1"))
        legs = [
            plan
            for plan in self.lines
            if "embedding" in plan
            and "pgsearch.chunks" in plan
            # not the catalog's (pgsearch._search_index) nor routing's EXPLAIN
            and "EXPLAIN" not in plan
            and "pg_index" not in plan
        ]
        self.lines.clear()
        return result, legs


def _exact_scores(session: Session, ids: list[int], query: Any) -> dict[int, float]:
    """Cosine similarity of each chunk to ``query``, computed here by pgvector in full."""
    rows = session.execute(
        text(
            "SELECT id, 1 - (embedding <=> CAST(:q AS vector)) FROM pgsearch.chunks"
            " WHERE id = ANY(:ids)"
        ),
        {"q": vector_literal(query.tolist()), "ids": ids},
    ).all()
    return {row[0]: row[1] for row in rows}


def _rows(session: Session, statement: str, **params: Any) -> list[Any]:
    return list(session.execute(text(statement), params).all())


def _uses(plans: list[str], index: str) -> bool:
    return bool(plans) and all(f"Index Scan using {index}" in plan for plan in plans)


@pytest.mark.parametrize("method,storage", COMBINATIONS)
def test_python_search_uses_the_index(session: Session, method: str, storage: str) -> None:
    index = _index(method, storage)
    _replace_index(session, index)
    found = cached_search_index(session.connection(), Distance.COSINE, DIM)
    assert found is not None and (found.name, found.method, found.storage) == (
        index.name,
        method,
        storage,
    )
    plans = Plans(session)
    repository = SearchRepository(session)
    recalls = []
    for query in QUERIES:
        results, legs = plans.run(repository.search, query_vector=query, k=K)
        assert results.path == "hnsw" and len(results) == K
        assert _uses(legs, index.name), (method, storage, legs)
        exact = _exact_scores(session, [r.chunk_id for r in results], query)
        assert [r.score for r in results] == pytest.approx(
            [exact[r.chunk_id] for r in results], abs=1e-6
        )
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        truth = repository.search(query_vector=query, k=K, exact=True)
        recalls.append(len({r.chunk_id for r in results} & {r.chunk_id for r in truth}) / K)

        words = f"topic{(results[0].chunk_id - 1) % CENTERS} word3"
        hybrid, legs = plans.run(
            repository.search, words, K, "hybrid", query_vector=query, alpha=0.8
        )
        assert _uses(legs, index.name), ("hybrid", method, storage, legs)
        scored = [r for r in hybrid if r.vector_score is not None]
        assert len(scored) >= K // 2, hybrid
        exact = _exact_scores(session, [r.chunk_id for r in scored], query)
        assert [r.vector_score for r in scored] == pytest.approx(
            [exact[r.chunk_id] for r in scored], abs=1e-6
        )
    assert np.mean(recalls) >= 0.9, recalls


VECTOR_SQL = "SELECT chunk_id, score FROM pgsearch.vector_search(CAST(:v AS vector), :k)"
HYBRID_SQL = (
    "SELECT chunk_id, vector_score"
    " FROM pgsearch.hybrid_search(:q, CAST(:v AS vector), :k, alpha => 0.8)"
)


@pytest.mark.parametrize("method,storage", COMBINATIONS)
def test_sql_functions_use_the_index(session: Session, method: str, storage: str) -> None:
    index = _index(method, storage)
    _replace_index(session, index)
    plans = Plans(session)
    recalls = []
    for query in QUERIES:
        v = vector_literal(query.tolist())
        rows, legs = plans.run(_rows, session, VECTOR_SQL, v=v, k=K)
        assert len(rows) == K and _uses(legs, index.name), (method, storage, legs)
        exact = _exact_scores(session, [r.chunk_id for r in rows], query)
        assert [r.score for r in rows] == pytest.approx([exact[r.chunk_id] for r in rows], abs=1e-6)
        truth = SearchRepository(session).search(query_vector=query, k=K, exact=True)
        recalls.append(len({r.chunk_id for r in rows} & {r.chunk_id for r in truth}) / K)

        rows, legs = plans.run(_rows, session, HYBRID_SQL, q="topic3", v=v, k=K)
        assert _uses(legs, index.name), ("hybrid", method, storage, legs)
        scored = [r for r in rows if r.vector_score is not None]
        exact = _exact_scores(session, [r.chunk_id for r in scored], query)
        assert scored and [r.vector_score for r in scored] == pytest.approx(
            [exact[r.chunk_id] for r in scored], abs=1e-6
        )
    assert np.mean(recalls) >= 0.9, recalls
    # The view shows it, with pgvector's defaults filled in.
    shown = session.execute(
        text("SELECT * FROM pgsearch.vector_indexes WHERE name = :n"), {"n": index.name}
    ).one()
    assert (shown.method, shown.storage, shown.valid, shown.predicate) == (
        method,
        storage,
        True,
        None,
    )
    assert shown.distance == ("hamming" if storage == "bit" else "cosine")
    assert shown.parameters == (
        {"lists": LISTS} if method == "ivfflat" else {"m": 16, "ef_construction": 64}
    )
    assert shown.dimensions == DIM and shown.size_bytes > 0


def test_catalog_describes_each_index(session: Session) -> None:
    _execute(session, _index("hnsw", "halfvec", m=8, ef_construction=32).create_statement(DIM))
    _execute(
        session,
        _index("ivfflat", "bit", where="(metadata ->> 'n') IS NOT NULL").create_statement(
            DIM, lists=4
        ),
    )
    listed = {i.name: i for i in vector_indexes(session.connection())}
    assert set(listed) == {STORE_INDEX_NAME, "ix_test_hnsw_halfvec", "ix_test_ivfflat_bit"}
    store = listed[STORE_INDEX_NAME]
    assert (store.method, store.storage, store.distance, store.column, store.expression) == (
        "hnsw",
        "vector",
        Distance.COSINE,
        "embedding",
        None,
    )
    assert store.parameters == {"m": 16, "ef_construction": 64} and store.dimensions == DIM
    half = listed["ix_test_hnsw_halfvec"]
    assert half.parameters == {"m": 8, "ef_construction": 32}
    assert (half.storage, half.expression) == ("halfvec", f"(embedding)::halfvec({DIM})")
    bits = listed["ix_test_ivfflat_bit"]
    assert (bits.storage, bits.distance, bits.opclass, bits.lists) == (
        "bit",
        None,
        "bit_hamming_ops",
        4,
    )
    assert bits.predicate is not None and bits.valid and bits.size_bytes > 0
    # Newest first: the halfvec index, built after the store's; the partial one is skipped.
    picked = search_index(session.connection(), Distance.COSINE, DIM)
    assert picked is not None and picked.name == "ix_test_hnsw_halfvec"
    # Another distance than the store's is not served by a vector or halfvec index.
    assert search_index(session.connection(), Distance.L2, DIM) is None


def test_newest_index_is_used(session: Session) -> None:
    """A rebuild that changes storage briefly has two indexes: search uses the new one."""
    _execute(session, _index("hnsw", "bit").create_statement(DIM))
    plans = Plans(session)
    results, legs = plans.run(SearchRepository(session).search, query_vector=QUERIES[0], k=K)
    assert len(results) == K and _uses(legs, "ix_test_hnsw_bit"), legs
    rows, legs = plans.run(
        lambda: session.execute(
            text(VECTOR_SQL), {"v": vector_literal(QUERIES[0].tolist()), "k": K}
        ).all()
    )
    assert [r.chunk_id for r in rows] == [r.chunk_id for r in results]
    assert _uses(legs, "ix_test_hnsw_bit"), legs


@pytest.mark.parametrize("kind", ["partial", "invalid"])
def test_partial_and_invalid_indexes_are_not_used(session: Session, kind: str) -> None:
    where = "(metadata ->> 'n') IS NOT NULL" if kind == "partial" else None
    _replace_index(session, _index("hnsw", "halfvec", where=where))
    if kind == "invalid":  # as a failed CREATE INDEX CONCURRENTLY leaves it
        session.execute(
            text(
                "UPDATE pg_index SET indisvalid = false"
                " WHERE indexrelid = 'pgsearch.ix_test_hnsw_halfvec'::regclass"
            )
        )
    assert cached_search_index(session.connection(), Distance.COSINE, DIM) is None
    assert session.execute(text("SELECT name FROM pgsearch._search_index()")).scalar() is None
    plans = Plans(session)
    results, legs = plans.run(SearchRepository(session).search, query_vector=QUERIES[0], k=K)
    truth = SearchRepository(session).search(query_vector=QUERIES[0], k=K, exact=True)
    # No index serves the store: the plain expression, a (disabled) scan, exact rows.
    assert legs and not any("ix_test_hnsw_halfvec" in plan for plan in legs), legs
    assert [r.chunk_id for r in results] == [r.chunk_id for r in truth]


def test_probes_reach_the_scan_and_end_with_the_transaction(engine: Engine) -> None:
    index = _index("ivfflat", "vector")
    setting = "SELECT current_setting('ivfflat.probes', true)"
    try:
        with engine.begin() as conn:
            conn.execute(text(index.create_statement(DIM, lists=LISTS).as_string(None)))
        forget_search_index(engine)
        with Session(engine) as session:
            default = session.execute(text(setting)).scalar()
            SearchRepository(session).search(query_vector=QUERIES[0], k=K, probes=7)
            assert session.execute(text(setting)).scalar() == "7"
            session.commit()  # SET LOCAL ends with the transaction, committed or not
            assert session.execute(text(setting)).scalar() == default
            SearchRepository(session).search(query_vector=QUERIES[0], k=K)
            assert session.execute(text(setting)).scalar() == "3"  # round(sqrt(10))
            assert (
                session.execute(text("SELECT current_setting('ivfflat.iterative_scan')")).scalar()
                == "relaxed_order"
            )
            session.rollback()
            session.execute(
                text("SELECT count(*) FROM pgsearch.vector_search(CAST(:v AS vector))"),
                {"v": vector_literal(QUERIES[0].tolist())},
            )
            assert session.execute(text(setting)).scalar() == "3"
            session.commit()
            assert session.execute(text(setting)).scalar() == default
    finally:
        with engine.begin() as conn:
            conn.execute(text(index.drop_statement().as_string(None)))
        forget_search_index(engine)


def test_bad_probes_are_refused(session: Session) -> None:
    for value in (0, -1, 32_769, 2.5, True):
        with pytest.raises(InvalidSearchError, match="probes"):
            SearchRequest(query_vector=QUERIES[0], probes=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidSearchError, match="max_probes"):
        SearchRequest(query_vector=QUERIES[0], max_probes=0)
    with pytest.raises(InvalidSearchError, match="binary_oversample"):
        SearchRequest(query_vector=QUERIES[0], binary_oversample=0)
    _replace_index(session, _index("ivfflat", "vector"))
    repository = SearchRepository(session)
    with pytest.raises(InvalidSearchError, match=r"probes=11 is more than .* 10 lists"):
        repository.search(query_vector=QUERIES[0], k=K, probes=11)
    with pytest.raises(InvalidSearchError, match="strict_order"):
        repository.search(query_vector=QUERIES[0], k=K, iterative_scan="strict_order")
    assert len(repository.search(query_vector=QUERIES[0], k=K, probes=LISTS)) == K
