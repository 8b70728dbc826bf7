"""A plain Python evaluation of the filter language, the oracle of the filter tests.

It follows the semantics stated in :mod:`pgsearch.search.filters` without sharing its code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_MISSING = object()


def _lookup(row: Mapping[str, Any], key: str) -> Any:
    if key in ("external_id", "title"):
        return row[key]
    value: Any = row["metadata"]
    for segment in key.split("."):
        if not isinstance(value, dict) or segment not in value:
            return _MISSING
        value = value[segment]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return float(a) == float(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _contains(container: Any, item: Any) -> bool:
    """jsonb ``@>`` for the values these tests generate (arrays hold scalars only)."""
    if isinstance(container, dict):
        return isinstance(item, dict) and all(
            k in container and _contains(container[k], v) for k, v in item.items()
        )
    if isinstance(container, list):
        if isinstance(item, list):
            return all(any(_contains(element, it) for element in container) for it in item)
        return False
    return not isinstance(item, list | dict) and _json_equal(container, item)


def _like(value: str, pattern: str, flags: int = 0) -> bool:
    regex, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if char == "%" else "." if char == "_" else re.escape(char)
        i += 1
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _condition(row: Mapping[str, Any], key: str, op: str, operand: Any) -> bool:
    value = _lookup(row, key)
    column = key in ("external_id", "title")
    if op == "$eq":
        if column:
            return value == operand
        return value is not _MISSING and _json_equal(value, operand)
    if op == "$ne":
        return not _condition(row, key, "$eq", operand)
    if op == "$in":
        return any(_condition(row, key, "$eq", item) for item in operand)
    if op == "$nin":
        return not _condition(row, key, "$in", operand)
    if op == "$exists":
        present = value is not None if column else value is not _MISSING
        return present == operand
    if value is _MISSING or value is None:
        return False
    if op in ("$lt", "$lte", "$gt", "$gte"):
        same = (_number(value) and _number(operand)) or (
            isinstance(value, str) and isinstance(operand, str)
        )
        if not same:
            return False
        return {
            "$lt": value < operand,
            "$lte": value <= operand,
            "$gt": value > operand,
            "$gte": value >= operand,
        }[op]
    if op == "$contains":
        if column:
            return operand in value
        if not isinstance(value, list | dict):
            return False
        return _contains(value, operand if isinstance(operand, list | dict) else [operand])
    if not isinstance(value, str):
        return False
    return _like(value, operand, re.IGNORECASE if op == "$ilike" else 0)


def matches(row: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether ``row`` (``metadata``, ``external_id``, ``title``) satisfies the filter."""
    for key, operand in node.items():
        if key == "$and":
            ok = all(matches(row, part) for part in operand)
        elif key == "$or":
            ok = any(matches(row, part) for part in operand)
        elif key == "$not":
            ok = not matches(row, operand)
        elif isinstance(operand, dict) and operand and all(k.startswith("$") for k in operand):
            ok = all(_condition(row, key, op, value) for op, value in operand.items())
        else:
            ok = _condition(row, key, "$eq", operand)
        if not ok:
            return False
    return True
