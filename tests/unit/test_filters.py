"""The filter parser and compiler, without a database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from pgsearch import InvalidFilterError
from pgsearch.search.filters import compile_filter, parse_filter


@pytest.mark.parametrize(
    "where,message",
    [
        ({"section": {"$near": 1}}, "unknown filter operator '$near' on 'section'"),
        ({"$nor": []}, "unknown filter operator '$nor' at the top"),
        ({"year": {"$gt": True}}, "filter 'year' $gt: compares with a number or a string"),
        ({"year": {"$in": 5}}, "filter 'year' $in: needs a list of values"),
        ({"year": {"$in": [[1]]}}, "list strings, numbers, booleans or null"),
        ({"tags": {"$exists": "yes"}}, "needs true or false"),
        ({"tags": {"$contains": None}}, "needs a value to look for"),
        ({"title": {"$like": 5}}, "needs a LIKE pattern string"),
        ({"title": 5}, "title is text, compare it with a string"),
        ({"external_id": {"$in": [1]}}, "external_id is text, list strings"),
        ({"external_id": {"$gt": 1}}, "compares with a string"),
        ({"year": float("nan")}, "is not a JSON number"),
        ({"a'; DROP TABLE x; --": 1}, "is not a field"),
        ({'a"b': 1}, "is not a field"),
        ({"a..b": 1}, "is not a field"),
        ({".": 1}, "is not a field"),
        ({"": 1}, "is not a field"),
        ({"k": "\x00"}, "NUL"),
        ({"k": {"$eq": 1, "plain": 2}}, "mixes operators and plain keys"),
        ({"$and": []}, "$and needs a non-empty list of filters"),
        ({"$or": {"a": 1}}, "$or needs a non-empty list of filters"),
        ({"$not": [1]}, "$not must be a JSON object"),
        ({"$and": [{"year": {"$lt": []}}]}, "filter 'year' $lt"),
        ([1, 2], "the filter must be a JSON object"),
        ("{not json", "not valid JSON"),
        ({"k": {"$in": list(range(1001))}}, None),  # large but one condition: accepted
    ],
)
def test_malformed_filters_name_the_offending_part(where: Any, message: str | None) -> None:
    if message is None:
        parse_filter(where)
        return
    with pytest.raises(InvalidFilterError) as raised:
        parse_filter(where)
    assert message in str(raised.value)


def test_too_many_conditions() -> None:
    with pytest.raises(InvalidFilterError, match="more than 1000 conditions"):
        parse_filter({"$and": [{f"k{i}": i} for i in range(1001)]})


def test_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert parse_filter("{}") is None


def _sql(where: Any) -> tuple[str, dict[str, Any]]:
    compiled = compile_filter(parse_filter(where)).compile(dialect=postgresql.dialect())
    return str(compiled), dict(compiled.params)


def test_values_are_bound_parameters() -> None:
    text, params = _sql({"section": "x'; DROP TABLE y; --", "title": {"$like": "%'--"}})
    assert "DROP" not in text and "'--" not in text
    assert any("DROP" in str(value) for value in params.values())


def test_equality_uses_containment_and_ranges_a_typed_comparison() -> None:
    text, _ = _sql({"section": "fonts", "lang": {"$in": ["en", "de"]}})
    assert text.count("@>") == 3
    text, _ = _sql({"year": {"$gte": 2020}})
    assert "jsonb_typeof" in text and ">=" in text
