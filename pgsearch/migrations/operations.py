"""Alembic operations for pgvector indexes: ``op.create_vector_index`` and its siblings.

Importing :mod:`pgsearch.migrations` registers them, so any migration that does can call::

    op.create_vector_index("ix_items_embedding", "items", "embedding", method="hnsw",
                           distance="cosine", m=16, ef_construction=64)
    op.rebuild_vector_index("ix_items_embedding", "items", "embedding", storage="halfvec")
    op.drop_vector_index("ix_items_embedding", "items")

Every parameter is checked (:class:`pgsearch.vector_index.VectorIndex`, then the column's
dimension and the index name against the database) before any DDL runs, so a bad one leaves the
database as it was. ``concurrently=True`` (the default) builds without blocking writes: the
build runs in Alembic's autocommit block, which commits the migration's work so far (run such
migrations with ``transaction_per_migration=True``). A concurrent build that fails leaves an
invalid index behind; it is dropped and the error says so. ``rebuild_vector_index`` builds the
new index under a temporary name, then drops the old one and gives the new one its name: search
always has an index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations
from psycopg import sql

from pgsearch.exceptions import InvalidIndexError, PgSearchError
from pgsearch.types import Distance
from pgsearch.vector_index import DEFAULT_DISTANCE, VectorIndex, default_lists

__all__ = [
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

_SETTINGS = ("maintenance_work_mem", "max_parallel_maintenance_workers")

_COLUMN = """
    SELECT t.oid, n.nspname, format_type(a.atttypid, a.atttypmod), a.atttypmod,
           ty.typname
    FROM pg_class AS t
    JOIN pg_namespace AS n ON n.oid = t.relnamespace
    JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attname = %(column)s AND NOT a.attisdropped
    JOIN pg_type AS ty ON ty.oid = a.atttypid
    WHERE t.oid = to_regclass(%(table)s)
"""
_INDEX = """
    SELECT i.indisvalid, am.amname, i.indrelid = %(table)s::oid
    FROM pg_class AS c
    JOIN pg_index AS i ON i.indexrelid = c.oid
    JOIN pg_am AS am ON am.oid = c.relam
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = %(name)s
"""


def _spec(
    name: str,
    table: str,
    column: str,
    schema: str | None,
    method: str,
    distance: str | Distance,
    storage: str,
    m: int | None,
    ef_construction: int | None,
    lists: int | None,
    where: str | None,
) -> VectorIndex:
    try:
        parsed = Distance.parse(distance)
    except ValueError as exc:
        raise InvalidIndexError(str(exc)) from None
    return VectorIndex(
        name=name,
        table=table,
        column=column,
        schema=schema,
        method=method,  # type: ignore[arg-type]  # checked by VectorIndex
        distance=parsed,
        storage=storage,  # type: ignore[arg-type]
        m=m,
        ef_construction=ef_construction,
        lists=lists,
        where=where,
    )


def _check_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(settings) - set(_SETTINGS)
    if unknown:
        raise InvalidIndexError(
            f"unknown build settings {', '.join(sorted(unknown))}: use {', '.join(_SETTINGS)}"
        )
    return {name: str(value) for name, value in settings.items() if value is not None}


def _literal(conn: sa.Connection, composed: sql.Composable) -> str:
    """The SQL text of ``composed`` (quoting by psycopg, with the connection's encoding)."""
    raw = conn.connection.driver_connection
    return composed.as_string(raw)


class _Target:
    """What the database says about an index's table and column, read before any DDL."""

    def __init__(self, conn: sa.Connection, index: VectorIndex) -> None:
        table = _literal(conn, index.qualified_table)
        row = conn.exec_driver_sql(_COLUMN, {"column": index.column, "table": table}).first()
        if row is None:
            exists = conn.exec_driver_sql("SELECT to_regclass(%(t)s)", {"t": table}).scalar()
            if exists is None:
                raise InvalidIndexError(f"table {table} does not exist")
            raise InvalidIndexError(f"table {table} has no column {index.column}")
        self.table_oid: int = row[0]
        self.schema: str = row[1]
        if row[4] != "vector":
            raise InvalidIndexError(
                f"column {index.column} of {table} is {row[2]}, not vector: vector indexes "
                "here take a pgvector vector column"
            )
        self.dimensions: int | None = row[3] if row[3] > 0 else None
        index.check_dimensions(self.dimensions)

    def index_state(self, conn: sa.Connection, name: str) -> tuple[bool, str, bool] | None:
        """``(valid, method, on this table)`` of the index ``name`` in the table's schema."""
        row = conn.exec_driver_sql(
            _INDEX, {"table": self.table_oid, "schema": self.schema, "name": name}
        ).first()
        return None if row is None else (bool(row[0]), str(row[1]), bool(row[2]))

    def rows(self, conn: sa.Connection, index: VectorIndex) -> int:
        count = sql.SQL("SELECT count(*) FROM {}").format(index.qualified_table)
        return int(conn.exec_driver_sql(_literal(conn, count)).scalar_one())

    def name_taken(self, conn: sa.Connection, name: str) -> bool:
        """Whether any relation (index, table, sequence, ...) in the table's schema has ``name``."""
        row = conn.exec_driver_sql(
            "SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %(schema)s AND c.relname = %(name)s",
            {"schema": self.schema, "name": name},
        ).first()
        return row is not None


def _lists_for(conn: sa.Connection, index: VectorIndex, target: _Target) -> int | None:
    """The IVFFlat lists to build with; warn when the table is too small to train them."""
    if index.method != "ivfflat":
        return None
    rows = target.rows(conn, index)
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


@contextmanager
def _build_settings(conn: sa.Connection, settings: dict[str, str], local: bool) -> Iterator[None]:
    """Apply the build settings: for the transaction, or for the session and restore them."""
    previous = {
        name: conn.exec_driver_sql("SELECT current_setting(%(n)s)", {"n": name}).scalar_one()
        for name in settings
    }
    for name, value in settings.items():
        conn.exec_driver_sql(
            "SELECT set_config(%(n)s, %(v)s, %(local)s)", {"n": name, "v": value, "local": local}
        )
    try:
        yield
    finally:
        if not local and not conn.closed and not conn.invalidated:
            for name, value in previous.items():
                conn.exec_driver_sql(
                    "SELECT set_config(%(n)s, %(v)s, false)", {"n": name, "v": value}
                )


def _qualified(schema: str, name: str) -> sql.Composable:
    return sql.Identifier(schema, name)


def _create(
    operations: Operations,
    index: VectorIndex,
    target: _Target,
    *,
    name: str,
    concurrently: bool,
    settings: dict[str, str],
) -> None:
    """Build ``index`` under ``name``; a concurrent build left invalid is dropped, then raised."""
    conn = operations.get_bind()
    lists = _lists_for(conn, index, target)
    statement = _literal(
        conn,
        VectorIndex(**{**_fields(index), "name": name}).create_statement(
            target.dimensions or 0, lists=lists, concurrently=concurrently
        ),
    )
    if not concurrently:
        with _build_settings(conn, settings, local=True):
            conn.exec_driver_sql(statement)
        return
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        with _build_settings(conn, settings, local=False):
            try:
                conn.exec_driver_sql(statement)
            except sa.exc.DBAPIError as exc:
                state = target.index_state(conn, name)
                if state is not None and not state[0]:
                    conn.exec_driver_sql(
                        _literal(
                            conn,
                            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                                _qualified(target.schema, name)
                            ),
                        )
                    )
                    raise PgSearchError(
                        f"building index {name} failed and left it invalid; it was dropped: "
                        f"{_reason(exc)}"
                    ) from exc
                raise
            state = target.index_state(conn, name)
            if state is None or not state[0]:
                if state is not None:
                    conn.exec_driver_sql(
                        _literal(
                            conn,
                            sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                                _qualified(target.schema, name)
                            ),
                        )
                    )
                raise PgSearchError(
                    f"index {name} was built but is not valid (a concurrent build can fail "
                    "late, e.g. on a deadlock or a cancel); it was dropped: run the migration again"
                )


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__


def _fields(index: VectorIndex) -> dict[str, Any]:
    return {
        "name": index.name,
        "table": index.table,
        "column": index.column,
        "schema": index.schema,
        "method": index.method,
        "distance": index.distance,
        "storage": index.storage,
        "m": index.m,
        "ef_construction": index.ef_construction,
        "lists": index.lists,
        "where": index.where,
    }


class _VectorIndexOp(MigrateOperation):
    """The shared arguments of the vector index operations."""

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        *,
        schema: str | None = None,
        method: str = "hnsw",
        distance: str | Distance = DEFAULT_DISTANCE,
        storage: str = "vector",
        m: int | None = None,
        ef_construction: int | None = None,
        lists: int | None = None,
        where: str | None = None,
        concurrently: bool = True,
        maintenance_work_mem: str | None = None,
        max_parallel_maintenance_workers: int | None = None,
    ) -> None:
        self.index_name = index_name
        self.table_name = table_name
        self.column_name = column_name
        self.schema = schema
        self.method = method
        self.distance = distance.value if isinstance(distance, Distance) else distance
        self.storage = storage
        self.m = m
        self.ef_construction = ef_construction
        self.lists = lists
        self.where = where
        self.concurrently = concurrently
        self.settings = _check_settings(
            {
                "maintenance_work_mem": maintenance_work_mem,
                "max_parallel_maintenance_workers": max_parallel_maintenance_workers,
            }
        )
        # Checked here, when the migration calls the operation: before any DDL.
        self.index = _spec(
            index_name,
            table_name,
            column_name,
            schema,
            method,
            distance,
            storage,
            m,
            ef_construction,
            lists,
            where,
        )

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments that re-create this operation, defaults resolved."""
        return {
            "schema": self.schema,
            "method": self.index.method,
            "distance": self.distance,
            "storage": self.index.storage,
            "m": self.index.m,
            "ef_construction": self.index.ef_construction,
            "lists": self.index.lists,
            "where": self.index.where,
            "concurrently": self.concurrently,
            "maintenance_work_mem": self.settings.get("maintenance_work_mem"),
            "max_parallel_maintenance_workers": (
                int(self.settings["max_parallel_maintenance_workers"])
                if "max_parallel_maintenance_workers" in self.settings
                else None
            ),
        }


@Operations.register_operation("create_vector_index")
class CreateVectorIndexOp(_VectorIndexOp):
    """Create a pgvector HNSW or IVFFlat index (``op.create_vector_index``)."""

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
                ``concurrently`` (default ``True``), ``maintenance_work_mem``,
                ``max_parallel_maintenance_workers``.

        Raises:
            InvalidIndexError: A parameter pgvector would refuse, a storage the column's
                dimension does not allow, or a name already taken; nothing was changed.
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
            column_name: Its column (used by the reverse operation).
            **kwargs: ``schema``, ``concurrently`` (default ``True``), ``if_exists`` (default
                ``False``: a missing index is an error), and the index's parameters for the
                reverse operation.

        Raises:
            InvalidIndexError: No such index (without ``if_exists``), or it is not a pgvector
                index of that table; nothing was changed.
        """
        operations.invoke(cls(index_name, table_name, column_name, **kwargs))

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("remove_vector_index", self.index)

    def reverse(self) -> CreateVectorIndexOp:
        return CreateVectorIndexOp(
            self.index_name, self.table_name, self.column_name, **self.arguments()
        )


@Operations.register_operation("rebuild_vector_index")
class RebuildVectorIndexOp(_VectorIndexOp):
    """Rebuild a pgvector index with new parameters (``op.rebuild_vector_index``).

    ``previous`` holds the keyword arguments of the index being replaced, for the reverse
    operation (``pgsearch index rebuild`` fills it in from the database).
    """

    def __init__(
        self,
        index_name: str,
        table_name: str,
        column_name: str = "embedding",
        *,
        previous: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(index_name, table_name, column_name, **kwargs)
        self.previous = dict(previous) if previous is not None else None

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

        The new index is built (concurrently, by default) under a temporary name; then the
        old one is dropped and the new one renamed: searches always have an index.

        Args:
            index_name: The index to replace (it must exist).
            table_name: Its table.
            column_name: The vector column.
            **kwargs: As :meth:`CreateVectorIndexOp.create_vector_index`, and ``previous``:
                the replaced index's arguments, for the downgrade.

        Raises:
            InvalidIndexError: A bad parameter, or no such index; nothing was changed.
            PgSearchError: The new index failed to build; the old one is untouched.
        """
        operations.invoke(cls(index_name, table_name, column_name, **kwargs))

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("rebuild_vector_index", self.index)

    def reverse(self) -> RebuildVectorIndexOp:
        if self.previous is None:
            raise ValueError(
                f"rebuild of {self.index_name} does not know the previous parameters: give "
                "previous={...} to make it reversible"
            )
        index_arguments = (
            "schema",
            "method",
            "distance",
            "storage",
            "m",
            "ef_construction",
            "lists",
            "where",
        )
        previous = {
            key: value
            for key, value in self.arguments().items()
            if key in index_arguments and value is not None
        }
        build = {
            key: value for key, value in self.arguments().items() if key not in index_arguments
        }
        return RebuildVectorIndexOp(
            self.index_name,
            self.table_name,
            self.column_name,
            previous=previous,
            **{**build, **self.previous},
        )


@Operations.implementation_for(CreateVectorIndexOp)
def _create_vector_index(operations: Operations, operation: CreateVectorIndexOp) -> None:
    conn = operations.get_bind()
    target = _Target(conn, operation.index)
    if target.name_taken(conn, operation.index_name):
        raise InvalidIndexError(
            f"{operation.index_name} already exists in schema {target.schema}: "
            "pick another name, or rebuild it with op.rebuild_vector_index"
        )
    _create(
        operations,
        operation.index,
        target,
        name=operation.index_name,
        concurrently=operation.concurrently,
        settings=operation.settings,
    )


def _existing_vector_index(
    conn: sa.Connection, target: _Target, name: str, table: str
) -> tuple[bool, str, bool] | None:
    state = target.index_state(conn, name)
    if state is not None and (state[1] not in ("hnsw", "ivfflat") or not state[2]):
        raise InvalidIndexError(
            f"index {name} in schema {target.schema} is not a pgvector index of {table}"
        )
    return state


@Operations.implementation_for(DropVectorIndexOp)
def _drop_vector_index(operations: Operations, operation: DropVectorIndexOp) -> None:
    conn = operations.get_bind()
    target = _Target(conn, operation.index)
    state = _existing_vector_index(conn, target, operation.index_name, operation.table_name)
    if state is None:
        if operation.if_exists:
            return
        raise InvalidIndexError(
            f"there is no index {operation.index_name} in schema {target.schema}"
        )
    drop = sql.SQL("DROP INDEX {}{}").format(
        sql.SQL("CONCURRENTLY " if operation.concurrently else ""),
        _qualified(target.schema, operation.index_name),
    )
    if not operation.concurrently:
        conn.exec_driver_sql(_literal(conn, drop))
        return
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        conn.exec_driver_sql(_literal(conn, drop))


def _temporary_name(name: str) -> str:
    suffix = "_rebuild"
    return name[: 63 - len(suffix)] + suffix


@Operations.implementation_for(RebuildVectorIndexOp)
def _rebuild_vector_index(operations: Operations, operation: RebuildVectorIndexOp) -> None:
    conn = operations.get_bind()
    target = _Target(conn, operation.index)
    name = operation.index_name
    if _existing_vector_index(conn, target, name, operation.table_name) is None:
        raise InvalidIndexError(
            f"there is no index {name} in schema {target.schema} to rebuild: create it with "
            "op.create_vector_index"
        )
    temporary = _temporary_name(name)
    leftover = target.index_state(conn, temporary)
    if leftover is not None:
        current = target.index_state(conn, name)
        if leftover[0] and current is not None and not current[0]:
            # An earlier rebuild built its index, then failed to drop the old one half-way.
            _log.warning("finishing the swap of an earlier rebuild of %s", name)
            with operations.get_context().autocommit_block():
                conn = operations.get_bind()
                old = _qualified(target.schema, name)
                rename = sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    _qualified(target.schema, temporary), sql.Identifier(name)
                )
                _swap(conn, old, rename, name, temporary)
            return
        if leftover[0]:
            raise InvalidIndexError(
                f"index {temporary} exists: a rebuild of {name} may be running; drop it if not"
            )
        # An earlier rebuild died mid-build: its invalid index is in the way.
        _drop_temporary(operations, target, temporary, operation.concurrently)
        conn = operations.get_bind()
    _create(
        operations,
        operation.index,
        target,
        name=temporary,
        concurrently=operation.concurrently,
        settings=operation.settings,
    )
    old = _qualified(target.schema, name)
    new = _qualified(target.schema, temporary)
    rename = sql.SQL("ALTER INDEX {} RENAME TO {}").format(new, sql.Identifier(name))
    if not operation.concurrently:
        conn = operations.get_bind()
        conn.exec_driver_sql(_literal(conn, sql.SQL("DROP INDEX {}").format(old)))
        conn.exec_driver_sql(_literal(conn, rename))
        return
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        # Searches use the new index from here on; the old one goes without locking writes.
        _swap(conn, old, rename, name, temporary)


def _swap(
    conn: sa.Connection, old: sql.Composable, rename: sql.Composable, name: str, temporary: str
) -> None:
    """Drop the old index and give the new one its name (autocommit).

    DROP INDEX CONCURRENTLY marks the old index invalid before it waits for the transactions
    that use the table: if the wait fails, the old index is out of service and the new one
    serves searches. It stays, and running the rebuild again finishes the swap.
    """
    try:
        conn.exec_driver_sql(_literal(conn, sql.SQL("DROP INDEX CONCURRENTLY {}").format(old)))
    except sa.exc.DBAPIError as exc:
        raise PgSearchError(
            f"the new index {temporary} is built and serves searches, but {name} could not be "
            f"dropped to make way for it ({_reason(exc)}): run the same rebuild again once "
            "long transactions on the table have ended, and it finishes the swap"
        ) from exc
    conn.exec_driver_sql(_literal(conn, rename))


def _drop_temporary(operations: Operations, target: _Target, name: str, concurrently: bool) -> None:
    drop = sql.SQL("DROP INDEX {}{}").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""), _qualified(target.schema, name)
    )
    if not concurrently:
        conn = operations.get_bind()
        conn.exec_driver_sql(_literal(conn, drop))
        return
    with operations.get_context().autocommit_block():
        conn = operations.get_bind()
        conn.exec_driver_sql(_literal(conn, drop))
