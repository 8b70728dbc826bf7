"""The SQL functions of revision 0002 return what the Python search returns.

``pgsearch.vector_search``, ``text_search`` and ``hybrid_search`` are checked row for row
against :meth:`SearchRepository.search` (chunk ids in order, scores within 1e-6) for filters
covering every operator, on the shared store; bad input is refused with SQLSTATE 22023;
routing (exact, HNSW, the never-short fallback) is checked on a store of its own, large enough
for the planner to expect more than 10,000 chunks; and the revision downgrades and upgrades.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from pgsearch import (
    DocumentInput,
    DocumentRepository,
    HashingEmbedder,
    InvalidSearchError,
    SearchRepository,
    StoreOptions,
)
from pgsearch.chunking import ChunkingOptions
from pgsearch.migrations import downgrade, upgrade
from pgsearch.search.estimates import forget_estimates
from pgsearch.search.options import Fusion
from pgsearch.search.results import SearchResult
from pgsearch.types import vector_literal
from tests.filter_reference import matches

VECTOR_SQL = "SELECT * FROM pgsearch.vector_search(CAST(:v AS vector), :k, CAST(:f AS jsonb))"
TEXT_SQL = "SELECT * FROM pgsearch.text_search(:q, :k, CAST(:f AS jsonb))"
HYBRID_SQL = (
    "SELECT * FROM pgsearch.hybrid_search(:q, CAST(:v AS vector), :k, CAST(:f AS jsonb), :rrf_k)"
)
FUSED_SQL = (
    "SELECT * FROM pgsearch.hybrid_search("
    ":q, CAST(:v AS vector), :k, CAST(:f AS jsonb), :rrf_k, :fusion, :alpha)"
)

# Queries with words of several documents, so that every mode ranks many chunks.
VECTOR_QUERY = "sourdough bread yeast database index stars honey"
TEXT_QUERY = "bread or index or mars or honey or postgres or rust or telescope"
HYBRID_QUERY = "sourdough bread database index telescope stars"

EXTRA: list[DocumentInput] = [
    DocumentInput(
        "doc-01",
        "Rye bread needs a long proof. The starter is fed with flour and water every day, "
        "and the yeast makes the dough rise slowly overnight.",
        "Rye Bread",
        {
            "topic": "cooking",
            "year": 2021,
            "lang": "en",
            "tags": ["bread", "rye"],
            "rating": 4.5,
            "draft": False,
            "reviewer": None,
        },
    ),
    DocumentInput(
        "doc-02",
        "Croissants fold butter into the dough; the layers puff in a hot oven.",
        "Croissants",
        {
            "topic": "cooking",
            "year": 2022,
            "lang": "fr",
            "tags": ["pastry"],
            "rating": 5,
            "author": {"name": "Ada", "country": "FR"},
        },
    ),
    DocumentInput(
        "doc-03",
        "A hash index answers equality lookups; a B-tree index also serves ranges and sorts.",
        "Hash indexes",
        {
            "topic": "databases",
            "year": 2019,
            "lang": "en",
            "tags": ["sql", "index"],
            "version": 2,
            "author": {"name": "Edgar", "country": "UK"},
        },
    ),
    DocumentInput(
        "doc-04",
        "Rust ownership rules prevent data races at compile time; the borrow checker enforces "
        "them.",
        "Rust ownership",
        {
            "topic": "programming",
            "year": 2023,
            "lang": "en",
            "tags": ["rust", "sql"],
            "version": "2.1",
            "draft": True,
        },
    ),
    DocumentInput(
        "doc-05",
        "Telescopes collect starlight with mirrors; bigger mirrors see fainter stars and "
        "galaxies far away.",
        None,
        {
            "topic": "astronomy",
            "year": 2020.0,
            "lang": "de",
            "tags": ["optics", "stars"],
            "published": "2020-03-15",
        },
    ),
    DocumentInput(
        "doc-06",
        "Mars has two small moons, Phobos and Deimos, and the tallest volcano of the solar system.",
        "Moons of Mars",
        {
            "topic": "astronomy",
            "year": 2024,
            "lang": "en",
            "rating": 3.5,
            "published": "2024-01-09",
            "author": {"name": "Vera", "country": "US"},
        },
    ),
    DocumentInput(
        "doc-07",
        "Write-ahead logging makes PostgreSQL durable: the log is flushed before the data "
        "pages, and replicas replay it.",
        "WAL",
        {
            "topic": "databases",
            "year": 2021,
            "lang": "en",
            "tags": ["postgres", "sql"],
            "version": 16,
            "reviewer": "Lin",
            "score-card": {"x_1": 7},
        },
    ),
    DocumentInput(
        "doc-08",
        "Honey keeps for years because its sugar content is high and its water content low.",
        "Honey",
        {
            "topic": "nature",
            "year": 2018,
            "lang": "en",
            "tags": ["honey", "bees"],
            "rating": 2,
            "draft": False,
        },
    ),
    DocumentInput(
        "doc-09",
        "Wild yeast lives on grain and fruit; a sourdough starter captures it from the air "
        "and the flour.",
        "Wild yeast",
        {
            "topic": "cooking",
            "year": "2021",
            "lang": "en",
            "tags": ["bread", "yeast"],
            "reviewer": "Ann",
        },
    ),
    DocumentInput(
        "doc-10",
        "Vacuum removes dead tuples so that PostgreSQL can reuse space; autovacuum runs it "
        "in the background.",
        "Vacuum",
        {
            "topic": "databases",
            "year": 2022,
            "lang": "en",
            "tags": ["postgres"],
            "version": 15.5,
            "a": {"b": {"c": 1}},
        },
    ),
    DocumentInput(
        "doc-11",
        "Comets are icy bodies; near the sun they grow a tail that points away from it.",
        "Comets",
        {
            "topic": "astronomy",
            "year": 2017,
            "lang": "es",
            "tags": ["stars", "ice"],
            "rating": 4,
            "draft": True,
        },
    ),
    DocumentInput(
        "doc-12",
        "Tokio schedules async tasks on a thread pool; Rust futures do nothing until polled.",
        "Async Rust",
        {
            "topic": "programming",
            "year": 2022,
            "lang": "en",
            "tags": ["rust", "async"],
            "author": {"name": "Ada", "country": "DE"},
        },
    ),
    DocumentInput(
        "doc-13",
        "Bagels are boiled before they are baked, which gives them a shiny, chewy crust.",
        "bagels",
        {"topic": "cooking", "year": 2020, "lang": "en", "rating": 3, "reviewer": None},
    ),
    DocumentInput(
        "doc-14",
        "A GIN index maps each key of a jsonb document to the rows that hold it, which "
        "serves containment queries.",
        "GIN",
        {
            "topic": "databases",
            "year": 2023,
            "lang": "en",
            "tags": ["postgres", "index", "sql"],
            "a": {"b": {"c": 2}},
            "published": "2023-06-30",
        },
    ),
    DocumentInput(
        "doc-15",
        "Bumblebees fly in cold weather by shivering their flight muscles to warm up.",
        "Bumblebees",
        {"topic": "nature", "year": 2021, "lang": "en", "tags": ["bees"], "rating": 4.5},
    ),
    DocumentInput(
        "doc-16",
        "It's a kitchen rule: weigh the flour, don't scoop it, or the bread comes out dense.",
        "Kitchen's rules",
        {"topic": "it's", "year": 2021, "lang": "en", "tags": ["bread"], "note": "50% off"},
    ),
    DocumentInput(
        "doc-17",
        "Neutron stars pack more mass than the sun into a sphere the size of a city.",
        "Neutron stars",
        {
            "topic": "astronomy",
            "year": 2023,
            "lang": "en",
            "tags": ["stars"],
            "rating": 5.0,
            "author": {"name": "Vera", "country": "US"},
        },
    ),
    DocumentInput(
        "doc-18",
        "Query planners estimate row counts from statistics; a bad estimate picks a slow plan.",
        None,
        {"topic": "databases", "year": 2024, "tags": [], "version": [1, 2]},
    ),
    DocumentInput(
        "doc-19",
        "Ants farm aphids for honeydew and defend them from ladybirds.",
        "Ants",
        {"topic": "nature", "year": 2016, "lang": "en", "draft": None, "tags": ["insects"]},
    ),
    DocumentInput(
        "doc-20",
        "SQL window functions rank rows within partitions without collapsing them.",
        "Window functions",
        {
            "topic": "databases",
            "year": 2020,
            "lang": "en",
            "tags": ["sql"],
            "rating": 4,
            "author": {"name": "Edgar", "country": "UK", "ids": [1, 2]},
        },
    ),
    DocumentInput(
        "doc-21",
        "Pizza dough rests cold for two days; the yeast builds flavour slowly in the fridge.",
        "Pizza",
        {"topic": "cooking", "year": 2024, "lang": "it", "tags": ["bread", "pizza"], "rating": 4.8},
    ),
    DocumentInput(
        "doc-22",
        "The Rust compiler checks lifetimes so references never outlive their data.",
        "Lifetimes",
        {"topic": "programming", "year": 2021, "lang": "en", "tags": ["rust"], "version": 1},
    ),
    DocumentInput(
        "doc-23",
        "Exoplanets are found by the dip in starlight when they cross their star.",
        "Exoplanets",
        {
            "topic": "astronomy",
            "year": 2022,
            "lang": "en",
            "tags": ["stars", "planets"],
            "published": "2022-11-02",
            "draft": False,
        },
    ),
    DocumentInput(
        "doc-24",
        "Replication slots keep WAL until a replica has consumed it, or the disk fills up.",
        "Replication",
        {"topic": "databases", "year": 2023, "lang": "de", "tags": ["postgres"], "reviewer": "Lin"},
    ),
    DocumentInput(
        "doc-25",
        "Bees dance to tell the hive where the flowers are and how far away.",
        "Waggle dance",
        {
            "topic": "nature",
            "year": 2019,
            "lang": "en",
            "tags": ["bees", "honey"],
            "author": {"name": "Karl", "country": "AT"},
        },
    ),
    DocumentInput(
        "doc-26",
        "Focaccia is a flat bread soaked in olive oil, dimpled with fingers before baking.",
        "Focaccia",
        {
            "topic": "cooking",
            "year": 2022,
            "lang": "it",
            "tags": ["bread"],
            "rating": 4.2,
            "draft": True,
        },
    ),
    DocumentInput(
        "doc-27",
        "Partitioned tables split rows by range or list; the planner prunes partitions it "
        "does not need.",
        "Partitioning",
        {
            "topic": "databases",
            "year": 2022,
            "lang": "en",
            "tags": ["postgres", "sql"],
            "version": "16",
        },
    ),
    DocumentInput(
        "doc-28",
        "Black holes bend light around them; the event horizon hides what falls in.",
        "Black holes",
        {"topic": "astronomy", "year": 2019, "lang": "en", "tags": ["stars"], "rating": 4.9},
    ),
    DocumentInput(
        "doc-29",
        "Cargo builds Rust crates and fetches their dependencies from the registry.",
        "Cargo",
        {
            "topic": "programming",
            "year": 2020,
            "lang": "en",
            "tags": ["rust", "tools"],
            "draft": False,
            "reviewer": "Ann",
        },
    ),
    DocumentInput(
        "doc-30",
        "Butterflies taste with their feet and migrate thousands of kilometres.",
        "Butterflies",
        {"topic": "nature", "year": 2024, "lang": "fr", "tags": ["insects"], "rating": 3.9},
    ),
]

# Every operator, on numbers, strings, booleans, null, arrays, nested objects and the
# document columns, alone and combined.
FILTERS: list[Any] = [
    {},
    {"topic": "cooking"},
    {"topic": {"$eq": "databases"}},
    {"topic": {"$ne": "cooking"}},
    {"topic": "it's"},
    {"year": 2021},
    {"year": 2020.0},
    {"year": "2021"},
    {"year": {"$gte": 2020, "$lt": 2023}},
    {"year": {"$gt": 2019.5}},
    {"year": {"$lte": "2022"}},
    {"published": {"$gte": "2023-01-01"}},
    {"version": {"$gt": 1}},
    {"version": {"$lt": "2"}},
    {"rating": {"$gte": 4.5}},
    {"lang": {"$in": ["en", "de"]}},
    {"lang": {"$nin": ["en"]}},
    {"lang": {"$in": []}},
    {"lang": {"$nin": []}},
    {"year": {"$in": [2019, 2024.0, "2021", True, None]}},
    {"draft": True},
    {"draft": False},
    {"draft": {"$ne": True}},
    {"draft": None},
    {"reviewer": None},
    {"reviewer": {"$ne": None}},
    {"reviewer": {"$exists": True}},
    {"reviewer": {"$exists": False}},
    {"tags": {"$contains": "rust"}},
    {"tags": {"$contains": ["rust", "sql"]}},
    {"tags": ["rust", "sql"]},
    {"tags": []},
    {"author": {"$contains": {"country": "FR"}}},
    {"author": {"name": "Ada", "country": "FR"}},
    {"author.name": "Ada"},
    {"author.name": {"$like": "A%"}},
    {"author.name": {"$ilike": "%DA"}},
    {"author.country": {"$in": ["FR", "DE"]}},
    {"author.ids": {"$contains": 2}},
    {"a.b.c": 1},
    {"a.b.c": {"$gt": 0}},
    {"score-card.x_1": {"$exists": True}},
    {"note": {"$like": "50\\%%"}},
    {"title": "Bread"},
    {"title": None},
    {"title": {"$ne": None}},
    {"title": {"$ne": "Bees"}},
    {"title": {"$in": ["Bees", "Bread", "Comets"]}},
    {"title": {"$nin": ["Bees"]}},
    {"title": {"$in": []}},
    {"title": {"$like": "B%"}},
    {"title": {"$ilike": "%E%"}},
    {"title": {"$contains": "ea"}},
    {"title": {"$gt": "M"}},
    {"title": {"$exists": False}},
    {"title": {"$like": "%'%"}},
    {"external_id": "bread"},
    {"external_id": {"$in": ["bees", "rovers", "doc-05"]}},
    {"external_id": {"$ne": "bees"}},
    {"external_id": {"$like": "doc-1%"}},
    {"external_id": {"$lt": "c"}},
    {"external_id": {"$exists": True}},
    {"$or": [{"topic": "cooking"}, {"year": {"$gt": 2022}}]},
    {"$and": [{"topic": "databases"}, {"$not": {"lang": "en"}}]},
    {"$not": {"year": {"$gt": 2020}}},
    {"$not": {"rating": {"$lt": 4}}},
    {"$not": {"author.name": {"$like": "A%"}}},
    {"$not": {"$or": [{"topic": "cooking"}, {"title": None}]}},
    {"topic": "astronomy", "$not": {"rating": {"$lt": 4.5}}},
    {"$or": [{"lang": {"$in": []}}, {"draft": True}]},
    {"$or": [{"tags": {"$contains": "bees"}}, {"title": {"$ilike": "%bread%"}}], "year": 2021},
    {"$and": [{"$or": [{"lang": "en"}, {"lang": "de"}]}, {"$not": {"tags": {"$contains": "sql"}}}]},
    {"year": {"$gte": 2020}, "lang": {"$nin": ["fr", "it"]}, "rating": {"$exists": True}},
]


def _filter_id(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.fixture(scope="module")
def engine(make_database: Callable[[], URL], embedder: HashingEmbedder) -> Iterator[Engine]:
    """A database of this module's own. Other modules add and roll back rows in the shared
    one, which leaves dead entries in its HNSW graph; the first scan past them prunes them,
    so two consecutive approximate scans (Python's, then the function's) could differ.
    Autovacuum is off here, so that the statistics change only when a test says so."""
    engine = create_engine(make_database())
    upgrade(engine, StoreOptions(dim=embedder.dimension, model=embedder.name))
    with engine.begin() as conn:
        for table in ("pgsearch.chunks", "pgsearch.documents"):
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = off)"))
    yield engine
    engine.dispose()


@pytest.fixture
def loaded(
    session: Session, embedder: HashingEmbedder, corpus: list[DocumentInput]
) -> SearchRepository:
    """The shared corpus and thirty documents of varied metadata, in chunks of ~70 chars."""
    DocumentRepository(session, embedder).add(corpus)
    DocumentRepository(session, embedder, chunking=ChunkingOptions(max_chars=70, overlap=0)).add(
        EXTRA
    )
    return SearchRepository(session, embedder)


def _sql(session: Session, statement: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in session.execute(text(statement), params).mappings()]


def sql_search(
    session: Session,
    embedder: HashingEmbedder,
    mode: str,
    query: str,
    k: int,
    filter_: Any,
    rrf_k: int = 60,
    fusion: str = "convex",
    alpha: float = 0.5,
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"q": query, "k": k, "f": json.dumps(filter_), "rrf_k": rrf_k}
    params |= {"fusion": fusion, "alpha": alpha}
    params["v"] = vector_literal(embedder.embed_query(query))
    statement = {"vector": VECTOR_SQL, "text": TEXT_SQL, "hybrid": FUSED_SQL}[mode]
    return _sql(session, statement, **params)


@pytest.fixture(autouse=True)
def _fresh_estimates(engine: Engine) -> None:
    """Python keeps the planner's estimates for a minute; the SQL functions ask every time.
    Tests of this shared store add and roll back rows, which moves the estimates: compare
    routes on fresh estimates."""
    forget_estimates(engine)


def python_search(
    repository: SearchRepository,
    embedder: HashingEmbedder,
    mode: str,
    query: str,
    k: int,
    filter_: Any,
    rrf_k: int = 60,
    fusion: Fusion = "convex",
    alpha: float = 0.5,
) -> list[SearchResult]:
    vector = None if mode == "text" else embedder.embed_query(query)
    return repository.search(
        query,
        k,
        mode,
        filter=filter_,
        query_vector=vector,
        rrf_k=rrf_k,
        fusion=fusion,
        alpha=alpha,
    )


def assert_same(rows: list[dict[str, Any]], results: list[SearchResult], mode: str) -> None:
    assert [r["chunk_id"] for r in rows] == [r.chunk_id for r in results], (mode, rows, results)
    for row, result in zip(rows, results, strict=True):
        assert math.isclose(row["score"], result.score, rel_tol=0, abs_tol=1e-6), (row, result)
        assert (row["external_id"], row["title"], row["position"], row["content"]) == (
            result.external_id,
            result.title,
            result.position,
            result.content,
        )
        assert row["metadata"] == result.metadata
        if mode == "hybrid":
            assert (row["vector_rank"], row["text_rank"]) == (result.vector_rank, result.text_rank)
            for leg in ("vector_score", "text_score"):
                if row[leg] is None or getattr(result, leg) is None:
                    assert row[leg] is None and getattr(result, leg) is None, (row, result)
                else:
                    assert math.isclose(row[leg], getattr(result, leg), abs_tol=1e-9)
        else:
            assert set(row) == {
                "chunk_id",
                "external_id",
                "title",
                "position",
                "content",
                "metadata",
                "score",
            }


def _query(mode: str) -> str:
    return {"vector": VECTOR_QUERY, "text": TEXT_QUERY, "hybrid": HYBRID_QUERY}[mode]


@pytest.mark.parametrize("filter_", FILTERS, ids=_filter_id)
def test_functions_return_the_python_rows(
    session: Session, loaded: SearchRepository, embedder: HashingEmbedder, filter_: Any
) -> None:
    # Both sides route a filter on the planner's estimate of its chunks, which comes from the
    # table's statistics; the rows that earlier tests rolled back grow its pages, and an
    # estimate from stale statistics could cross exact_threshold between the two calls (or
    # differ from the one Python keeps for a minute). Fresh statistics, and no cache:
    session.execute(text("ANALYZE pgsearch.chunks, pgsearch.documents"))
    for mode in ("vector", "text", "hybrid"):
        for k in (5, 40):
            # Rows that earlier tests added and rolled back leave dead entries in the HNSW
            # graph, and the first scan past them prunes them: scan once before comparing, so
            # that both sides see the same graph.
            sql_search(session, embedder, mode, _query(mode), k, filter_)
            forget_estimates(session.get_bind().engine)
            expected = python_search(loaded, embedder, mode, _query(mode), k, filter_)
            rows = sql_search(session, embedder, mode, _query(mode), k, filter_)
            assert_same(rows, expected, mode)


def _ids(session: Session, filter_: Any) -> set[int]:
    """Every chunk ``filter_`` selects (vector search of a constant vector, k = 1000)."""
    rows = _sql(
        session, VECTOR_SQL, v="[" + ",".join(["1"] * 64) + "]", k=1000, f=json.dumps(filter_)
    )
    return {row["chunk_id"] for row in rows}


def test_filters_select_what_the_language_says(session: Session, loaded: SearchRepository) -> None:
    """The comparison above is not vacuous: the filters select different, non-empty sets, and
    the negations match chunks without the key."""
    everything = _ids(session, {})
    assert len(everything) > 60
    sizes = {_filter_id(f): len(_ids(session, f)) for f in FILTERS}
    assert {name for name, size in sizes.items() if size == 0} == {
        _filter_id({"lang": {"$in": []}}),
        _filter_id({"title": {"$in": []}}),
    }
    assert len(set(sizes.values())) > 20
    # Each selects what the filter language's plain Python oracle selects.
    chunks = _sql(
        session,
        "SELECT c.id, c.metadata, d.external_id, d.title FROM pgsearch.chunks c"
        " JOIN pgsearch.documents d ON d.id = c.document_id",
    )
    for filter_ in FILTERS:
        expected = {chunk["id"] for chunk in chunks if matches(chunk, filter_)}
        assert _ids(session, filter_) == expected, filter_
    english = _ids(session, {"lang": "en"})
    assert _ids(session, {"lang": {"$nin": ["en"]}}) == everything - english
    assert _ids(session, {"lang": {"$ne": "en"}}) == everything - english
    assert _ids(session, {"lang": {"$nin": []}}) == everything
    recent = _ids(session, {"year": {"$gt": 2020}})
    assert _ids(session, {"$not": {"year": {"$gt": 2020}}}) == everything - recent
    assert _ids(session, {"year": 2020}) == _ids(session, {"year": 2020.0})
    assert _ids(session, {"year": "2021"}).isdisjoint(_ids(session, {"year": 2021}))
    assert _ids(session, {"draft": None}) < _ids(session, {"draft": {"$exists": True}})


@pytest.mark.parametrize(
    "mode,query", [("vector", VECTOR_QUERY), ("text", "bread"), ("hybrid", HYBRID_QUERY)]
)
@pytest.mark.parametrize("k", [1, 3, 251, 1000])
def test_k_rrf_k_and_alpha_match_python(
    session: Session,
    loaded: SearchRepository,
    embedder: HashingEmbedder,
    mode: str,
    query: str,
    k: int,
) -> None:
    for rrf_k in (1, 60) if mode == "hybrid" else (60,):
        expected = python_search(loaded, embedder, mode, query, k, {}, rrf_k, "rrf")
        rows = sql_search(session, embedder, mode, query, k, {}, rrf_k, "rrf")
        assert_same(rows, expected, mode)
    for alpha in (0.0, 0.3, 1.0) if mode == "hybrid" else ():
        expected = python_search(loaded, embedder, mode, query, k, {}, 60, "convex", alpha)
        rows = sql_search(session, embedder, mode, query, k, {}, 60, "convex", alpha)
        assert_same(rows, expected, mode)
    if mode == "vector":
        rows = _sql(
            session, VECTOR_SQL, v=vector_literal(embedder.embed_query(query)), k=1000, f="{}"
        )
        expected = python_search(loaded, embedder, mode, query, 1000, {})
        assert_same(rows, expected, mode)


def test_hybrid_ranks_are_null_where_a_leg_misses(
    session: Session, loaded: SearchRepository, embedder: HashingEmbedder
) -> None:
    rows = sql_search(session, embedder, "hybrid", "MVCC", 10, {}, fusion="rrf")
    assert rows[0]["external_id"] == "postgres"
    assert rows[0]["vector_rank"] is not None and rows[0]["text_rank"] == 1
    assert all(r["text_rank"] is None and r["text_score"] is None for r in rows[1:])
    assert len(rows) == 10  # the vector leg fills the rest
    score = 1 / (60 + rows[0]["vector_rank"]) + 1 / (60 + 1)
    assert rows[0]["score"] == pytest.approx(score, abs=1e-12)

    convex = sql_search(session, embedder, "hybrid", "MVCC", 10, {})
    assert convex[0]["external_id"] == "postgres" and convex[0]["text_score"] > 0
    # The keyword leg's only chunk normalises to 1: half the score comes from it alone.
    assert convex[0]["score"] >= 0.5
    assert all(r["score"] <= 0.5 for r in convex[1:])


# -- the filter compiler ---------------------------------------------------------------------


def test_filter_clause_keeps_values_out_of_the_sql(session: Session) -> None:
    filter_ = {
        "topic": "x' OR 'a'='a",
        "title": {"$like": "%'; DROP TABLE pgsearch.chunks; --"},
        "external_id": {"$in": ["secret-1", "secret-2"]},
        "n.m": {"$gt": 123456789},
        "$or": [{"tags": {"$contains": ["secret-3"]}}, {"x--": {"$ne": [4, 5]}}],
    }
    clause, args = session.execute(
        text("SELECT clause, args FROM pgsearch.filter_clause(CAST(:f AS jsonb))"),
        {"f": json.dumps(filter_)},
    ).one()
    for value in ("x'", "DROP", "secret", "123456789", "[4, 5]"):
        assert value not in clause
    assert "'x--'" in clause and "($1)[" in clause
    assert len(args) == 7  # topic, title, two ids, n.m, tags, x--: one per value
    assert {"topic": "x' OR 'a'='a"} in args and 123456789 in args
    assert session.execute(text("SELECT clause, args FROM pgsearch.filter_clause(NULL)")).one() == (
        "true",
        [],
    )
    assert (
        session.execute(text("SELECT clause FROM pgsearch.filter_clause('{}')")).scalar() == "true"
    )


def test_hostile_values_are_plain_values(
    session: Session, loaded: SearchRepository, embedder: HashingEmbedder
) -> None:
    before = session.execute(text("SELECT count(*) FROM pgsearch.chunks")).scalar()
    for filter_ in (
        {"topic": "x' OR 'a'='a"},
        {"title": {"$like": "%' OR '1'='1"}},
        {"external_id": {"$in": ["'); DELETE FROM pgsearch.chunks; --"]}},
        {"x--": "--"},
    ):
        for mode in ("vector", "text", "hybrid"):
            assert sql_search(session, embedder, mode, _query(mode), 10, filter_) == []
    assert session.execute(text("SELECT count(*) FROM pgsearch.chunks")).scalar() == before


# Each bad filter, with a part of the message that names what is wrong.
BAD_FILTERS: list[tuple[Any, str]] = [
    ({"a": {"$foo": 1}}, "unknown filter operator '$foo' on 'a'"),
    ({"$foo": [{"a": 1}]}, "unknown filter operator '$foo' at the top"),
    ({"$and": []}, "$and needs a non-empty list"),
    ({"$or": {"a": 1}}, "$or needs a non-empty list"),
    ({"$and": [1]}, "$and item must be a JSON object, got 1"),
    ({"$not": [{"a": 1}]}, '$not must be a JSON object, got [{"a": 1}]'),
    ([{"a": 1}], "the filter must be a JSON object"),
    ({"year": {"$gt": True}}, "filter 'year' $gt: compares with a number or a string, got true"),
    ({"year": {"$lte": [1]}}, "filter 'year' $lte: compares with"),
    ({"year": {"$gte": None}}, "filter 'year' $gte: compares with"),
    ({"year": {"$in": 5}}, "filter 'year' $in: needs a list of values, got 5"),
    ({"year": {"$nin": [[1]]}}, "filter 'year' $nin: list strings, numbers, booleans or null"),
    ({"title": 5}, "filter 'title' $eq: title is text"),
    ({"external_id": None}, "filter 'external_id' $eq: external_id is text"),
    ({"title": {"$in": ["a", 1]}}, "filter 'title' $in: title is text, list strings"),
    ({"title": {"$gt": 1}}, "filter 'title' $gt: compares with a string, got 1"),
    ({"title": {"$contains": 1}}, "filter 'title' $contains: title is text"),
    ({"tags": {"$contains": None}}, "filter 'tags' $contains: needs a value to look for"),
    ({"tags": {"$exists": 1}}, "filter 'tags' $exists: needs true or false, got 1"),
    ({"tags": {"$like": ["a"]}}, "filter 'tags' $like: needs a LIKE pattern string"),
    ({"tags": {"$ilike": None}}, "filter 'tags' $ilike: needs a LIKE pattern string"),
    ({"a": {"$eq": 1, "b": 2}}, "filter 'a' mixes operators and plain keys"),
    ({"a'b": 1}, 'filter key "a\'b" is not a field'),
    ({'a"b': 1}, 'filter key "a\\"b" is not a field'),
    ({".": 1}, 'filter key "." is not a field'),
    ({"..": 1}, 'filter key ".." is not a field'),
    ({"a.": 1}, 'filter key "a." is not a field'),
    ({".a": 1}, 'filter key ".a" is not a field'),
    ({"a..b": 1}, 'filter key "a..b" is not a field'),
    ({"": 1}, 'filter key "" is not a field'),
    ({"a b": 1}, 'filter key "a b" is not a field'),
    ({"a;drop table pgsearch.chunks": 1}, 'filter key "a;drop table pgsearch.chunks"'),
    ({"metadata->>'x'": 1}, "filter key \"metadata->>'x'\" is not a field"),
    ({"x) OR (true": 1}, 'filter key "x) OR (true" is not a field'),
    ({"clé": 1}, 'filter key "clé" is not a field'),
    ({"a\\b": 1}, 'filter key "a\\\\b" is not a field'),
    ({"$or": [{"a": 1}, {"b": {"$in": "x"}}]}, "filter 'b' $in: needs a list of values"),
    ({"$not": {"$not": {"k": {"$exists": "yes"}}}}, "filter 'k' $exists: needs true or false"),
    ({f"k{i}": i for i in range(1001)}, "the filter has more than 1000 conditions"),
    ({"$and": [{f"k{i}": i} for i in range(1000)]}, "the filter has more than 1000 conditions"),
]


def _sqlstate(session: Session, statement: str, **params: Any) -> tuple[str, str]:
    """Run ``statement`` expecting an error; return its SQLSTATE and message."""
    with pytest.raises(DBAPIError) as caught, session.begin_nested():
        session.execute(text(statement), params)
    orig = caught.value.orig
    assert isinstance(orig, psycopg.Error) and orig.diag.sqlstate is not None
    return orig.diag.sqlstate, str(orig.diag.message_primary)


def _state(session: Session) -> tuple[Any, ...]:
    return tuple(
        session.execute(
            text(
                "SELECT (SELECT count(*) FROM pgsearch.chunks),"
                " (SELECT count(*) FROM pgsearch.documents),"
                " (SELECT md5(string_agg(c.metadata::text, ',' ORDER BY c.id))"
                "  FROM pgsearch.chunks c),"
                " current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"
            )
        ).one()
    )


@pytest.mark.parametrize(
    "filter_,message", BAD_FILTERS, ids=[str(i) for i in range(len(BAD_FILTERS))]
)
def test_bad_filters_are_refused(
    session: Session,
    loaded: SearchRepository,
    embedder: HashingEmbedder,
    filter_: Any,
    message: str,
) -> None:
    with pytest.raises(InvalidSearchError):  # the Python search refuses it too
        loaded.search("bread", 5, "vector", filter=filter_)
    before = _state(session)
    for mode in ("vector", "text", "hybrid"):
        params = {"q": "bread", "k": 5, "f": json.dumps(filter_), "rrf_k": 60}
        params["v"] = vector_literal(embedder.embed_query("bread"))
        statement = {"vector": VECTOR_SQL, "text": TEXT_SQL, "hybrid": HYBRID_SQL}[mode]
        state, text_ = _sqlstate(session, statement, **params)
        assert state == "22023"
        assert message in text_
    assert _state(session) == before


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    (VECTOR_SQL, {"k": 0}, "k=0 is out of range: use 1 to 1000"),
    (VECTOR_SQL, {"k": 1001}, "k=1001 is out of range: use 1 to 1000"),
    (VECTOR_SQL, {"k": None}, "k must be an integer from 1 to 1000, got NULL"),
    (TEXT_SQL, {"k": -1}, "k=-1 is out of range"),
    (HYBRID_SQL, {"k": 0}, "k=0 is out of range"),
    (HYBRID_SQL, {"k": 1001}, "k=1001 is out of range: use 1 to 1000"),
    (HYBRID_SQL, {"rrf_k": 0}, "rrf_k=0 is out of range: use 1 to 1000000"),
    (HYBRID_SQL, {"rrf_k": None}, "rrf_k must be an integer"),
    (TEXT_SQL, {"q": None}, "text search needs a query text"),
    (HYBRID_SQL, {"q": None}, "hybrid search needs a query text"),
    (TEXT_SQL, {"q": " \t\n "}, "the query is empty"),
    (HYBRID_SQL, {"q": ""}, "the query is empty"),
    (TEXT_SQL, {"q": "x" * 10_001}, "the query has 10,001 characters, more than 10,000"),
    (HYBRID_SQL, {"q": "word " * 257}, "the query has 257 words, more than 256"),
    (VECTOR_SQL, {"v": "[1,2,3]"}, "the query embedding has 3 dimensions, the store holds 64"),
    (HYBRID_SQL, {"v": "[" + ",".join(["0.5"] * 65) + "]"}, "has 65 dimensions"),
    (VECTOR_SQL, {"v": None}, "the query embedding is NULL"),
    (HYBRID_SQL, {"v": None}, "the query embedding is NULL"),
    (VECTOR_SQL, {"f": '"{}"'}, 'the filter must be a JSON object, got "{}"'),
]


@pytest.mark.parametrize(
    "statement,params,message", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))]
)
def test_bad_calls_are_refused(
    session: Session,
    loaded: SearchRepository,
    embedder: HashingEmbedder,
    statement: str,
    params: dict[str, Any],
    message: str,
) -> None:
    values = {"q": "bread", "k": 5, "f": "{}", "rrf_k": 60}
    values["v"] = vector_literal(embedder.embed_query("bread"))
    before = _state(session)
    state, text_ = _sqlstate(session, statement, **{**values, **params})
    assert state == "22023"
    assert message in text_
    assert _state(session) == before


def test_python_refuses_what_the_functions_refuse(
    loaded: SearchRepository, embedder: HashingEmbedder
) -> None:
    vector = embedder.embed_query("bread")
    for k in (0, 1001):
        with pytest.raises(InvalidSearchError, match="out of range"):
            loaded.search("bread", k, "vector", query_vector=vector)
    with pytest.raises(InvalidSearchError, match="out of range"):
        loaded.search("bread", 1001, "hybrid", query_vector=vector)
    with pytest.raises(InvalidSearchError, match="rrf_k"):
        loaded.search("bread", 5, "hybrid", query_vector=vector, rrf_k=0)
    with pytest.raises(InvalidSearchError, match="empty"):
        loaded.search(" ", 5, "text")


def test_negations_and_empty_objects(
    session: Session, loaded: SearchRepository, embedder: HashingEmbedder
) -> None:
    """The filter language's rules where a naive compiler strays, in SQL and in Python alike.

    * ``$ne`` is the exact negation of ``$eq`` and matches rows without the key, also for an
      array or object operand (``!=`` would be NULL without the key).
    * An empty object inside a filter has no condition, like the empty filter: true.
    """
    query = [1.0] * 64

    def ids(filter_: Any) -> set[int]:
        rows = _sql(session, VECTOR_SQL, v=vector_literal(query), k=1000, f=json.dumps(filter_))
        found = {row["chunk_id"] for row in rows}
        python = loaded.search(query_vector=query, k=1000, filter=filter_, exact=True)
        assert {r.chunk_id for r in python} == found, filter_
        return found

    everything = ids({})
    chunks = _sql(
        session,
        "SELECT c.id, c.metadata, d.external_id, d.title FROM pgsearch.chunks c"
        " JOIN pgsearch.documents d ON d.id = c.document_id",
    )
    for filter_ in (
        {"tags": {"$ne": ["rust", "sql"]}},
        {"author": {"$ne": {"name": "Ada", "country": "FR"}}},
        {"$and": [{}]},
        {"$or": [{}, {"topic": "cooking"}]},
        {"$not": {}},
        {"$not": {"$and": [{}]}},
    ):  # the oracle agrees
        assert ids(filter_) == {chunk["id"] for chunk in chunks if matches(chunk, filter_)}
    for value in (["rust", "sql"], {"name": "Ada", "country": "FR"}, []):
        key = "author" if isinstance(value, dict) else "tags"
        equal = ids({key: value})
        assert equal
        assert ids({key: {"$ne": value}}) == everything - equal
        assert ids({"$not": {key: value}}) == everything - equal
    assert ids({"$and": [{}]}) == everything
    assert ids({"$or": [{}, {"topic": "cooking"}]}) == everything
    assert ids({"$not": {}}) == set()
    assert ids({"$not": {"$and": [{}]}}) == set()


# -- routing, on a store of its own -----------------------------------------------------------

ROUTING_DIM = 8
ROUTING_CHUNKS = 12_000


@pytest.fixture(scope="module")
def big_engine(make_database: Callable[[], URL]) -> Iterator[Engine]:
    """A store whose planner expects more than 10,000 chunks for a broad filter."""
    engine = create_engine(make_database())
    upgrade(engine, StoreOptions(dim=ROUTING_DIM, model=f"hashing-{ROUTING_DIM}"))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pgsearch.documents (external_id, title, content, metadata,"
                " content_hash)"
                " SELECT 'doc-' || d, 'Document ' || d, 'document ' || d, '{}', md5(d::text)"
                " FROM generate_series(1, 120) AS d"
            )
        )
        conn.execute(
            text(
                "INSERT INTO pgsearch.chunks (document_id, position, content, content_hash,"
                " metadata, embedding)"
                " SELECT 1 + i / 100, i % 100, 'chunk ' || i, md5(i::text),"
                "        jsonb_build_object('bucket', i % 1000, 'half', i % 2)"
                "        || CAST(CASE WHEN i % 1000 = 999 THEN '{\"rare\": true}' ELSE '{}' END"
                "                AS jsonb),"
                "        CAST(ARRAY(SELECT sin(i * (j + 1) * 0.37) + 0.01 * j"
                "                   FROM generate_series(0, :dim - 1) AS j) AS vector)"
                " FROM generate_series(0, :n - 1) AS i"
            ),
            {"dim": ROUTING_DIM, "n": ROUTING_CHUNKS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE pgsearch.chunks"))
        conn.execute(text("ANALYZE pgsearch.documents"))
    yield engine
    engine.dispose()


@pytest.fixture
def big_session(big_engine: Engine) -> Iterator[Session]:
    with big_engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session
        transaction.rollback()


class Messages:
    """The server's DEBUG and NOTICE messages on a session's connection."""

    def __init__(self, session: Session) -> None:
        self.lines: list[str] = []
        dbapi: Any = session.connection().connection.dbapi_connection
        dbapi.add_notice_handler(self._handle)
        session.execute(text("SET LOCAL client_min_messages = debug1"))

    def _handle(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        self.lines.append(str(diagnostic.message_primary))

    def take(self, prefix: str = "pgsearch.") -> list[str]:
        taken = [line for line in self.lines if line.startswith(prefix)]
        self.lines.clear()
        return taken


QUERY_VECTOR = [0.3, -0.2, 0.9, 0.1, -0.5, 0.4, 0.05, -0.7]


def _routed(session: Session, function: str, filter_: Any, k: int = 10) -> list[dict[str, Any]]:
    vector = vector_literal(QUERY_VECTOR)
    if function == "vector":
        return _sql(session, VECTOR_SQL, v=vector, k=k, f=json.dumps(filter_))
    return _sql(session, HYBRID_SQL, q="zebra", v=vector, k=k, f=json.dumps(filter_), rrf_k=60)


def _exact_ids(session: Session, contains: dict[str, Any], k: int) -> list[int]:
    """The ``k`` chunks nearest to QUERY_VECTOR whose metadata contains ``contains``, by a
    sequential scan (an expression the HNSW index cannot serve)."""
    return list(
        session.scalars(
            text(
                "SELECT id FROM pgsearch.chunks WHERE metadata @> CAST(:contains AS jsonb)"
                " ORDER BY (embedding <=> CAST(:v AS vector)) + 0, id LIMIT :k"
            ),
            {"contains": json.dumps(contains), "v": vector_literal(QUERY_VECTOR), "k": k},
        )
    )


@pytest.mark.parametrize("function", ["vector", "hybrid"])
def test_routing_matches_python(big_session: Session, function: str) -> None:
    messages = Messages(big_session)
    repository = SearchRepository(big_session)
    cases = [
        ({"bucket": 7}, "exact"),  # 12 chunks
        ({"bucket": {"$ne": 7}}, "hnsw"),  # 11,988 chunks
        ({"bucket": {"$exists": True}}, "hnsw"),  # no statistics: 99.5 %
        ({}, "hnsw"),
    ]
    for filter_, path in cases:
        rows = _routed(big_session, function, filter_)
        lines = messages.take()
        assert len(lines) == 1, lines  # the path, and no fallback
        assert lines[0].startswith(f"pgsearch.{function}_search: {path} path ("), lines
        expected = repository.search(
            "zebra" if function == "hybrid" else None,
            10,
            function,
            filter=filter_,
            query_vector=QUERY_VECTOR,
        )
        assert expected.path == path
        if filter_:
            found = re.search(r"the planner expects (\d+) chunks to pass the filter", lines[0])
            assert found, lines
            estimate = int(found.group(1))
            assert estimate == expected.estimated_rows  # the same EXPLAIN estimate as Python
            assert (estimate <= 10_000) == (path == "exact")
        else:
            assert lines[0].endswith("(no filter)")
        assert_same(rows, expected, function)
        assert len(rows) == 10
    # The exact path is exact.
    rows = _routed(big_session, function, {"bucket": 7}, k=12)
    assert [r["chunk_id"] for r in rows] == _exact_ids(big_session, {"bucket": 7}, 12)


@pytest.mark.parametrize("mode", ["text", "bm25"])
def test_text_functions_route_filters_as_python_does(big_session: Session, mode: str) -> None:
    """No filter: MaxScore top k; a selective filter: its chunks scored; a broad one: every
    chunk holding a word ranked, then filtered. Each path returns Python's rows."""
    repository = SearchRepository(big_session)
    statement = TEXT_SQL if mode == "text" else TEXT_SQL.replace("text_search", "bm25_search")
    estimates: list[int | None] = []
    for filter_ in ({"bucket": 7}, {"bucket": {"$ne": 7}}, {"half": 1}, {}):
        rows = _sql(big_session, statement, q="chunk 1007 7", k=10, f=json.dumps(filter_))
        expected = repository.search("chunk 1007 7", 10, mode, filter=filter_)
        assert [r["chunk_id"] for r in rows] == [r.chunk_id for r in expected], filter_
        assert [r["score"] for r in rows] == pytest.approx([r.score for r in expected])
        assert len(rows) == 10
        estimates.append(expected.estimated_rows)
    # Both sides of exact_threshold (10,000) were taken: scored alone, ranked then filtered.
    assert (
        min(e for e in estimates if e is not None)
        <= 10_000
        < max(e for e in estimates if e is not None)
    ), estimates


@pytest.mark.parametrize("function", ["vector", "hybrid"])
def test_hnsw_path_that_comes_back_short_runs_the_exact_path(
    big_session: Session, function: str
) -> None:
    """Never short: the planner expects ~12,000 chunks (no statistics on ``metadata -> 'rare'``),
    12 match, and the HNSW scan gives up after 100 tuples: the exact path runs, as in Python."""
    messages = Messages(big_session)
    big_session.execute(text("SET LOCAL hnsw.max_scan_tuples = 100"))
    filter_ = {"rare": {"$exists": True}}
    rows = _routed(big_session, function, filter_)
    lines = messages.take()
    assert lines[0].startswith(f"pgsearch.{function}_search: hnsw path"), lines
    assert "hnsw path found" in lines[1] and "of 10 rows, exact path" in lines[1], lines
    assert [r["chunk_id"] for r in rows] == _exact_ids(big_session, {"rare": True}, 10)
    expected = SearchRepository(big_session).search(
        "zebra" if function == "hybrid" else None,
        10,
        function,
        filter=filter_,
        query_vector=QUERY_VECTOR,
    )
    assert expected.path == "exact"
    assert_same(rows, expected, function)


def test_plans_of_each_path(big_session: Session) -> None:
    """auto_explain shows the statements the functions run: the exact path never touches the
    HNSW index, the HNSW path scans it."""
    try:
        with big_session.begin_nested():
            big_session.execute(text("LOAD 'auto_explain'"))
    except DBAPIError as exc:
        pytest.skip(f"auto_explain cannot be loaded here: {exc.orig}")
    for setting in (
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_nested_statements = on",
        "auto_explain.log_level = notice",
    ):
        big_session.execute(text(f"SET LOCAL {setting}"))
    messages = Messages(big_session)
    for function in ("vector", "hybrid"):
        for filter_, uses_index in (
            ({"bucket": 7}, False),
            ({}, True),
            ({"bucket": {"$exists": True}}, True),
        ):
            _routed(big_session, function, filter_)
            plans = [line for line in messages.take("duration") if "pgsearch.chunks c" in line]
            legs = [plan for plan in plans if "embedding" in plan and "EXPLAIN" not in plan]
            assert legs, plans
            assert all(("ix_chunks_embedding_hnsw" in plan) == uses_index for plan in legs)


# -- the revision ------------------------------------------------------------------------------

PUBLIC_FUNCTIONS = {
    "filter_clause(jsonb)",
    "bm25_search(text,integer,jsonb,double precision,double precision)",
    "hybrid_search(text,vector,integer,jsonb,integer,text,double precision,bigint)",
    "text_search(text,integer,jsonb)",
    "vector_search(vector,integer,jsonb)",
}


def _functions(conn: psycopg.Connection[Any]) -> set[str]:
    return {
        row[0].removeprefix("pgsearch.")
        for row in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace = to_regnamespace('pgsearch')"
        )
    }


def test_downgrade_drops_the_functions_and_upgrade_recreates_them(
    make_database: Callable[[], URL],
    libpq: Callable[[URL], str],
) -> None:
    url = make_database()
    engine = create_engine(url)
    upgrade(engine, StoreOptions(dim=3, model="m"))
    with psycopg.connect(libpq(url)) as conn:
        functions = _functions(conn)
        assert functions >= PUBLIC_FUNCTIONS
        assert "keyword_query(regconfig,text)" in functions
        described = conn.execute(
            "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'pgsearch'::regnamespace"
            " AND obj_description(p.oid, 'pg_proc') IS NULL"
            # pg_trgm, when pgsearch installed it in its schema, is not pgsearch's to describe
            " AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
        ).fetchone()
        assert described == (1,)  # keyword_query, from 0001
        volatility = conn.execute(
            "SELECT provolatile, prosecdef, l.lanname FROM pg_proc p"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE p.oid ="
            " 'pgsearch.hybrid_search(text,vector,integer,jsonb,integer,text,float8,int8)'"
            "::regprocedure"
        ).fetchone()
        assert volatility == ("v", False, "plpgsql")

    downgrade(engine, "0001_create_store")
    with psycopg.connect(libpq(url)) as conn:
        assert _functions(conn) == {"keyword_query(regconfig,text)"}
        assert conn.execute("SELECT version_num FROM pgsearch_alembic_version").fetchone() == (
            "0001_create_store",
        )

    upgrade(engine)
    with psycopg.connect(libpq(url)) as conn:
        assert _functions(conn) == functions
        conn.execute(
            "INSERT INTO pgsearch.documents (external_id, content, metadata, content_hash)"
            " VALUES ('a', 'apples and pears', '{\"fruit\": true}', 'h')"
        )
        conn.execute(
            "INSERT INTO pgsearch.chunks (document_id, position, content, content_hash,"
            " metadata, embedding)"
            " SELECT id, 0, content, 'h', metadata, '[1,0,0]' FROM pgsearch.documents"
        )
        rows = conn.execute(
            "SELECT external_id, score FROM pgsearch.vector_search('[1,0,0]', 5,"
            " '{\"fruit\": true}')"
        ).fetchall()
        assert rows == [("a", 1.0)]
        rows = conn.execute(
            "SELECT external_id, vector_rank, text_rank"
            " FROM pgsearch.hybrid_search('pears', '[0,1,0]')"
        ).fetchall()
        assert rows == [("a", 1, 1)]
        conn.rollback()
    engine.dispose()


def test_downgrade_refuses_to_drop_functions_that_user_objects_use(
    make_database: Callable[[], URL],
    libpq: Callable[[URL], str],
) -> None:
    url = make_database()
    engine = create_engine(url)
    upgrade(engine, StoreOptions(dim=3, model="m"))
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute(
            "CREATE VIEW public.my_search AS SELECT * FROM pgsearch.text_search('apples', 5, '{}')"
        )
    with pytest.raises(DBAPIError, match="depend"):
        downgrade(engine, "0001_create_store")
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        assert _functions(conn) >= PUBLIC_FUNCTIONS  # nothing was dropped
        conn.execute("DROP VIEW public.my_search")
    downgrade(engine, "base")
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute("SELECT to_regnamespace('pgsearch')").fetchone() == (None,)
    engine.dispose()


@pytest.mark.parametrize("distance,text_config", [("l2", "simple"), ("inner_product", "english")])
def test_other_distances_and_text_configurations(
    make_database: Callable[[], URL],
    embedder: HashingEmbedder,
    corpus: list[DocumentInput],
    distance: str,
    text_config: str,
) -> None:
    engine = create_engine(make_database())
    options = StoreOptions(dim=64, model=embedder.name, distance=distance, text_config=text_config)
    upgrade(engine, options)
    with Session(engine) as session:
        DocumentRepository(session, embedder).add(corpus)
        DocumentRepository(
            session, embedder, chunking=ChunkingOptions(max_chars=70, overlap=0)
        ).add(EXTRA)
        repository = SearchRepository(session, embedder)
        for filter_ in ({}, {"topic": "cooking"}, {"$not": {"year": {"$gt": 2020}}}):
            for mode in ("vector", "text", "hybrid"):
                expected = python_search(repository, embedder, mode, _query(mode), 10, filter_)
                rows = sql_search(session, embedder, mode, _query(mode), 10, filter_)
                assert rows, (filter_, mode)
                assert_same(rows, expected, mode)
        # The store's text configuration: "simple" does not stem "rises" to "rise".
        stemmed = session.execute(text("SELECT * FROM pgsearch.bm25_search('rising', 10)")).all()
        assert bool(stemmed) == (text_config == "english")
    engine.dispose()
