"""What a pgvector index is: method, storage, distance and build parameters, checked, as DDL.

One definition serves every place that builds a vector index: the store's first migration, the
Alembic operations (:mod:`pgsearch.migrations.operations`), ``pgsearch index create`` and the
models. The defaults live here and nowhere else.

Storage. An index can hold the column's vectors as they are (``vector``), cast to half
precision (``halfvec``: half the memory, and the only way to index more than 2,000 dimensions),
or reduced to one bit per dimension (``bit``, pgvector's ``binary_quantize``: 1/32 of the
vector's size, searched by Hamming distance; pgsearch re-ranks an over-fetched candidate set by
the exact distance). A compressed index indexes an expression of the column, and a query uses it
only when it orders by that same expression: :func:`index_expression` is the one spelling of it,
shared by the DDL and by search.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, cast, get_args

from psycopg import sql

from pgsearch.exceptions import InvalidIndexError
from pgsearch.types import Distance

__all__ = [
    "DEFAULT_DISTANCE",
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_M",
    "MAX_DIMENSIONS",
    "STORE_INDEX_NAME",
    "IndexMethod",
    "Storage",
    "VectorIndex",
    "default_lists",
    "describe_operator_class",
    "index_expression",
    "operator_class",
]

IndexMethod = Literal["hnsw", "ivfflat"]
Storage = Literal["vector", "halfvec", "bit"]

# Cosine: what sentence-transformers and OpenAI embeddings are trained for.
DEFAULT_DISTANCE = Distance.COSINE
# pgvector's own defaults for HNSW: recall@10 about 0.96 on 60k MiniLM vectors at ef_search 40.
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 64
# The HNSW index every store is created with (revision 0001_create_store).
STORE_INDEX_NAME = "ix_chunks_embedding_hnsw"

# The most dimensions pgvector's HNSW and IVFFlat indexes take, per storage.
MAX_DIMENSIONS: dict[Storage, int] = {"vector": 2_000, "halfvec": 4_000, "bit": 64_000}
# pgvector's ranges for the build parameters.
M_RANGE = (2, 100)
EF_CONSTRUCTION_RANGE = (4, 1_000)
LISTS_RANGE = (1, 32_768)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_OPS = {Distance.COSINE: "cosine", Distance.L2: "l2", Distance.INNER_PRODUCT: "ip"}


def operator_class(storage: Storage, distance: Distance) -> str:
    """The operator class of an index on ``storage`` that serves ``distance``.

    A ``bit`` index orders by Hamming distance whatever the store's distance is: its candidates
    are re-ranked by the exact distance.
    """
    if storage == "bit":
        return "bit_hamming_ops"
    return f"{storage}_{_OPS[distance]}_ops"


def describe_operator_class(opclass: str) -> tuple[str, Distance | None]:
    """The storage and distance of a pgvector operator class: :func:`operator_class` read back.

    ``halfvec_l2_ops`` is ``("halfvec", Distance.L2)``; a distance pgsearch does not search by
    (``bit_hamming_ops``'s Hamming, Jaccard, L1) is ``None``.
    """
    storage, _, rest = opclass.removesuffix("_ops").partition("_")
    if storage not in ("vector", "halfvec"):
        return storage, None
    return storage, next((d for d, name in _OPS.items() if name == rest), None)


def index_expression(column: str, storage: Storage, dimensions: int) -> sql.Composable:
    """The indexed expression of ``column`` for ``storage``, spelled as search must spell it."""
    source = sql.Identifier(column)
    if storage == "vector":
        return source
    if storage == "halfvec":
        return sql.SQL("({}::halfvec({}))").format(source, sql.Literal(dimensions))
    return sql.SQL("(binary_quantize({})::bit({}))").format(source, sql.Literal(dimensions))


def default_lists(rows: int) -> int:
    """IVFFlat ``lists`` for a table of ``rows`` rows, by pgvector's guidance.

    ``rows / 1000`` up to a million rows and ``sqrt(rows)`` beyond, at least 1 and at most
    32,768 (pgvector's limit).
    """
    lists = rows // 1000 if rows <= 1_000_000 else math.isqrt(rows)
    return max(LISTS_RANGE[0], min(LISTS_RANGE[1], lists))


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or len(value.encode()) > 63:
        raise InvalidIndexError(
            f"{what} {value!r} is not a plain SQL name (letters, digits, _ and $, at most 63 "
            "bytes, not starting with a digit)"
        )


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidIndexError(f"{name}={value!r} is out of pgvector's range {low}..{high}")


@dataclass(frozen=True)
class VectorIndex:
    """A pgvector index on a vector column, checked when made (nothing touches the database).

    Attributes:
        name: Index name (created in the table's schema).
        table: Table name.
        column: The ``vector`` column.
        schema: The table's schema; ``None`` for the search path.
        method: ``"hnsw"`` or ``"ivfflat"``.
        distance: The distance searches order by: ``cosine``, ``l2`` or ``inner_product``.
        storage: ``"vector"``, ``"halfvec"`` or ``"bit"`` (see the module docstring).
        m: HNSW links per node (pgvector 2..100, default 16).
        ef_construction: HNSW candidate list while building (at least ``2 * m``, default 64).
        lists: IVFFlat lists; ``None`` chooses :func:`default_lists` from the row count when the
            index is built.
        where: Predicate of a partial index, as SQL text written by the migration's author.
    """

    name: str
    table: str
    column: str = "embedding"
    schema: str | None = None
    method: IndexMethod = "hnsw"
    distance: Distance = DEFAULT_DISTANCE
    storage: Storage = "vector"
    m: int | None = None
    ef_construction: int | None = None
    lists: int | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        _check_name("index name", self.name)
        _check_name("table name", self.table)
        _check_name("column name", self.column)
        if self.schema is not None:
            _check_name("schema name", self.schema)
        if self.method not in get_args(IndexMethod):
            raise InvalidIndexError(
                f"pgvector has no index method {self.method!r}: use hnsw or ivfflat"
            )
        if self.storage not in get_args(Storage):
            raise InvalidIndexError(
                f"unknown index storage {self.storage!r}: use vector, halfvec or bit"
            )
        try:
            object.__setattr__(self, "distance", Distance.parse(self.distance))
        except ValueError as exc:
            raise InvalidIndexError(str(exc)) from None
        if self.method == "hnsw":
            self._check_hnsw()
        else:
            self._check_ivfflat()
        if self.where is not None and (not isinstance(self.where, str) or not self.where.strip()):
            raise InvalidIndexError("where= must be a non-empty SQL predicate, or None")

    def _check_hnsw(self) -> None:
        if self.lists is not None:
            raise InvalidIndexError("lists is an IVFFlat parameter: an HNSW index takes m")
        m = DEFAULT_M if self.m is None else self.m
        _check_int("m", m, *M_RANGE)
        ef = DEFAULT_EF_CONSTRUCTION if self.ef_construction is None else self.ef_construction
        _check_int("ef_construction", ef, *EF_CONSTRUCTION_RANGE)
        if ef < 2 * m:
            raise InvalidIndexError(
                f"ef_construction={ef} must be at least 2 * m ({2 * m}): pgvector refuses less"
            )
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "ef_construction", ef)

    def _check_ivfflat(self) -> None:
        if self.m is not None or self.ef_construction is not None:
            raise InvalidIndexError(
                "m and ef_construction are HNSW parameters: an IVFFlat index takes lists"
            )
        if self.lists is not None:
            _check_int("lists", self.lists, *LISTS_RANGE)

    @property
    def qualified_table(self) -> sql.Composable:
        """The table, schema-qualified when a schema is given."""
        if self.schema is None:
            return sql.Identifier(self.table)
        return sql.Identifier(self.schema, self.table)

    @property
    def qualified_name(self) -> sql.Composable:
        """The index, schema-qualified when a schema is given."""
        if self.schema is None:
            return sql.Identifier(self.name)
        return sql.Identifier(self.schema, self.name)

    @property
    def opclass(self) -> str:
        """The operator class of the index."""
        return operator_class(self.storage, self.distance)

    @property
    def parameters(self) -> dict[str, int]:
        """The build parameters, by pgvector's names (``lists`` only once it is known)."""
        if self.method == "hnsw":
            return {"m": cast(int, self.m), "ef_construction": cast(int, self.ef_construction)}
        return {} if self.lists is None else {"lists": self.lists}

    def check_dimensions(self, dimensions: int | None) -> None:
        """Refuse a storage the column's dimension does not allow.

        Raises:
            InvalidIndexError: ``dimensions`` is unknown (a ``vector`` column without one) or
                above what pgvector indexes for the storage.
        """
        if dimensions is None:
            raise InvalidIndexError(
                f"column {self.column} has no fixed dimension (vector instead of vector(n)): "
                "pgvector indexes only vectors of one dimension"
            )
        limit = MAX_DIMENSIONS[self.storage]
        if dimensions > limit:
            better = [s for s, most in MAX_DIMENSIONS.items() if most >= dimensions]
            hint = f": use storage={better[0]}" if better else ""
            raise InvalidIndexError(
                f"pgvector indexes {self.storage} of at most {limit:,} dimensions, and "
                f"{self.column} has {dimensions:,}{hint}"
            )

    def create_statement(
        self, dimensions: int, *, lists: int | None = None, concurrently: bool = False
    ) -> sql.Composed:
        """``CREATE INDEX`` for a column of ``dimensions`` (``lists`` fills a missing one)."""
        self.check_dimensions(dimensions)
        parameters = self.parameters
        if self.method == "ivfflat" and "lists" not in parameters:
            if lists is None:
                raise InvalidIndexError("an IVFFlat index needs lists: give it or the row count")
            _check_int("lists", lists, *LISTS_RANGE)
            parameters = {"lists": lists}
        statement = sql.SQL(
            "CREATE INDEX {concurrently}{name} ON {table} USING {method} ({expr} {ops})"
            " WITH ({params})"
        ).format(
            concurrently=sql.SQL("CONCURRENTLY " if concurrently else ""),
            name=sql.Identifier(self.name),
            table=self.qualified_table,
            method=sql.SQL(self.method),
            expr=index_expression(self.column, self.storage, dimensions),
            ops=sql.SQL(self.opclass),
            params=sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.SQL(key), sql.Literal(value))
                for key, value in parameters.items()
            ),
        )
        if self.where is not None:
            statement += sql.SQL(" WHERE ") + sql.SQL(self.where)
        return statement

    def drop_statement(self, *, concurrently: bool = False) -> sql.Composed:
        """``DROP INDEX IF EXISTS`` for this index."""
        return sql.SQL("DROP INDEX {}IF EXISTS {}").format(
            sql.SQL("CONCURRENTLY " if concurrently else ""), self.qualified_name
        )
