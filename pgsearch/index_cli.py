"""``pgsearch index``: list, create, rebuild and drop the store's vector indexes, check recall.

``create``, ``rebuild`` and ``drop`` write a revision into an application's own Alembic
versions directory (``--config``, default ``alembic.ini``), or with ``--apply`` run the same
operation now. ``metadata KEY`` builds a B-tree for range filters on a metadata key.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from alembic.operations import MigrateOperation

from pgsearch.index_catalog import find_vector_index, vector_indexes
from pgsearch.index_commands import BuildProgress, apply_operation, estimate_recall, write_migration
from pgsearch.indexes import create_metadata_index, drop_metadata_index
from pgsearch.migrations.operations import (
    CreateVectorIndexOp,
    DropVectorIndexOp,
    RebuildVectorIndexOp,
)
from pgsearch.models import SCHEMA
from pgsearch.store import Store
from pgsearch.store_config import load_store_settings
from pgsearch.vector_index import STORE_INDEX_NAME

__all__ = ["add_index_parser", "run_index_command"]


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=STORE_INDEX_NAME, help="index name")
    parser.add_argument(
        "--method", choices=["hnsw", "ivfflat"], help="default: hnsw (rebuild: the index's)"
    )
    parser.add_argument(
        "--storage",
        choices=["vector", "halfvec", "bit"],
        help="default: vector (rebuild: the index's)",
    )
    parser.add_argument("--m", type=int, help="HNSW links per node (default 16)")
    parser.add_argument("--ef-construction", type=int, help="HNSW build list (default 64)")
    parser.add_argument("--lists", type=int, help="IVFFlat lists (default: rows/1000)")
    parser.add_argument("--where", help="predicate of a partial index (SQL)")
    parser.add_argument("--maintenance-work-mem", help="memory for the build, e.g. 1GB")
    parser.add_argument("--max-parallel-maintenance-workers", type=int)
    _target_arguments(parser)


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="run it now instead of writing a migration"
    )
    parser.add_argument(
        "--blocking",
        action="store_true",
        help="build or drop inside a transaction (locks writes) instead of CONCURRENTLY",
    )
    parser.add_argument(
        "--config", default="alembic.ini", help="the application's Alembic config (migration)"
    )
    parser.add_argument("--head", help="the revision the migration follows (several heads)")
    parser.add_argument("--version-path", help="where to write the migration")
    parser.add_argument("-m", "--message", help="the migration's message")


def add_index_parser(commands: Any) -> None:
    """Add ``pgsearch index`` and its subcommands to the CLI's subparsers."""
    index = commands.add_parser(
        "index",
        help="the store's vector indexes (list, create, rebuild, drop, recall) and metadata "
        "B-trees",
        description="create, rebuild and drop write a migration into your Alembic versions "
        "directory (--config), or run now with --apply; builds run CONCURRENTLY.",
    )
    actions = index.add_subparsers(dest="index_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="name, method, storage, params, size, valid, rows")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    _build_arguments(actions.add_parser("create", help="a new vector index on chunks.embedding"))
    rebuild = actions.add_parser(
        "rebuild", help="replace an index (new one built first, then swapped)"
    )
    _build_arguments(rebuild)
    rebuild.add_argument(
        "--old-index-grace",
        type=float,
        metavar="SECONDS",
        help="keep the old index this long once the new one is valid (default: 60 when the "
        "storage changes, so that other processes' searches move over first)",
    )
    drop = actions.add_parser("drop", help="drop a vector index")
    drop.add_argument("name", help="index name")
    _target_arguments(drop)
    recall = actions.add_parser(
        "recall", help="recall@10 of the live index against exact search on stored vectors"
    )
    recall.add_argument("--queries", type=int, default=100, help="sampled vectors (default 100)")
    recall.add_argument("-k", type=int, default=10, help="results per search (default 10)")
    recall.add_argument("--ef-search", type=int, help="hnsw.ef_search for the index searches")
    recall.add_argument("--probes", type=int, help="ivfflat.probes for the index searches")
    recall.add_argument("--json", action="store_true", help="print as JSON")
    metadata = actions.add_parser(
        "metadata",
        help="build (or --drop) a B-tree index on a metadata key for range filters",
        description="Range filters ($lt $lte $gt $gte) on a metadata key use a B-tree index on "
        "metadata -> 'key', built CONCURRENTLY (writers are not blocked). Equality and $in "
        "filters need none: the GIN index on metadata serves them.",
    )
    metadata.add_argument("key", help="metadata key, e.g. year or author.name")
    metadata.add_argument("--drop", action="store_true", help="drop the key's index instead")


def _build_kwargs(args: argparse.Namespace, distance: str | None) -> dict[str, Any]:
    """The operation's arguments: those given (a rebuild keeps the index's others)."""
    given = {
        "method": args.method,
        "storage": args.storage,
        "m": args.m,
        "ef_construction": args.ef_construction,
        "lists": args.lists,
        "where": args.where,
        "distance": distance,
        "maintenance_work_mem": args.maintenance_work_mem,
        "max_parallel_maintenance_workers": args.max_parallel_maintenance_workers,
    }
    kwargs = {key: value for key, value in given.items() if value is not None}
    return {**kwargs, "schema": SCHEMA, "concurrently": not args.blocking}


def _previous(store: Store, name: str) -> dict[str, Any] | None:
    """The arguments of the index ``name`` as it is now (for the downgrade of its change)."""
    with store.engine.connect() as connection:
        index = find_vector_index(connection, name)
    return None if index is None else index.operation_arguments()


def _show_progress(progress: BuildProgress) -> None:
    done = f"{progress.done:,}/{progress.total:,}" if progress.total else ""
    end = "\r" if sys.stderr.isatty() else "\n"
    print(f"  {progress.phase} {done}".ljust(60), end=end, file=sys.stderr, flush=True)


def _run(store: Store, args: argparse.Namespace, operation: MigrateOperation, what: str) -> None:
    if args.apply:
        apply_operation(store.engine, operation, _show_progress)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(f"{what}: done")
        return
    path = write_migration(
        args.config,
        operation,
        args.message or what,
        head=args.head,
        version_path=args.version_path,
    )
    print(f"wrote {path}: apply it with `alembic upgrade heads`")


def _list(store: Store, args: argparse.Namespace) -> None:
    with store.engine.connect() as connection:
        indexes = vector_indexes(connection)
    if args.json:
        print(json.dumps([asdict(index) for index in indexes], indent=2, default=str))
        return
    if not indexes:
        print("no vector index: vector search scans every chunk (`pgsearch index create`)")
    for index in indexes:
        parameters = ", ".join(f"{key}={value}" for key, value in index.parameters.items())
        state = "valid" if index.valid else "INVALID (not used by searches)"
        print(
            f"{index.name}: {index.method} {index.storage} ({parameters}), "
            f"{index.size_bytes / 2**20:,.1f} MiB, {state}, "
            + (f"{index.rows:,} rows" if index.rows is not None else "rows not counted yet")
            + (f", WHERE {index.predicate}" if index.predicate else "")
        )


def _recall(store: Store, args: argparse.Namespace) -> None:
    options = {
        key: value
        for key, value in {"ef_search": args.ef_search, "probes": args.probes}.items()
        if value is not None
    }
    estimate = estimate_recall(store, args.queries, args.k, **options)
    if args.json:
        print(json.dumps(asdict(estimate), indent=2))
        return
    print(
        f"recall@{estimate.k} {estimate.recall:.3f} over {estimate.queries} stored vectors "
        f"(path {estimate.path}): p50 {estimate.index_p50_ms:.2f} ms, exact search "
        f"{estimate.exact_p50_ms:.2f} ms"
    )


def run_index_command(store: Store, args: argparse.Namespace) -> None:
    """Run ``pgsearch index ACTION``."""
    action = args.index_action
    if action == "list":
        _list(store, args)
    elif action == "recall":
        _recall(store, args)
    elif action == "metadata":
        if args.drop:
            print(f"dropped index {SCHEMA}.{drop_metadata_index(store.engine, args.key)}")
        else:
            print(f"index {SCHEMA}.{create_metadata_index(store.engine, args.key)} is ready")
    elif action == "drop":
        operation: MigrateOperation = DropVectorIndexOp(
            args.name,
            "chunks",
            schema=SCHEMA,
            concurrently=not args.blocking,
            **(_previous(store, args.name) or {}),
        )
        _run(store, args, operation, f"drop vector index {args.name}")
    else:
        if action == "create":
            with store.engine.connect() as connection:  # the index must serve the store
                distance = load_store_settings(connection).distance.value
            operation = CreateVectorIndexOp(args.name, "chunks", **_build_kwargs(args, distance))
        else:
            operation = RebuildVectorIndexOp(
                args.name,
                "chunks",
                previous=_previous(store, args.name),
                old_index_grace=args.old_index_grace,
                **_build_kwargs(args, None),
            )
        _run(store, args, operation, f"{action} vector index {args.name}")
