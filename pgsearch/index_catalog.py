"""The vector indexes a database has, read from PostgreSQL's catalog, and the one search uses.

:func:`vector_indexes` lists the HNSW and IVFFlat indexes of a table as the server knows them
(``pg_index``, ``pg_class``, ``pg_am``, ``pg_opclass``): method, storage (the operator class's
type: ``vector``, ``halfvec`` or ``bit``), distance, build parameters, partial predicate,
validity and size. :func:`search_index` picks the index a search of ``pgsearch.chunks`` can use:
valid, not partial, on ``embedding`` spelled as :func:`pgsearch.vector_index.index_expression`
spells it, serving the store's distance (a ``bit`` index serves any, through re-ranking); the
newest when several qualify (a rebuild that changes storage briefly has two).

Searches read it through :func:`cached_search_index`, once per engine per
:data:`SEARCH_INDEX_TTL_SECONDS`, not once per call. Staleness: when another process creates,
drops or rebuilds the index, searches of this process may use the old index's expression for up
to a minute. Their results stay correct (scores are always the exact distance; a query whose
expression no index serves scans the table), they may only be slower, or, for a ``bit``
expression, approximate as the ``bit`` index was. pgsearch's own migrations and bulk loads call
:func:`forget_search_index`, so the process that changes the index never waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast, get_args
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, text

from pgsearch.types import Distance
from pgsearch.vector_index import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    IndexMethod,
    Storage,
    describe_operator_class,
)

__all__ = [
    "DEFAULT_LISTS",
    "SEARCH_INDEX_TTL_SECONDS",
    "VectorIndexInfo",
    "cached_search_index",
    "find_vector_index",
    "forget_search_index",
    "search_index",
    "vector_indexes",
]

# pgvector's default IVFFlat lists when an index is built without the parameter.
DEFAULT_LISTS = 100
SEARCH_INDEX_TTL_SECONDS = 60.0

_DEFAULTS: dict[str, dict[str, int]] = {
    "hnsw": {"m": DEFAULT_M, "ef_construction": DEFAULT_EF_CONSTRUCTION},
    "ivfflat": {"lists": DEFAULT_LISTS},
}

# One row per pgvector index (hnsw or ivfflat) of one table; its first key column or expression.
_INDEXES = text(
    """
    SELECT ci.oid AS oid, ci.relname AS name, n.nspname AS schema, ct.relname AS table_name,
           am.amname AS method, opc.opcname AS opclass, ci.reloptions AS reloptions,
           col.attname AS column_name,
           pg_get_expr(i.indexprs, i.indrelid) AS expression,
           pg_get_expr(i.indpred, i.indrelid) AS predicate,
           i.indisvalid AS valid, pg_relation_size(ci.oid) AS size_bytes,
           nullif(ci.reltuples, -1) AS rows,
           nullif(ia.atttypmod, -1) AS dimensions
    FROM pg_index AS i
    JOIN pg_class AS ci ON ci.oid = i.indexrelid
    JOIN pg_class AS ct ON ct.oid = i.indrelid
    JOIN pg_namespace AS n ON n.oid = ct.relnamespace
    JOIN pg_am AS am ON am.oid = ci.relam
    JOIN pg_opclass AS opc ON opc.oid = i.indclass[0]
    JOIN pg_attribute AS ia ON ia.attrelid = ci.oid AND ia.attnum = 1
    LEFT JOIN pg_attribute AS col ON col.attrelid = i.indrelid AND col.attnum = i.indkey[0]
    WHERE am.amname IN ('hnsw', 'ivfflat') AND n.nspname = :schema AND ct.relname = :table
    ORDER BY ci.oid DESC
    """
)


@dataclass(frozen=True)
class VectorIndexInfo:
    """A pgvector index as the catalog describes it.

    Attributes:
        name: Index name.
        schema: Schema of the index and its table.
        table: Table name.
        method: ``"hnsw"`` or ``"ivfflat"``.
        opclass: Operator class, e.g. ``halfvec_cosine_ops``.
        storage: What the index holds, from the operator class: ``vector``, ``halfvec`` or
            ``bit`` (``sparsevec`` for a sparse index, which search never uses).
        distance: The distance it orders by; ``None`` for one pgsearch has no
            :class:`~pgsearch.types.Distance` for (``bit``'s Hamming and Jaccard, ``l1``).
        parameters: Build parameters by pgvector's names, its defaults filled in (HNSW ``m``
            16, ``ef_construction`` 64; IVFFlat ``lists`` 100).
        column: The indexed column, or ``None`` for an expression index.
        expression: The indexed expression as the server prints it (``None`` for a column).
        predicate: A partial index's ``WHERE``, as the server prints it, or ``None``.
        valid: ``pg_index.indisvalid``: false while a concurrent build runs, or after it failed.
        size_bytes: ``pg_relation_size`` of the index.
        dimensions: Dimensions of the indexed values, when the type says (``vector(384)``).
        oid: The index's OID: higher is newer (until OIDs wrap around).
        rows: Rows in the index as of its build or the table's last VACUUM or ANALYZE
            (``pg_class.reltuples``); ``None`` before either.
    """

    name: str
    schema: str
    table: str
    method: str
    opclass: str
    storage: str
    distance: Distance | None
    parameters: dict[str, int] = field(hash=False)
    column: str | None
    expression: str | None
    predicate: str | None
    valid: bool
    size_bytes: int
    dimensions: int | None
    oid: int
    rows: int | None = None

    def operation_arguments(self) -> dict[str, Any]:
        """The index arguments of ``op.create_vector_index`` that build this index again
        (``method``, ``storage``, its parameters, ``distance``, ``where``; not the names)."""
        arguments: dict[str, Any] = {"method": self.method, "storage": self.storage}
        arguments.update(self.parameters)
        if self.distance is not None:
            arguments["distance"] = self.distance.value
        if self.predicate is not None:
            arguments["where"] = self.predicate
        return arguments

    @property
    def lists(self) -> int | None:
        """IVFFlat's lists (``None`` for HNSW)."""
        return self.parameters.get("lists") if self.method == "ivfflat" else None


def _parameters(method: str, reloptions: list[str] | None) -> dict[str, int]:
    parameters = dict(_DEFAULTS.get(method, {}))
    for option in reloptions or []:
        key, _, value = option.partition("=")
        if key in ("m", "ef_construction", "lists"):
            parameters[key] = int(value)
    return parameters


def _info(row: Any) -> VectorIndexInfo:
    opclass: str = row.opclass
    storage, distance = describe_operator_class(opclass)
    return VectorIndexInfo(
        name=row.name,
        schema=row.schema,
        table=row.table_name,
        method=row.method,
        opclass=opclass,
        storage=storage,
        distance=distance,
        parameters=_parameters(row.method, row.reloptions),
        column=row.column_name,
        expression=row.expression,
        predicate=row.predicate,
        valid=bool(row.valid),
        size_bytes=int(row.size_bytes),
        dimensions=None if row.dimensions is None else int(row.dimensions),
        oid=int(row.oid),
        rows=None if row.rows is None else int(row.rows),
    )


def vector_indexes(
    connection: Connection, schema: str = "pgsearch", table: str = "chunks"
) -> list[VectorIndexInfo]:
    """The HNSW and IVFFlat indexes of ``schema.table``, newest first.

    Args:
        connection: Where to read the catalog (any transaction; nothing is written).
        schema: The table's schema.
        table: The table's name.
    """
    rows = connection.execute(_INDEXES, {"schema": schema, "table": table}).all()
    return [_info(row) for row in rows]


def find_vector_index(
    connection: Connection, name: str, schema: str = "pgsearch", table: str = "chunks"
) -> VectorIndexInfo | None:
    """The pgvector index ``name`` of ``schema.table``, or ``None``."""
    return next((i for i in vector_indexes(connection, schema, table) if i.name == name), None)


def _expected_expression(storage: str, dimensions: int) -> str | None:
    """How the server prints :func:`~pgsearch.vector_index.index_expression` of ``embedding``."""
    if storage == "halfvec":
        return f"(embedding)::halfvec({dimensions})"
    if storage == "bit":
        return f"(binary_quantize(embedding))::bit({dimensions})"
    return None


def serves_search(index: VectorIndexInfo, distance: Distance, dimensions: int) -> bool:
    """Whether a search of ``pgsearch.chunks.embedding`` by ``distance`` can use ``index``."""
    if not index.valid or index.predicate is not None:
        return False
    if index.method not in get_args(IndexMethod) or index.storage not in get_args(Storage):
        return False
    if index.storage == "bit":
        if index.opclass != "bit_hamming_ops":
            return False
    elif index.distance is not distance:
        return False
    if index.storage == "vector":
        return index.column == "embedding" and index.expression is None
    return index.expression == _expected_expression(index.storage, dimensions)


def search_index(
    connection: Connection, distance: Distance, dimensions: int
) -> VectorIndexInfo | None:
    """The index searches of ``pgsearch.chunks`` use, read now; ``None`` when there is none.

    Valid, not partial, on ``embedding`` as pgsearch spells each storage, serving ``distance``;
    the newest (highest OID) when several do.

    Args:
        connection: Where to read the catalog.
        distance: The store's distance.
        dimensions: The store's embedding dimension.
    """
    for index in vector_indexes(connection):
        if serves_search(index, distance, dimensions):
            return index
    return None


_CACHE: WeakKeyDictionary[Engine, tuple[float, VectorIndexInfo | None]] = WeakKeyDictionary()


def cached_search_index(
    connection: Connection, distance: Distance, dimensions: int
) -> VectorIndexInfo | None:
    """:func:`search_index`, remembered per engine for :data:`SEARCH_INDEX_TTL_SECONDS`.

    See the module docstring for what a stale entry means.
    """
    now = time.monotonic()
    hit = _CACHE.get(connection.engine)
    if hit is not None and now - hit[0] < SEARCH_INDEX_TTL_SECONDS:
        return hit[1]
    index = search_index(connection, distance, dimensions)
    _CACHE[connection.engine] = (now, index)
    return index


def forget_search_index(engine: Engine) -> None:
    """Drop the remembered search index of ``engine`` (after its vector indexes changed)."""
    _CACHE.pop(engine, None)


def index_method(index: VectorIndexInfo) -> IndexMethod:
    """The index's method, typed (``index`` serves search: see :func:`serves_search`)."""
    return cast(IndexMethod, index.method)


def index_storage(index: VectorIndexInfo) -> Storage:
    """The index's storage, typed (``index`` serves search: see :func:`serves_search`)."""
    return cast(Storage, index.storage)
