"""The filter language: parsed once into a small tree, compiled into SQLAlchemy clauses.

A filter is a JSON object over document metadata and the columns ``external_id`` and ``title``::

    {"section": "fonts"}                                  # equality; a dict is an AND
    {"year": {"$gte": 2020, "$lt": 2025}, "lang": {"$in": ["en", "de"]}}
    {"$or": [{"tags": {"$contains": "rust"}}, {"title": {"$ilike": "%postgres%"}}]}

Operators: ``$eq $ne $lt $lte $gt $gte $in $nin $exists $contains $like $ilike`` on a field,
``$and $or`` over lists of filters, ``$not`` over one filter. A metadata key is one or more
path segments joined by dots (``author.name`` reaches ``{"author": {"name": ...}}``); each
segment is letters, digits, ``_`` or ``-``. Keys are validated here and values are bound
parameters, so neither can change the statement's meaning.

Semantics, the same in Python and in the SQL functions (``pgsearch.filter_clause``):

* Missing keys never match a positive condition; ``$ne``, ``$nin`` and ``$not`` are the exact
  negations of ``$eq``, ``$in`` and their operand, so they match rows without the key.
* ``$eq`` / ``$in`` compare JSON values: numbers by value (``1`` equals ``1.0``), booleans are not
  numbers, ``null`` matches a key holding JSON null. Served by the GIN index on ``metadata``
  (``@>`` containment).
* ``$lt $lte $gt $gte`` compare numbers with numbers and strings with strings (ISO dates sort as
  strings); a value of another JSON type does not match. A B-tree expression index
  ``((metadata -> 'year'))`` serves them.
* ``$contains`` on a metadata key: the value (an array or object) contains the operand (a
  scalar is an element: ``{"tags": {"$contains": "rust"}}``). On ``title`` / ``external_id``:
  substring.
* ``$like`` / ``$ilike``: SQL ``LIKE`` patterns (``%``, ``_``, backslash escapes) on string values.
* ``$exists``: ``true`` when the key is present (even holding null); on ``title``: not null.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Text,
    and_,
    bindparam,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from pgsearch.exceptions import InvalidFilterError
from pgsearch.models import Chunk, Document

__all__ = [
    "COLUMNS",
    "MAX_FILTER_SIZE",
    "FilterNode",
    "compile_filter",
    "metadata_path",
    "parse_filter",
]

COLUMNS = ("external_id", "title")
COMPARISONS = {"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}
FIELD_OPERATORS = frozenset(
    {"$eq", "$ne", "$in", "$nin", "$exists", "$contains", "$like", "$ilike", *COMPARISONS}
)
# Bounds a filter's size: each condition is a clause for the planner to plan.
MAX_FILTER_SIZE = 1000
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")

JSONValue: TypeAlias = Any


@dataclass(frozen=True)
class Condition:
    """One operator applied to one field.

    Attributes:
        field: ``("metadata", *path)`` or ``(column,)`` for ``external_id`` / ``title``.
        operator: The ``$`` operator.
        value: The operand, already checked for the operator.
    """

    field: tuple[str, ...]
    operator: str
    value: JSONValue

    @property
    def is_column(self) -> bool:
        return self.field[0] != "metadata"


@dataclass(frozen=True)
class Junction:
    """``$and`` / ``$or`` of parts, or ``$not`` of one part."""

    operator: str
    parts: tuple[FilterNode, ...]


FilterNode: TypeAlias = Condition | Junction


def _describe(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_json(value: object, where: str) -> None:
    """A JSON value PostgreSQL's jsonb can hold: finite numbers, str keys, no NUL."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidFilterError(f"{where}: {value!r} is not a JSON number")
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidFilterError(f"{where}: strings cannot hold a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidFilterError(f"{where}: a string is not valid Unicode") from None
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(item, where)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidFilterError(f"{where}: object keys must be strings")
            _check_json(key, where)
            _check_json(item, where)
        return
    raise InvalidFilterError(f"{where}: {type(value).__name__} is not a JSON value")


def _field(key: str) -> tuple[str, ...]:
    if key in COLUMNS:
        return (key,)
    segments = key.split(".")
    if not key or not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise InvalidFilterError(
            f"filter key {_describe(key)} is not a field: use a metadata key made of letters, "
            "digits, '_' or '-' (dots for nested keys, e.g. author.name), or external_id / title"
        )
    return ("metadata", *segments)


def metadata_path(key: str) -> tuple[str, ...]:
    """The path segments of a metadata key (``author.name`` -> ``("author", "name")``).

    Raises:
        InvalidFilterError: The key is not a valid metadata key.
    """
    field = _field(key)
    if field[0] != "metadata":
        raise InvalidFilterError(f"{key!r} is a column of pgsearch.documents, not a metadata key")
    return field[1:]


def _condition(key: str, field: tuple[str, ...], operator: str, value: JSONValue) -> Condition:
    where = f"filter {key!r} {operator}"
    column = field[0] != "metadata"
    if operator not in FIELD_OPERATORS:
        known = " ".join(sorted(FIELD_OPERATORS))
        raise InvalidFilterError(f"unknown filter operator {operator!r} on {key!r}: use {known}")
    _check_json(value, where)
    if operator in ("$eq", "$ne"):
        if column and not (isinstance(value, str) or (value is None and key == "title")):
            raise InvalidFilterError(f"{where}: {key} is text, compare it with a string")
    elif operator in ("$in", "$nin"):
        if not isinstance(value, list | tuple):
            raise InvalidFilterError(f"{where}: needs a list of values, got {_describe(value)}")
        if column and not all(isinstance(item, str) for item in value):
            raise InvalidFilterError(f"{where}: {key} is text, list strings")
        if not column and not all(
            v is None or isinstance(v, str | bool) or _is_number(v) for v in value
        ):
            raise InvalidFilterError(f"{where}: list strings, numbers, booleans or null")
        value = tuple(value)
    elif operator in COMPARISONS:
        if not (isinstance(value, str) or (_is_number(value) and not column)):
            kinds = "a string" if column else "a number or a string"
            raise InvalidFilterError(f"{where}: compares with {kinds}, got {_describe(value)}")
    elif operator == "$exists":
        if not isinstance(value, bool):
            raise InvalidFilterError(f"{where}: needs true or false, got {_describe(value)}")
    elif operator == "$contains":
        if column and not isinstance(value, str):
            raise InvalidFilterError(f"{where}: {key} is text, look for a string")
        if value is None:
            raise InvalidFilterError(f"{where}: needs a value to look for, got null")
    elif not isinstance(value, str):  # $like, $ilike
        raise InvalidFilterError(f"{where}: needs a LIKE pattern string, got {_describe(value)}")
    return Condition(field, operator, value)


def _field_conditions(key: str, value: JSONValue) -> list[FilterNode]:
    field = _field(key)
    if isinstance(value, Mapping) and any(str(name).startswith("$") for name in value):
        if not all(isinstance(name, str) and name.startswith("$") for name in value):
            raise InvalidFilterError(
                f"filter {key!r} mixes operators and plain keys: write "
                f'{{"{key}": {{"$eq": {{...}}}}}} to match an object'
            )
        if not value:
            raise InvalidFilterError(f"filter {key!r} has no condition")
        return [_condition(key, field, op, operand) for op, operand in value.items()]
    return [_condition(key, field, "$eq", value)]


def _parts(operator: str, value: JSONValue, size: list[int]) -> tuple[FilterNode, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidFilterError(f"{operator} needs a non-empty list of filters")
    return tuple(_parse(part, size, f"{operator} item") for part in value)


def _parse(value: JSONValue, size: list[int], where: str) -> FilterNode:
    if not isinstance(value, Mapping):
        raise InvalidFilterError(f"{where} must be a JSON object, got {_describe(value)}")
    nodes: list[FilterNode] = []
    for key, operand in value.items():
        size[0] += 1
        if size[0] > MAX_FILTER_SIZE:
            raise InvalidFilterError(f"the filter has more than {MAX_FILTER_SIZE} conditions")
        if not isinstance(key, str):
            raise InvalidFilterError(f"filter keys must be strings, got {_describe(key)}")
        if key in ("$and", "$or"):
            nodes.append(Junction(key, _parts(key, operand, size)))
        elif key == "$not":
            nodes.append(Junction("$not", (_parse(operand, size, "$not"),)))
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"unknown filter operator {key!r} at the top of a filter: use $and, $or, $not,"
                " or a field name"
            )
        else:
            nodes.extend(_field_conditions(key, operand))
    if len(nodes) == 1:
        return nodes[0]
    return Junction("$and", tuple(nodes))


def parse_filter(value: Mapping[str, JSONValue] | str | None) -> FilterNode | None:
    """Check a filter and return its tree, or ``None`` for no filter (``None`` or ``{}``).

    Args:
        value: A filter object, or its JSON text.

    Raises:
        InvalidFilterError: Naming the part of the filter that is wrong.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidFilterError(f"the filter is not valid JSON ({exc})") from None
    if isinstance(value, Mapping) and not value:
        return None
    return _parse(value, [0], "the filter")


# -- compilation -------------------------------------------------------------------------------

_chunks = Chunk.__table__
_documents = Document.__table__


def _jsonb(value: JSONValue) -> ColumnElement[Any]:
    return bindparam(None, value, type_=JSONB)


def _nested(path: tuple[str, ...], value: JSONValue) -> dict[str, Any]:
    """``("a", "b"), v`` -> ``{"a": {"b": v}}``: the containment that finds ``v`` at ``a.b``."""
    for segment in reversed(path):
        value = {segment: value}
    return value  # type: ignore[no-any-return]


def _path(path: tuple[str, ...]) -> ColumnElement[Any]:
    """``metadata -> 'a' -> 'b'``; validated segments, rendered as literals so that an
    expression index on ``(metadata -> 'a')`` matches."""
    expression: ColumnElement[Any] = _chunks.c.metadata
    for segment in path:
        expression = expression.op("->", return_type=JSONB)(literal(segment, literal_execute=True))
    return expression


def _jsonb_type(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.jsonb_typeof(expression)


def _document_ids(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Chunks whose document satisfies ``condition`` (a clause on ``documents``)."""
    return _chunks.c.document_id.in_(select(_documents.c.id).where(condition).correlate(None))


def _column_clause(condition: Condition) -> ColumnElement[bool]:
    column = _documents.c[condition.field[0]]
    op, value = condition.operator, condition.value
    if op in ("$eq", "$ne"):
        clause = column.is_(None) if value is None else column == value
        return _document_ids(clause) if op == "$eq" else not_(_document_ids(clause))
    if op in ("$in", "$nin"):
        if not value:
            return false() if op == "$in" else true()
        clause = _document_ids(column.in_(list(value)))
        return clause if op == "$in" else not_(clause)
    if op in COMPARISONS:
        return _document_ids(column.op(COMPARISONS[op], is_comparison=True)(value))
    if op == "$exists":
        return _document_ids(column.is_not(None)) if value else _document_ids(column.is_(None))
    if op == "$contains":
        return _document_ids(func.strpos(column, value) > 0)
    if op == "$like":
        return _document_ids(column.like(value))
    return _document_ids(column.ilike(value))  # $ilike


def _metadata_clause(condition: Condition) -> ColumnElement[bool]:
    path, op, value = condition.field[1:], condition.operator, condition.value
    metadata = _chunks.c.metadata
    if op in ("$eq", "$ne", "$in", "$nin"):
        values = value if op in ("$in", "$nin") else (value,)
        matches = [_equals(path, item) for item in values]
        clause = or_(*matches) if matches else false()
        if op in ("$eq", "$in"):
            return clause
        if any(isinstance(item, list | tuple | Mapping) for item in values):
            # Array or object equality is NULL where the key is missing, and $ne matches
            # rows without the key.
            return clause.is_not(true())
        return not_(clause)  # containment is never NULL: a plain NOT keeps the estimate
    if op == "$contains":
        element = [value] if not isinstance(value, list | tuple | Mapping) else value
        return metadata.op("@>", is_comparison=True)(_jsonb(_nested(path, element)))
    target = _path(path)
    if op in COMPARISONS:
        kind = "number" if _is_number(value) else "string"
        return and_(
            _jsonb_type(target) == kind,
            target.op(COMPARISONS[op], is_comparison=True)(_jsonb(value)),
        )
    if op == "$exists":
        return target.is_not(None) if value else target.is_(None)
    text_value = _path_text(path)
    pattern = text_value.like(value) if op == "$like" else text_value.ilike(value)
    return and_(_jsonb_type(target) == "string", pattern)


def _path_text(path: tuple[str, ...]) -> ColumnElement[Any]:
    """``metadata -> 'a' ->> 'b'``: the value at ``path`` as text."""
    expression: ColumnElement[Any] = _chunks.c.metadata
    for index, segment in enumerate(path):
        last = index == len(path) - 1
        expression = expression.op("->>" if last else "->", return_type=Text if last else JSONB)(
            literal(segment, literal_execute=True)
        )
    return expression


def _equals(path: tuple[str, ...], value: JSONValue) -> ColumnElement[bool]:
    """JSON equality at ``path``: containment for scalars (the GIN index serves it), and exact
    equality for arrays and objects, which containment would match partially."""
    if isinstance(value, list | tuple | Mapping):
        return _path(path) == _jsonb(value)
    return _chunks.c.metadata.op("@>", is_comparison=True)(_jsonb(_nested(path, value)))


def compile_filter(node: FilterNode | None) -> ColumnElement[bool]:
    """The ``WHERE`` clause of a parsed filter over ``pgsearch.chunks``.

    Conditions on ``external_id`` and ``title`` become ``document_id IN (SELECT ...)`` so that
    every search leg stays on the chunks table (and its HNSW index).
    """
    if node is None:
        return true()
    if isinstance(node, Condition):
        return _column_clause(node) if node.is_column else _metadata_clause(node)
    parts = [compile_filter(part) for part in node.parts]
    if not parts:  # an empty object: no condition
        return true()
    if node.operator == "$and":
        return and_(*parts)
    if node.operator == "$or":
        return or_(*parts)
    return _negation(parts[0])


def _negation(clause: ColumnElement[bool]) -> ColumnElement[bool]:
    """``NOT``, two-valued: a comparison on a missing key is NULL, and coalesce makes
    ``{"$not": {"year": {"$gt": 2020}}}`` match rows without a year, as Python's ``not``."""
    return not_(func.coalesce(clause, false(), type_=Boolean))
