"""The store's vector index, operated on from outside a migration: ``pgsearch index ...``.

An operation (:mod:`pgsearch.migrations.operations`) either runs now, through the same
Alembic implementation a migration would use (:func:`apply_operation`, with build progress
read from ``pg_stat_progress_create_index``), or is written as a revision into an
application's own versions directory (:func:`write_migration`), to be applied with its
``alembic upgrade heads``. :func:`estimate_recall` measures the live index against exact search.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import MigrateOperation, Operations
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text

from alembic import command
from pgsearch.database import autocommit_connection
from pgsearch.exceptions import ConfigurationError, PgSearchError
from pgsearch.index_catalog import forget_search_index

__all__ = [
    "BuildProgress",
    "RecallEstimate",
    "apply_operation",
    "estimate_recall",
    "write_migration",
]

_PROGRESS = """
    SELECT phase, coalesce(tuples_done, 0), coalesce(tuples_total, 0),
           coalesce(blocks_done, 0), coalesce(blocks_total, 0)
    FROM pg_stat_progress_create_index
    WHERE relid = to_regclass('pgsearch.chunks')
"""
_PGSEARCH_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"


@dataclass(frozen=True)
class BuildProgress:
    """One reading of ``pg_stat_progress_create_index`` for the store's table."""

    phase: str
    done: int
    total: int


@contextmanager
def _watch_builds(engine: Engine, report: Callable[[BuildProgress], None]) -> Iterator[None]:
    """Report the build's progress from another connection, twice a second, until it ends."""
    stop = threading.Event()

    def watch() -> None:
        with autocommit_connection(engine) as connection:
            while not stop.wait(0.5):
                row = connection.execute(_PROGRESS).fetchone()
                if row is not None:
                    tuples = (row[1], row[2]) if row[2] else (row[3], row[4])
                    report(BuildProgress(str(row[0]), int(tuples[0]), int(tuples[1])))

    watcher = threading.Thread(target=watch, name="pgsearch-index-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5)


def apply_operation(
    engine: Engine,
    operation: MigrateOperation,
    progress: Callable[[BuildProgress], None] | None = None,
) -> None:
    """Run ``operation`` now, as a migration would (its checks, its autocommit block).

    Raises:
        InvalidIndexError: The operation was refused before any DDL.
        PgSearchError: The build failed (its invalid index was dropped).
    """
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        with (
            _watch_builds(engine, progress) if progress else nullcontext(),
            context.begin_transaction(),
        ):
            Operations(context).invoke(operation)
    forget_search_index(engine)  # searches in this process read the new index


def _is_pgsearch_location(location: str) -> bool:
    return Path(location).resolve() == _PGSEARCH_VERSIONS


def write_migration(
    config_file: str | Path,
    operation: MigrateOperation,
    message: str,
    *,
    head: str | None = None,
    version_path: str | None = None,
) -> Path:
    """Write ``operation`` (and its reverse) as a new revision of an application's Alembic setup.

    The revision depends on pgsearch's newest revision (the store must exist) and follows the
    application's own head; with none, it starts the application's branch ``pgsearch_indexes``.
    Alembic runs the application's ``env.py`` to write it, as ``alembic revision`` does with
    ``revision_environment``.

    Raises:
        ConfigurationError: No such config, it does not include pgsearch's revisions, or
            several application heads and no ``head``.
    """
    path = Path(config_file)
    if not path.is_file():
        raise ConfigurationError(
            f"no Alembic config at {path}: pass --config, or --apply to build the index now"
        )
    config = Config(str(path))
    script = ScriptDirectory.from_config(config)
    try:
        pgsearch_head = script.get_revision("pgsearch@head")
    except CommandError as exc:
        raise ConfigurationError(
            f"{path} does not include pgsearch's revisions: add pgsearch:migrations/versions to "
            'its version_locations (README, "Your own Alembic")'
        ) from exc
    assert pgsearch_head is not None
    if version_path is None:
        own = [loc for loc in script.version_locations if not _is_pgsearch_location(loc)]
        if not own:
            raise ConfigurationError(
                f"{path} has no versions directory of its own: add one to version_locations"
            )
        version_path = own[0]
    branch_label = None
    if head is None:
        others = sorted(set(script.get_heads()) - {pgsearch_head.revision})
        if len(others) > 1:
            raise ConfigurationError(
                f"the application has several heads ({', '.join(others)}): pass --head"
            )
        if others:
            head = others[0]
        else:
            head, branch_label = "base", "pgsearch_indexes"

    def add_operation(context: Any, revision: Any, directives: list[Any]) -> None:
        migration = directives[0]
        migration.upgrade_ops.ops.append(operation)
        migration.downgrade_ops.ops.insert(0, operation.reverse())

    config.set_main_option("revision_environment", "true")
    written = command.revision(
        config,
        message,
        head=head,
        branch_label=branch_label,
        version_path=version_path,
        depends_on=pgsearch_head.revision,
        process_revision_directives=add_operation,
    )
    if written is None or isinstance(written, list):  # pragma: no cover - one script asked
        raise PgSearchError("Alembic wrote no revision")
    return Path(written.path)


@dataclass(frozen=True)
class RecallEstimate:
    """Recall@k of the store's vector index against exact search on sampled stored vectors."""

    queries: int
    k: int
    recall: float
    index_p50_ms: float
    exact_p50_ms: float
    path: str


def estimate_recall(store: Any, queries: int = 100, k: int = 10, **options: Any) -> RecallEstimate:
    """Search ``queries`` stored vectors (a seeded sample) with the index and exactly.

    Each sampled chunk is left out of its own results (it would be its own nearest neighbour
    on both paths). A result of the index search counts as a hit when it is in the exact top
    ``k`` or as near as its ``k``-th row (equal vectors tie). ``options`` are search options
    (``ef_search``, ``probes``, ...).

    Raises:
        PgSearchError: The store has ``k`` chunks or fewer.
    """
    with store.engine.connect() as connection:
        ids = connection.execute(text("SELECT id FROM pgsearch.chunks")).scalars().all()
        if len(ids) <= k:
            raise PgSearchError(f"the store has {len(ids)} chunks: recall@{k} needs more than {k}")
        picked = random.Random(0).sample(list(ids), min(queries, len(ids)))
        rows = connection.execute(
            text(
                "SELECT id, CAST(embedding AS real[]) FROM pgsearch.chunks"
                " WHERE id = ANY(:ids) ORDER BY id"
            ),
            {"ids": picked},
        ).all()
    hits, index_ms, exact_ms, path = 0.0, [], [], ""
    for chunk_id, values in rows:
        vector = np.asarray(values, dtype=np.float32)
        start = time.perf_counter()
        exact = store.search(query_vector=vector, k=k + 1, mode="vector", exact=True)
        exact_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        found = store.search(query_vector=vector, k=k + 1, mode="vector", **options)
        index_ms.append((time.perf_counter() - start) * 1000)
        path = found.path
        truth = [r for r in exact if r.chunk_id != chunk_id][:k]
        answer = [r for r in found if r.chunk_id != chunk_id][:k]
        kth = min(r.score for r in truth)
        ids_of_truth = {r.chunk_id for r in truth}
        hits += sum(1 for r in answer if r.chunk_id in ids_of_truth or r.score >= kth - 1e-6) / k
    return RecallEstimate(
        queries=len(rows),
        k=k,
        recall=hits / len(rows),
        index_p50_ms=statistics.median(index_ms),
        exact_p50_ms=statistics.median(exact_ms),
        path=path,
    )
