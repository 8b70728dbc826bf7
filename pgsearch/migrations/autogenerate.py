"""Autogenerate hooks: compare only what each Alembic environment owns, render pgvector right.

Two environments meet in one database. pgsearch's own (``pgsearch migrate``, the repository's
``alembic/``) compares the ``pgsearch`` schema's modelled tables and nothing else; an
application's compares its own objects and leaves pgsearch's alone. In both, a pgvector index
(HNSW or IVFFlat) is compared by name only: its parameters and storage belong to the
migrations that build and rebuild it (:mod:`pgsearch.migrations.operations`), so autogenerate
never proposes to drop one it does not model, nor re-creates one whose parameters were retuned.
One that is modelled and missing is proposed as ``op.create_vector_index``.

An application's ``env.py``::

    from pgsearch.migrations.autogenerate import application_options

    context.configure(connection=connection, target_metadata=metadata,
                      **application_options())
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import renderers, rewriter
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from sqlalchemy import Index, MetaData
from sqlalchemy.schema import SchemaItem

from pgsearch.indexes import METADATA_INDEX_PREFIX
from pgsearch.migrations.environment import VERSION_TABLE
from pgsearch.migrations.operations import (
    CreateVectorIndexOp,
    DropVectorIndexOp,
    RebuildVectorIndexOp,
)
from pgsearch.models import SCHEMA, Base
from pgsearch.vector_index import DEFAULT_DISTANCE, describe_operator_class

__all__ = [
    "application_options",
    "include_vector_index",
    "is_vector_index",
    "pgsearch_options",
    "render_pgvector_type",
    "vector_index_rewriter",
]

_METHODS = ("hnsw", "ivfflat")
_IMPORT = "import pgsearch.migrations  # registers op.create_vector_index and its siblings"


def is_vector_index(index: Any) -> bool:
    """Whether ``index`` (modelled or reflected) is a pgvector HNSW or IVFFlat index."""
    if not isinstance(index, Index):
        return False
    using = index.dialect_options["postgresql"].get("using")
    return isinstance(using, str) and using.lower() in _METHODS


def include_vector_index(
    obj: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: SchemaItem | None
) -> bool:
    """``include_object`` rule: pgvector indexes are compared by name only.

    One in the database and not in the models is left alone (migrations own it); one in both is
    not compared (``rebuild_vector_index`` retunes it); one only in the models is created.
    """
    if type_ == "index" and (is_vector_index(obj) or is_vector_index(compare_to)):
        return not reflected and compare_to is None
    return True


def _modelled_tables() -> set[str]:
    return {table.name for table in Base.metadata.tables.values() if table.schema == SCHEMA}


def _pgsearch_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "schema":
        return name == SCHEMA
    if type_ == "table":
        # BM25's postings and statistics, the embedding cache and the deferred index list are
        # internal: their revisions own them, and the models leave them out.
        return parent_names.get("schema_name") != SCHEMA or name in _modelled_tables()
    return True


def _pgsearch_object(
    obj: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: SchemaItem | None
) -> bool:
    # B-trees on metadata keys are built on request (`pgsearch index`), not modelled.
    if (
        type_ == "index"
        and reflected
        and compare_to is None
        and name is not None
        and (name.startswith(METADATA_INDEX_PREFIX))
    ):
        return False
    return include_vector_index(obj, name, type_, reflected, compare_to)


def _application_names(schemas: set[str | None]) -> Any:
    """``include_name`` of an application: its models' schemas, never pgsearch's objects."""

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ == "schema":
            return name != SCHEMA and name in schemas
        if type_ == "table":
            return name != VERSION_TABLE
        return True

    return include_name


def render_pgvector_type(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """``render_item`` hook: pgvector's column types as ``pgvector.sqlalchemy.VECTOR(dim=n)``."""
    if type_ != "type":
        return False
    module = type(obj).__module__
    if not module.startswith("pgvector.sqlalchemy"):
        return False
    autogen_context.imports.add("import pgvector.sqlalchemy")
    return f"pgvector.sqlalchemy.{obj!r}"


vector_index_rewriter = rewriter.Rewriter()
"""``process_revision_directives`` that writes modelled pgvector indexes as vector operations."""


def _index_arguments(index: Index) -> dict[str, Any] | None:
    """The ``create_vector_index`` arguments of a modelled single-column pgvector index."""
    options = index.dialect_options["postgresql"]
    columns = list(index.columns)
    if len(columns) != 1 or len(index.expressions) != 1 or options.get("where") is not None:
        return None  # expression and partial indexes stay op.create_index
    column = columns[0].name
    # pgvector's default operator class is vector_l2_ops.
    storage, distance = describe_operator_class(
        (options.get("ops") or {}).get(column, "vector_l2_ops")
    )
    if storage != "vector" or distance is None:
        return None  # a cast or a bit column: op.create_index spells it
    parameters = {key: int(value) for key, value in (options.get("with") or {}).items()}
    return {
        "column_name": column,
        "schema": index.table.schema if index.table is not None else None,
        "method": str(options["using"]).lower(),
        "distance": distance.value,
        **{key: parameters[key] for key in ("m", "ef_construction", "lists") if key in parameters},
    }


def _as_vector_operation(op: ops.CreateIndexOp | ops.DropIndexOp, kind: type[Any]) -> Any:
    """``op`` as ``kind`` (a vector index operation) when it is about a modelled pgvector index."""
    index = op.to_index()
    arguments = _index_arguments(index) if is_vector_index(index) else None
    if arguments is None or index.name is None or index.table is None:
        return op
    return kind(str(index.name), index.table.name, **arguments)


@vector_index_rewriter.rewrites(ops.CreateIndexOp)
def _create_index(context: Any, revision: Any, op: ops.CreateIndexOp) -> Any:
    return _as_vector_operation(op, CreateVectorIndexOp)


@vector_index_rewriter.rewrites(ops.DropIndexOp)
def _drop_index(context: Any, revision: Any, op: ops.DropIndexOp) -> Any:
    return _as_vector_operation(op, DropVectorIndexOp)


# What create and drop write when it is the default (a rebuild writes what it was given:
# there, a value repeats a choice the rebuild would otherwise inherit from the index).
_DEFAULTS = {"method": "hnsw", "distance": DEFAULT_DISTANCE.value, "storage": "vector"}


def _render_arguments(op: Any, arguments: dict[str, Any]) -> str:
    parts = [repr(op.index_name), repr(op.table_name), repr(op.column_name)]
    parts += [f"{key}={value!r}" for key, value in arguments.items()]
    return ", ".join(parts)


def _without_defaults(op: CreateVectorIndexOp | DropVectorIndexOp) -> dict[str, Any]:
    arguments = {k: v for k, v in op.arguments().items() if _DEFAULTS.get(k) != v}
    if op.index.method == "hnsw":  # the checked defaults are written out: they are the index
        arguments.setdefault("m", op.index.m)
        arguments.setdefault("ef_construction", op.index.ef_construction)
    return arguments


@renderers.dispatch_for(CreateVectorIndexOp)
def _render_create(autogen_context: AutogenContext, op: CreateVectorIndexOp) -> str:
    autogen_context.imports.add(_IMPORT)
    return f"op.create_vector_index({_render_arguments(op, _without_defaults(op))})"


@renderers.dispatch_for(DropVectorIndexOp)
def _render_drop(autogen_context: AutogenContext, op: DropVectorIndexOp) -> str:
    autogen_context.imports.add(_IMPORT)
    return f"op.drop_vector_index({_render_arguments(op, _without_defaults(op))})"


@renderers.dispatch_for(RebuildVectorIndexOp)
def _render_rebuild(autogen_context: AutogenContext, op: RebuildVectorIndexOp) -> str:
    autogen_context.imports.add(_IMPORT)
    arguments = op.arguments()
    if op.previous is not None:
        arguments["previous"] = op.previous
    return f"op.rebuild_vector_index({_render_arguments(op, arguments)})"


def pgsearch_options() -> dict[str, Any]:
    """``context.configure`` options of pgsearch's own environment."""
    return {
        "include_schemas": True,
        "include_name": _pgsearch_name,
        "include_object": _pgsearch_object,
        "render_item": render_pgvector_type,
        "process_revision_directives": vector_index_rewriter,
    }


def application_options(target_metadata: MetaData | None = None) -> dict[str, Any]:
    """``context.configure`` options for an application that includes pgsearch's revisions.

    Its autogenerate compares the schemas its models use (``target_metadata``'s; without it,
    the default schema only), never the ``pgsearch`` schema, pgsearch's version table or any
    other schema in the database; compares pgvector indexes by name only; renders pgvector
    column types with their import; and writes modelled pgvector indexes as
    ``op.create_vector_index`` (built concurrently).
    """
    schemas: set[str | None] = {None}
    if target_metadata is not None:
        schemas |= {table.schema for table in target_metadata.tables.values()}
    return {
        "include_schemas": len(schemas) > 1,
        "include_name": _application_names(schemas),
        "include_object": include_vector_index,
        "render_item": render_pgvector_type,
        "process_revision_directives": vector_index_rewriter,
    }
