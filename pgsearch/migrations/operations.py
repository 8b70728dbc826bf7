"""Alembic operations for pgvector indexes: ``op.create_vector_index`` and its siblings.

Importing :mod:`pgsearch.migrations` registers them, so any migration that does can call::

    op.create_vector_index("ix_items_embedding", "items", "embedding", method="hnsw",
                           distance="cosine", m=16, ef_construction=64)
    op.rebuild_vector_index("ix_items_embedding", "items", "embedding", storage="halfvec")
    op.drop_vector_index("ix_items_embedding", "items")

Checked first. Every parameter, the column's type and dimension, the index name, a partial
index's predicate and the build settings are checked before any DDL runs, so a refused
operation leaves the database as it was.

Concurrently. ``concurrently=True`` (the default) builds and drops without blocking writes, in
Alembic's autocommit block, which commits the migration's work so far (run such migrations with
``transaction_per_migration=True``). A concurrent build that fails leaves an invalid index; it
is dropped and the error says so. Builds run with ``statement_timeout = 0`` unless told
otherwise: a timeout meant for queries would kill them.

Rebuild. ``rebuild_vector_index`` keeps every parameter of the index it replaces that it is not
asked to change. It builds the new index under a temporary name; swaps the names in one short
transaction (the old index is renamed aside, the new one takes its name); then drops the old
one concurrently. Searches always have an index. When the new index indexes another expression
(a storage change), the old one is kept for :data:`~pgsearch.index_catalog.SEARCH_INDEX_TTL_SECONDS`
first, so that other processes, which remember the store's index that long, move over before
it goes. A rebuild that died half-way is finished by running it again. One operation at a time
per index: a second one is refused while the first runs (a session advisory lock).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations
from psycopg import sql

from pgsearch.exceptions import (
    ConfigurationError,
    InvalidIndexError,
    NotMigratedError,
    PgSearchError,
)
from pgsearch.index_catalog import SEARCH_INDEX_TTL_SECONDS, VectorIndexInfo, find_vector_index
from pgsearch.store_config import load_store_settings
from pgsearch.types import Distance
from pgsearch.vector_index import DEFAULT_DISTANCE, VectorIndex, default_lists

__all__ = [
    "BUILD_SETTINGS",
    "IVFFLAT_ROWS_PER_LIST",
    "CreateVectorIndexOp",
    "DropVectorIndexOp",
    "RebuildVectorIndexOp",
]

_log = logging.getLogger(__name__)

# k-means needs enough rows per list to place its centroids: FAISS warns below 39 training
# points per centroid. An IVFFlat index built on fewer rows than that has poor recall and
# should be rebuilt once the table is filled.
IVFFLAT_ROWS_PER_LIST = 39

# The server settings a build takes, and their values unless given.
BUILD_SETTINGS: dict[str, str | None] = {
    "maintenance_work_mem": None,
    "max_parallel_maintenance_workers": None,
    "statement_timeout": "0",
}
_INDEX_ARGUMENTS = ("method", "distance", "storage", "m", "ef_construction", "lists", "where")
_PARAMETERS = {"hnsw": ("m", "ef_construction"), "ivfflat": ("lists",)}

_TABLE = """
    SELECT t.oid, n.nspname, t.relname
    FROM pg_class AS t JOIN pg_namespace AS n ON n.oid = t.relnamespace
    WHERE t.oid = to_regclass(%(table)s)
"""
_COLUMN = """
    SELECT format_type(a.atttypid, a.atttypmod), a.atttypmod, ty.typname
    FROM pg_attribute AS a JOIN pg_type AS ty ON ty.oid = a.atttypid
    WHERE a.attrelid = %(table)s AND a.attname = %(column)s AND a.attnum > 0
      AND NOT a.attisdropped
"""
_RELATION = """
    SELECT c.relkind, i.indisvalid, am.amname, i.indrelid = %(table)s::oid
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_index AS i ON i.indexrelid = c.oid
    LEFT JOIN pg_am AS am ON am.oid = c.relam
    WHERE n.nspname = %(schema)s AND c.relname = %(name)s
"""
_SETTING = "SELECT setting, source FROM pg_settings WHERE name = %(name)s"


def _ddl(conn: sa.Connection, composed: sql.Composable) -> None:
    """Run one statement with no parameters (a ``%`` in a predicate is not a placeholder)."""
    raw = conn.connection.driver_connection
    conn.execution_options(no_parameters=True).exec_driver_sql(composed.as_string(raw))


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__


def _derived(name: str, suffix: str) -> str:
    """``name_suffix``, shortened with a hash of ``name`` to fit PostgreSQL's 63 bytes."""
    candidate = f"{name}_{suffix}"
    if len(candidate.encode()) <= 63:
        return candidate
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: 63 - len(suffix) - 10]}_{digest}_{suffix}"


class _Relation:
    """What the catalog says about a relation named like an index in the table's schema."""

    def __init__(self, row: Any) -> None:
        self.kind: str = row[0]
        self.valid = bool(row[1])
        self.method: str | None = row[2]
        self.on_table = bool(row[3])

    @property
    def vector_index(self) -> bool:
        """An HNSW or IVFFlat index of the operation's table."""
        return self.kind == "i" and self.on_table and self.method in ("hnsw", "ivfflat")


class _Table:
    """The operation's table, read before any DDL."""

    def __init__(self, conn: sa.Connection, schema: str | None, name: str) -> None:
        raw = conn.connection.driver_connection
        qualified = sql.Identifier(name) if schema is None else sql.Identifier(schema, name)
        self.label = name if schema is None else f"{schema}.{name}"  # for messages
        row = conn.exec_driver_sql(_TABLE, {"table": qualified.as_string(raw)}).first()
        self.exists = row is not None
        self.oid: int = row[0] if row else 0
        self.schema: str = row[1] if row else (schema or "")
        self.name: str = row[2] if row else name
        self.identifier = sql.Identifier(self.schema, self.name)

    def require(self) -> None:
        if not self.exists:
            raise InvalidIndexError(f"table {self.label} does not exist")

    def relation(self, conn: sa.Connection, name: str) -> _Relation | None:
        row = conn.exec_driver_sql(
            _RELATION, {"table": self.oid, "schema": self.schema, "name": name}
        ).first()
        return None if row is None else _Relation(row)

    def dimensions(self, conn: sa.Connection, index: VectorIndex) -> int:
        """The vector column's dimension, checked against the index's storage."""
        row = conn.exec_driver_sql(_COLUMN, {"table": self.oid, "column": index.column}).first()
        if row is None:
            raise InvalidIndexError(f"table {self.label} has no column {index.column}")
        if row[2] != "vector":
            raise InvalidIndexError(
                f"column {index.column} of {self.label} is {row[0]}, not vector: vector indexes "
                "here take a pgvector vector column"
            )
        dimensions = int(row[1]) if row[1] > 0 else None
        index.check_dimensions(dimensions)
        assert dimensions is not None
        return dimensions

    def rows(self, conn: sa.Connection) -> int:
        count = sql.SQL("SELECT count(*) FROM {}").format(self.identifier)
        raw = conn.connection.driver_connection
        return int(conn.exec_driver_sql(count.as_string(raw)).scalar_one())

    def qualified(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name)

    def store_distance(self, conn: sa.Connection) -> Distance | None:
        """The store's distance when this is pgsearch's chunks table, else ``None``."""
        if (self.schema, self.name) != ("pgsearch", "chunks"):
            return None
        try:
            return load_store_settings(conn).distance
        except NotMigratedError:
            return None


def _check_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(settings) - set(BUILD_SETTINGS)
    if unknown:
        raise InvalidIndexError(
            f"unknown build settings {', '.join(sorted(unknown))}: use {', '.join(BUILD_SETTINGS)}"
        )
    chosen = {name: value for name, value in BUILD_SETTINGS.items() if value is not None}
    chosen.update({name: str(value) for name, value in settings.items() if value is not None})
    return chosen


def _try_settings(conn: sa.Connection, settings: dict[str, str]) -> None:
    """Refuse a bad setting value inside the migration's transaction, before any DDL."""
    try:
        with conn.begin_nested():
            for name, value in settings.items():
                conn.exec_driver_sql(
                    "SELECT set_config(%(n)s, %(v)s, true)", {"n": name, "v": value}
                )
    except sa.exc.DBAPIError as exc:
        raise InvalidIndexError(f"a build setting was refused: {_reason(exc)}") from exc


@contextmanager
def _build_settings(conn: sa.Connection, settings: dict[str, str], local: bool) -> Iterator[None]:
    """Apply the build settings: for the transaction, or for the session, then restore them."""
    previous = {name: conn.exec_driver_sql(_SETTING, {"name": name}).one() for name in settings}
    try:
        for name, value in settings.items():
            conn.exec_driver_sql(
                "SELECT set_config(%(n)s, %(v)s, %(local)s)",
                {"n": name, "v": value, "local": local},
            )
        yield
    finally:
        if not local and not conn.closed and not conn.invalidated:
            for name, (value, source) in previous.items():
                if source == "session":
                    conn.exec_driver_sql(
                        "SELECT set_config(%(n)s, %(v)s, false)", {"n": name, "v": value}
                    )
                else:
                    _ddl(conn, sql.SQL("RESET {}").format(sql.Identifier(name)))


@contextmanager
def _exclusive(conn: sa.Connection, table: _Table, name: str) -> Iterator[None]:
    """One operation at a time on an index (a session advisory lock, kept across commits)."""
    key = f"pgsearch.vector_index:{table.schema}.{name}"
    got = conn.exec_driver_sql(
        "SELECT pg_try_advisory_lock(hashtextextended(%(k)s, 0))", {"k": key}
    ).scalar()
    if not got:
        raise InvalidIndexError(
            f"another operation on index {table.schema}.{name} is running (a concurrent "
            "build can take a while): wait for it, then run this one again"
        )
    try:
        yield
    finally:
        if not conn.closed and not conn.invalidated:
            conn.exec_driver_sql(
                "SELECT pg_advisory_unlock(hashtextextended(%(k)s, 0))", {"k": key}
            )


def _check_where(conn: sa.Connection, table: _Table, index: VectorIndex) -> None:
    if index.where is None:
        return
    probe = sql.SQL("EXPLAIN SELECT 1 FROM {} WHERE ({})").format(
        table.identifier, sql.SQL(index.where)
    )
    try:
        with conn.begin_nested():
            _ddl(conn, probe)
    except sa.exc.DBAPIError as exc:
        raise InvalidIndexError(
            f"where={index.where!r} is not a predicate on {table.label}: {_reason(exc)}"
        ) from exc


def _check_distance(conn: sa.Connection, table: _Table, index: VectorIndex) -> None:
    store = table.store_distance(conn)
    if store is not None and index.storage != "bit" and index.distance is not store:
        raise InvalidIndexError(
            f"this store orders by {store.value} distance: an index for "
            f"{index.distance.value} would never serve its searches (distance={store.value})"
        )


def _spec(
    name: str,
    table: str,
    column: str,
    schema: str | None,
    arguments: Mapping[str, Any],
) -> VectorIndex:
    values = dict(arguments)
    try:
        values["distance"] = Distance.parse(values.get("distance", DEFAULT_DISTANCE))
    except ValueError as exc:
        raise InvalidIndexError(str(exc)) from None
    return VectorIndex(name=name, table=table, column=column, schema=schema, **values)


class _VectorIndexOp(MigrateOperation):
    """The shared arguments of the vector index operations.

    ``given`` holds the index arguments the caller passed (``method``, ``distance``,
    ``storage``, ``m``, ``ef_construction``, ``lists``, ``where``); the others are defaults,
    or, for a rebuild, the replaced index's own.
    """

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        *,
        schema: str | None = None,
        concurrently: bool = True,
        maintenance_work_mem: str | None = None,
        max_parallel_maintenance_workers: int | None = None,
        statement_timeout: str | None = None,
        **index_arguments: Any,
    ) -> None:
        unknown = set(index_arguments) - set(_INDEX_ARGUMENTS)
        if unknown:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
        self.index_name = index_name
        self.table_name = table_name
        self.column_name = column_name
        self.schema = schema
        self.concurrently = concurrently
        self.given: dict[str, Any] = {
            key: value.value if isinstance(value, Distance) else value
            for key, value in index_arguments.items()
            if value is not None
        }
        self.build = {
            "maintenance_work_mem": maintenance_work_mem,
            "max_parallel_maintenance_workers": max_parallel_maintenance_workers,
            "statement_timeout": statement_timeout,
        }
        self.settings = _check_settings(self.build)

    def spec(self, inherited: Mapping[str, Any] | None = None) -> VectorIndex:
        """The checked index: ``inherited`` arguments, overridden by the given ones."""
        arguments = dict(inherited or {})
        old_method = arguments.get("method")
        if "method" in self.given and old_method not in (None, self.given["method"]):
            for key in _PARAMETERS.get(str(old_method), ()):  # another method's parameters go
                arguments.pop(key, None)
        arguments.update(self.given)
        return _spec(self.index_name, self.table_name, self.column_name, self.schema, arguments)

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments that re-create this operation (those that were given)."""
        build = {key: value for key, value in self.build.items() if value is not None}
        schema = {} if self.schema is None else {"schema": self.schema}
        concurrently = {} if self.concurrently else {"concurrently": False}
        return {**schema, **self.given, **concurrently, **build}


def _offline(operations: Operations) -> None:
    if operations.get_context().as_sql:
        raise ConfigurationError(
            "vector index operations read the database (the column's dimension, the index "
            "being replaced) and cannot run in offline --sql mode"
        )


@Operations.register_operation("create_vector_index")
class CreateVectorIndexOp(_VectorIndexOp):
    """Create a pgvector HNSW or IVFFlat index (``op.create_vector_index``)."""

    def __init__(
        self, index_name: str, table_name: str, column_name: str = "embedding", **kwargs: Any
    ) -> None:
        super().__init__(index_name, table_name, column_name, **kwargs)
        self.index = self.spec()  # checked when the migration calls the operation

    @classmethod
    def create_vector_index(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        **kwargs: Any,
    ) -> None:
        """Create a pgvector index on ``table_name.column_name``.

        Args:
            index_name: Name of the new index (in the table's schema).
            table_name: The table.
            column_name: Its ``vector(n)`` column.
            **kwargs: ``schema``, ``method`` (``"hnsw"``/``"ivfflat"``), ``distance``
                (``"cosine"``/``"l2"``/``"inner_product"``), ``storage``
                (``"vector"``/``"halfvec"``/``"bit"``), ``m``, ``ef_construction``, ``lists``
                (IVFFlat; default from the row count), ``where`` (partial index),
                ``concurrently`` (default ``True``), and the build's
                ``maintenance_work_mem``, ``max_parallel_maintenance_workers`` and
                ``statement_timeout`` (default ``"0"``).

        Raises:
            InvalidIndexError: A parameter pgvector would refuse, a storage the column's
                dimension does not allow, a bad predicate or setting, or a name already taken;
                nothing was changed.
            PgSearchError: A concurrent build failed; its invalid index was dropped.
        """
        operations.invoke(cls(index_name, table_name, column_name, **kwargs))

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("add_vector_index", self.index)

    def reverse(self) -> DropVectorIndexOp:
        return DropVectorIndexOp(
            self.index_name, self.table_name, self.column_name, **self.arguments()
        )


@Operations.register_operation("drop_vector_index")
class DropVectorIndexOp(_VectorIndexOp):
    """Drop a pgvector index (``op.drop_vector_index``).

    The index's parameters are optional; given, they let autogenerate write the reverse
    (``create_vector_index``) for the downgrade.
    """

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        *,
        if_exists: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(index_name, table_name, column_name, **kwargs)
        self.if_exists = if_exists
        self.index = self.spec()

    @classmethod
    def drop_vector_index(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        **kwargs: Any,
    ) -> None:
        """Drop the pgvector index ``index_name`` of ``table_name``.

        Args:
            index_name: The index.
            table_name: Its table.
            column_name: Its column (for the reverse operation).
            **kwargs: ``schema``, ``concurrently`` (default ``True``), ``if_exists`` (default
                ``False``: a missing index or table is an error), and the index's parameters
                for the reverse operation.

        Raises:
            InvalidIndexError: No such index (without ``if_exists``), or it is not a pgvector
                index of that table; nothing was changed.
        """
        operations.invoke(cls(index_name, table_name, column_name, **kwargs))

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("remove_vector_index", self.index)

    def reverse(self) -> CreateVectorIndexOp:
        arguments = self.arguments()
        arguments.pop("if_exists", None)
        return CreateVectorIndexOp(self.index_name, self.table_name, self.column_name, **arguments)


@Operations.register_operation("rebuild_vector_index")
class RebuildVectorIndexOp(_VectorIndexOp):
    """Rebuild a pgvector index with new parameters (``op.rebuild_vector_index``).

    Arguments not given keep the replaced index's values. ``previous`` holds the replaced
    index's arguments, for the reverse operation (``pgsearch index rebuild`` fills it in).
    """

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        *,
        previous: Mapping[str, Any] | None = None,
        old_index_grace: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(index_name, table_name, column_name, **kwargs)
        self.previous = dict(previous) if previous is not None else None
        if old_index_grace is not None and old_index_grace < 0:
            raise InvalidIndexError("old_index_grace must be a number of seconds, at least 0")
        self.old_index_grace = old_index_grace

    @classmethod
    def rebuild_vector_index(
        cls,
        operations: Operations,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        **kwargs: Any,
    ) -> None:
        """Replace the index ``index_name`` by one built with the given parameters.

        Parameters not given keep the index's current values. The new index is built
        (concurrently, by default) under a temporary name, then takes the old one's name and
        the old one is dropped: searches always have an index.

        Args:
            index_name: The index to replace (it must exist).
            table_name: Its table.
            column_name: The vector column.
            **kwargs: As :meth:`CreateVectorIndexOp.create_vector_index`; ``previous``: the
                replaced index's arguments, for the downgrade; ``old_index_grace``: seconds to
                keep the old index once the new one is valid (default: the search-index cache
                lifetime, 60 s, when the indexed expression changes, else 0).

        Raises:
            InvalidIndexError: A bad parameter, or no such index; nothing was changed.
            PgSearchError: The new index failed to build; the old one is untouched.
        """
        operations.invoke(cls(index_name, table_name, column_name, **kwargs))

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("rebuild_vector_index", self.index_name, self.given)

    def arguments(self) -> dict[str, Any]:
        arguments = super().arguments()
        if self.old_index_grace is not None:
            arguments["old_index_grace"] = self.old_index_grace
        return arguments

    def reverse(self) -> RebuildVectorIndexOp:
        if self.previous is None:
            raise ValueError(
                f"rebuild of {self.index_name} does not know the previous parameters: give "
                "previous={...} to make it reversible"
            )
        build = {key: value for key, value in self.arguments().items() if key not in self.given}
        previous = dict(self.given)
        if self.schema is not None:
            previous["schema"] = self.schema
        return RebuildVectorIndexOp(
            self.index_name,
            self.table_name,
            self.column_name,
            previous=previous,
            **{**build, **self.previous},
        )


def _lists_for(conn: sa.Connection, index: VectorIndex, table: _Table) -> int | None:
    """The IVFFlat lists to build with; warn when the table is too small to train them."""
    if index.method != "ivfflat":
        return None
    rows = table.rows(conn)
    lists = index.lists if index.lists is not None else default_lists(rows)
    if rows < IVFFLAT_ROWS_PER_LIST * lists:
        _log.warning(
            "building IVFFlat index %s on %d rows for %d lists: k-means needs about %d rows "
            "per list, so recall will be poor; rebuild it (op.rebuild_vector_index or "
            "`pgsearch index rebuild`) once the table is loaded",
            index.name,
            rows,
            lists,
            IVFFLAT_ROWS_PER_LIST,
        )
    return lists


def _prepare(
    conn: sa.Connection,
    table: _Table,
    index: VectorIndex,
    settings: dict[str, str],
    concurrently: bool,
) -> sql.Composable:
    """Every check that needs the database, then the ``CREATE INDEX`` to run (not run)."""
    dimensions = table.dimensions(conn, index)
    _check_distance(conn, table, index)
    _check_where(conn, table, index)
    _try_settings(conn, settings)
    lists = _lists_for(conn, index, table)
    return index.create_statement(dimensions, lists=lists, concurrently=concurrently)


def _drop_concurrently(conn: sa.Connection, table: _Table, name: str) -> None:
    _ddl(conn, sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(table.qualified(name)))


def _build(
    operations: Operations,
    table: _Table,
    index: VectorIndex,
    statement: sql.Composable,
    *,
    concurrently: bool,
    settings: dict[str, str],
) -> None:
    """Run ``statement`` (a ``CREATE INDEX`` of ``index``); an invalid result is dropped."""
    if not concurrently:
        conn = operations.get_bind()
        with _build_settings(conn, settings, local=True):
            _ddl(conn, statement)
        return
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        with _build_settings(conn, settings, local=False):
            try:
                _ddl(conn, statement)
            except sa.exc.DBAPIError as exc:
                left = table.relation(conn, index.name)
                if left is not None and not left.valid:
                    _drop_concurrently(conn, table, index.name)
                    raise PgSearchError(
                        f"building index {index.name} failed and left it invalid; it was "
                        f"dropped: {_reason(exc)}"
                    ) from exc
                raise
            built = table.relation(conn, index.name)
            if built is None or not built.valid:
                if built is not None:
                    _drop_concurrently(conn, table, index.name)
                raise PgSearchError(
                    f"index {index.name} was built but is not valid (a concurrent build can "
                    "fail late, on a deadlock or a cancel); it was dropped: run it again"
                )


@Operations.implementation_for(CreateVectorIndexOp)
def _create_vector_index(operations: Operations, operation: CreateVectorIndexOp) -> None:
    _offline(operations)
    conn = operations.get_bind()
    index = operation.index
    table = _Table(conn, operation.schema, operation.table_name)
    table.require()
    if table.relation(conn, index.name) is not None:
        raise InvalidIndexError(
            f"{index.name} already exists in schema {table.schema}: pick another name, or "
            "rebuild it with op.rebuild_vector_index"
        )
    with _exclusive(conn, table, index.name):
        statement = _prepare(conn, table, index, operation.settings, operation.concurrently)
        _build(
            operations,
            table,
            index,
            statement,
            concurrently=operation.concurrently,
            settings=operation.settings,
        )


@Operations.implementation_for(DropVectorIndexOp)
def _drop_vector_index(operations: Operations, operation: DropVectorIndexOp) -> None:
    _offline(operations)
    conn = operations.get_bind()
    table = _Table(conn, operation.schema, operation.table_name)
    if not table.exists:
        if operation.if_exists:
            return
        table.require()
    name = operation.index_name
    found = table.relation(conn, name)
    if found is None:
        if operation.if_exists:
            return
        raise InvalidIndexError(f"there is no index {name} in schema {table.schema}")
    if not found.vector_index:
        raise InvalidIndexError(
            f"{name} in schema {table.schema} is not a pgvector index of {table.name}"
        )
    with _exclusive(conn, table, name):
        if not operation.concurrently:
            _ddl(conn, sql.SQL("DROP INDEX {}").format(table.qualified(name)))
            return
        with operations.get_context().autocommit_block():
            conn = operations.get_bind()
            _ddl(conn, sql.SQL("DROP INDEX CONCURRENTLY {}").format(table.qualified(name)))


def _matches(info: VectorIndexInfo, index: VectorIndex) -> bool:
    """Whether the index ``info`` describes is already the one ``index`` asks for."""
    distance_matches = index.storage == "bit" or info.distance is index.distance
    # An IVFFlat index asked without lists takes whatever the row count gives.
    parameters_match = all(info.parameters.get(k) == v for k, v in index.parameters.items())
    return (
        info.valid
        and info.method == index.method
        and info.storage == index.storage
        and distance_matches
        and parameters_match
        and (info.predicate is None) == (index.where is None)
    )


@Operations.implementation_for(RebuildVectorIndexOp)
def _rebuild_vector_index(operations: Operations, operation: RebuildVectorIndexOp) -> None:
    _offline(operations)
    conn = operations.get_bind()
    name = operation.index_name
    table = _Table(conn, operation.schema, operation.table_name)
    table.require()
    temporary, aside = _derived(name, "rebuild"), _derived(name, "old")
    with _exclusive(conn, table, name):
        recovered = _recover(operations, table, name, temporary, aside)
        conn = operations.get_bind()
        current = find_vector_index(conn, name, table.schema, table.name)
        if current is None:
            raise InvalidIndexError(
                f"there is no pgvector index {name} of {table.label} to rebuild: create it "
                "with op.create_vector_index"
            )
        inherited = current.operation_arguments()
        if "distance" not in inherited:  # a bit index: the store's (or the default) distance
            inherited["distance"] = (table.store_distance(conn) or DEFAULT_DISTANCE).value
        wanted = operation.spec(inherited)
        if recovered and _matches(current, wanted):
            return  # an earlier run of this rebuild built it; its swap is finished now
        for taken in (temporary, aside):
            if table.relation(conn, taken) is not None:
                raise InvalidIndexError(
                    f"{taken} exists in schema {table.schema} and is not a leftover of a "
                    f"rebuild of {name}: rename or drop it"
                )
        index = dataclasses.replace(wanted, name=temporary)
        statement = _prepare(conn, table, index, operation.settings, operation.concurrently)
        _build(
            operations,
            table,
            index,
            statement,
            concurrently=operation.concurrently,
            settings=operation.settings,
        )
        grace = operation.old_index_grace
        if grace is None:
            grace = SEARCH_INDEX_TTL_SECONDS if current.storage != index.storage else 0.0
        if grace and operation.concurrently:
            _log.info("keeping %s for %.0f s while searches move to its rebuild", name, grace)
            time.sleep(grace)
        _swap(operations, table, name, temporary, aside, concurrently=operation.concurrently)


def _swap(
    operations: Operations,
    table: _Table,
    name: str,
    temporary: str,
    aside: str,
    *,
    concurrently: bool,
) -> None:
    """Give the new index the old one's name, in one short transaction; then drop the old."""
    renames = sql.SQL("ALTER INDEX {} RENAME TO {}; ALTER INDEX {} RENAME TO {}").format(
        table.qualified(name),
        sql.Identifier(aside),
        table.qualified(temporary),
        sql.Identifier(name),
    )
    if not concurrently:
        conn = operations.get_bind()
        _ddl(conn, renames)
        _ddl(conn, sql.SQL("DROP INDEX {}").format(table.qualified(aside)))
        return
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        _ddl(conn, renames)  # one simple query: PostgreSQL runs both in one transaction
        try:
            _drop_concurrently(conn, table, aside)
        except sa.exc.DBAPIError as exc:
            raise PgSearchError(
                f"the rebuilt index serves searches as {name}, but the old one, renamed "
                f"{aside}, could not be dropped ({_reason(exc)}): run the same rebuild again "
                "once long transactions on the table have ended, and it drops it"
            ) from exc


def _recover(operations: Operations, table: _Table, name: str, temporary: str, aside: str) -> bool:
    """Finish or clean up what an earlier rebuild of ``name`` left (this one holds the lock).

    Returns:
        Whether an earlier rebuild's new index is now ``name`` (its swap finished here).
    """
    conn = operations.get_bind()
    new = table.relation(conn, temporary)
    old = table.relation(conn, aside)
    if any(found is not None and not found.vector_index for found in (new, old)):
        return False  # not ours: the rebuild refuses the names before any DDL
    if new is None and old is None:
        return False
    current = table.relation(conn, name)
    _log.warning("finishing what an earlier rebuild of %s left behind", name)
    swapped = old is not None and current is not None and current.valid
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        if current is None and new is not None and new.valid:
            # The old index went aside (or was dropped) before the new one took its name.
            _ddl(
                conn,
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    table.qualified(temporary), sql.Identifier(name)
                ),
            )
            swapped, new = True, None
        if new is not None:
            # A build that died, or one whose swap never began: the rebuild starts afresh.
            _drop_concurrently(conn, table, temporary)
        if old is not None:
            _drop_concurrently(conn, table, aside)
    return swapped
