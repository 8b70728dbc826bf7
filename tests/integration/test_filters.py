"""Filters on real PostgreSQL: every operator, combinations, and random filters against Python."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import URL, create_engine, text

from pgsearch import DocumentInput, HashingEmbedder, InvalidFilterError, Store
from pgsearch.types import vector_literal
from tests.filter_reference import matches

WORDS = ["alpha", "beta", "gamma", "delta"]


def _metadata(rng: random.Random, i: int) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if rng.random() < 0.8:
        metadata["section"] = rng.choice(WORDS)
    if rng.random() < 0.7:
        metadata["year"] = rng.choice([2019, 2020, 2021, 2021.5, 2022])
    if rng.random() < 0.5:
        metadata["tags"] = rng.sample(WORDS, rng.randint(0, 3))
    if rng.random() < 0.3:
        metadata["flag"] = rng.choice([True, False, None, 1, 0, "true"])
    if rng.random() < 0.4:
        metadata["author"] = {"name": rng.choice(["Ann", "bob", "Cy"]), "age": rng.randint(20, 40)}
    if rng.random() < 0.2:
        metadata["year"] = rng.choice(["2020-01-05", "2021-11-30"])  # same key, other type
    return metadata


ROWS = [
    {
        "external_id": f"doc-{i:03d}",
        "title": None if i % 7 == 0 else f"{random.Random(i).choice(WORDS).title()} report {i}",
        "metadata": _metadata(random.Random(i), i),
    }
    for i in range(120)
]


@pytest.fixture(scope="module")
def store(make_database: Callable[[], URL]) -> Iterator[Store]:
    with Store(create_engine(make_database()), HashingEmbedder(64)) as store:
        store.migrate()
        store.upsert(
            DocumentInput(
                row["external_id"], f"text of {row['external_id']}", row["title"], row["metadata"]
            )
            for row in ROWS
        )
        store.optimize()
        yield store


def _found(store: Store, where: Any, *, exact: bool = True) -> set[str]:
    results = store.search(
        query_vector=HashingEmbedder(64).embed_query("report"),
        k=1000,
        filter=where,
        exact=exact,
    )
    ids = [r.external_id for r in results]
    assert len(ids) == len(set(ids))
    return set(ids)


def _expected(where: Any) -> set[str]:
    return {row["external_id"] for row in ROWS if matches(row, where)}


FILTERS: list[dict[str, Any]] = [
    {"section": "alpha"},
    {"section": {"$eq": "beta"}, "year": 2021},
    {"year": 2021.0},
    {"year": {"$ne": 2021}},
    {"year": {"$gt": 2020, "$lte": 2022}},
    {"year": {"$lt": 2021}},
    {"year": {"$gte": "2021-01-01"}},
    {"section": {"$in": ["alpha", "gamma"]}},
    {"section": {"$in": []}},
    {"section": {"$nin": ["alpha", "gamma"]}},
    {"section": {"$nin": []}},
    {"tags": {"$contains": "beta"}},
    {"tags": {"$contains": ["beta", "gamma"]}},
    {"tags": ["alpha"]},
    {"tags": []},
    {"author": {"$contains": {"name": "Ann"}}},
    {"author": {"$eq": {"name": "bob", "age": 30}}},
    {"author.name": "Cy"},
    {"author.age": {"$gte": 30}},
    {"author.name": {"$like": "C%"}},
    {"author.name": {"$ilike": "b%"}},
    {"flag": True},
    {"flag": 1},
    {"flag": None},
    {"flag": {"$exists": True}},
    {"flag": {"$exists": False}},
    {"title": {"$exists": False}},
    {"title": None},
    {"title": {"$ne": "Alpha report 1"}},
    {"title": {"$like": "Alpha%"}},
    {"title": {"$ilike": "%REPORT 1_"}},
    {"title": {"$contains": "eta rep"}},
    {"title": {"$gt": "D"}},
    {"external_id": "doc-005"},
    {"external_id": {"$in": ["doc-001", "doc-002", "nope"]}},
    {"external_id": {"$nin": ["doc-001"]}, "section": "delta"},
    {"$or": [{"section": "alpha"}, {"year": {"$gt": 2021}}]},
    {"$and": [{"section": "alpha"}, {"$not": {"year": 2020}}]},
    {"$not": {"year": {"$gt": 2020}}},
    {"$not": {"$or": [{"tags": {"$contains": "alpha"}}, {"title": {"$exists": False}}]}},
    {"$or": [{"$and": [{"section": "beta"}, {"flag": False}]}, {"external_id": "doc-010"}]},
    # Negations of array / object equality match documents without the key.
    {"tags": {"$ne": ["alpha"]}},
    {"author": {"$ne": {"name": "bob", "age": 30}}},
    # An empty object is no condition, wherever it stands.
    {"$and": [{}]},
    {"$or": [{}, {"section": "alpha"}]},
    {"$not": {}},
]


@pytest.mark.parametrize("where", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_each_filter_selects_what_python_selects(store: Store, where: dict[str, Any]) -> None:
    assert _found(store, where) == _expected(where)


def test_filters_apply_to_every_mode(store: Store) -> None:
    where = {"section": "alpha", "year": {"$gte": 2021}}
    expected = _expected(where)
    assert expected
    for mode in ("text", "hybrid"):
        results = store.search("report text", k=1000, mode=mode, filter=where)
        assert {r.external_id for r in results} <= expected
    hybrid = store.search("report text", k=10, mode="hybrid", filter=where)
    assert len(hybrid) == min(10, len(expected))


SCALARS = st.one_of(
    st.sampled_from([*WORDS, "2020-01-05", "Ann", "bob"]),
    st.sampled_from([2019, 2020, 2021, 2021.5, 2022, 0, 1, True, False, None]),
)
KEYS = st.sampled_from(["section", "year", "tags", "flag", "author.name", "author.age", "nope"])


def _conditions() -> st.SearchStrategy[dict[str, Any]]:
    comparison = st.tuples(
        st.sampled_from(["$lt", "$lte", "$gt", "$gte"]),
        st.one_of(st.sampled_from([*WORDS, "2020-06-01"]), st.integers(2018, 2023)),
    )
    operator = st.one_of(
        st.tuples(
            st.sampled_from(["$eq", "$ne"]),
            st.one_of(SCALARS, st.lists(st.sampled_from(WORDS), max_size=2)),
        ),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(SCALARS, max_size=3)),
        comparison,
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$contains"), st.sampled_from(WORDS)),
        st.tuples(st.sampled_from(["$like", "$ilike"]), st.sampled_from(["a%", "%A", "_e%"])),
    )
    return st.builds(lambda key, op: {key: {op[0]: op[1]}}, KEYS, operator)


FILTER_TREES = st.recursive(
    st.one_of(_conditions(), st.just({})),
    lambda children: st.one_of(
        st.builds(lambda parts: {"$and": parts}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda parts: {"$or": parts}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda part: {"$not": part}, children),
    ),
    max_leaves=6,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=FILTER_TREES)
def test_random_filters_match_python(store: Store, where: dict[str, Any]) -> None:
    expected = _expected(where)
    assert _found(store, where) == expected
    # The SQL functions compile filters in plpgsql: the same language, the same rows.
    assert _found_by_sql_function(store, where) == expected


def _found_by_sql_function(store: Store, where: Any) -> set[str]:
    with store.session() as session:
        rows = session.execute(
            text(
                "SELECT external_id FROM pgsearch.vector_search("
                "CAST(:v AS vector), 1000, CAST(:f AS jsonb))"
            ),
            {
                "v": vector_literal(HashingEmbedder(64).embed_query("report")),
                "f": json.dumps(where),
            },
        ).scalars()
        return set(rows)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.dictionaries(
        st.text(max_size=12),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=5,
        ),
        max_size=3,
    )
)
def test_hostile_filters_give_a_result_or_a_filter_error(
    store: Store, where: dict[str, Any]
) -> None:
    # Random keys (quotes, dots, SQL, control characters) and values: never a driver error.
    with contextlib.suppress(InvalidFilterError):
        _found(store, where)


OPERATORS = ["$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$exists", "$contains"]
JSON_VALUES = [None, True, 0, 2021.5, "alpha", ["alpha", 1], {"name": "Ann"}, [], {}]


@pytest.mark.parametrize("key", ["section", "tags", "author", "title", "external_id"])
@pytest.mark.parametrize("operator", [*OPERATORS, "$like", "$ilike"])
def test_every_operator_with_every_json_type(store: Store, key: str, operator: str) -> None:
    for value in JSON_VALUES:
        where = {key: {operator: value}}
        try:
            found = _found(store, where)
        except InvalidFilterError:
            continue  # a clear refusal; the store is unchanged either way
        assert found == _expected(where), where
