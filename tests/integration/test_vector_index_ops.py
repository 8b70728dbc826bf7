"""op.create_vector_index, op.drop_vector_index and op.rebuild_vector_index on a real server.

Each test runs the operations through Alembic's Operations on a table of its own (``items``,
8-dimensional vectors), as a migration would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import pgsearch.migrations  # noqa: F401  (registers the operations)
from pgsearch.exceptions import InvalidIndexError, PgSearchError

DIM = 8
ROWS = 300


@pytest.fixture(scope="module")
def engine(make_database: Callable[[], sa.URL]) -> Iterator[sa.Engine]:
    engine = sa.create_engine(make_database())
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    yield engine
    engine.dispose()


@pytest.fixture
def table(engine: sa.Engine) -> Iterator[str]:
    """A fresh ``app.items`` with ROWS random vectors."""
    vectors = np.random.default_rng(0).normal(size=(ROWS, DIM)).astype(np.float32)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS app CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA app")
        conn.exec_driver_sql(
            f"CREATE TABLE app.items (id bigint PRIMARY KEY, embedding vector({DIM}),"
            " loose vector, label text)"
        )
        conn.exec_driver_sql(
            "INSERT INTO app.items (id, embedding) SELECT i, CAST(v AS vector)"
            " FROM unnest(%(ids)s::bigint[], %(vs)s::text[]) AS u(i, v)",
            {
                "ids": list(range(ROWS)),
                "vs": ["[" + ",".join(map(str, row)) + "]" for row in vectors],
            },
        )
    yield "items"


def run(engine: sa.Engine, operation: str, *args: object, **kwargs: object) -> None:
    """Run one operation the way a migration does (Alembic manages the transaction)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            getattr(Operations(context), operation)(*args, **kwargs)


def indexes(engine: sa.Engine) -> dict[str, tuple[str, bool]]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index AS i"
            " JOIN pg_class AS c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = 'app.items'::regclass AND NOT i.indisprimary"
        ).all()
    return {name: (definition, valid) for name, definition, valid in rows}


@pytest.mark.parametrize("concurrently", [True, False])
def test_create_then_drop_each_storage(engine: sa.Engine, table: str, concurrently: bool) -> None:
    run(
        engine,
        "create_vector_index",
        "ix_items_hnsw",
        table,
        "embedding",
        schema="app",
        concurrently=concurrently,
    )
    run(
        engine,
        "create_vector_index",
        "ix_items_half",
        table,
        "embedding",
        schema="app",
        storage="halfvec",
        distance="l2",
        m=8,
        ef_construction=32,
        concurrently=concurrently,
    )
    run(
        engine,
        "create_vector_index",
        "ix_items_bits",
        table,
        schema="app",
        storage="bit",
        method="ivfflat",
        lists=2,
        concurrently=concurrently,
    )
    found = indexes(engine)
    assert found["ix_items_hnsw"] == (
        "CREATE INDEX ix_items_hnsw ON app.items USING hnsw (embedding vector_cosine_ops)"
        " WITH (m='16', ef_construction='64')",
        True,
    )
    assert found["ix_items_half"][0].endswith(
        "USING hnsw (((embedding)::halfvec(8)) halfvec_l2_ops) WITH (m='8', ef_construction='32')"
    )
    assert found["ix_items_bits"][0].endswith(
        "USING ivfflat (((binary_quantize(embedding))::bit(8)) bit_hamming_ops) WITH (lists='2')"
    )
    for name in found:
        run(engine, "drop_vector_index", name, table, schema="app", concurrently=concurrently)
    assert indexes(engine) == {}


def test_ivfflat_lists_from_row_count_and_partial_index(
    engine: sa.Engine, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pgsearch.migrations.operations"):
        run(
            engine,
            "create_vector_index",
            "ix_items_ivf",
            table,
            schema="app",
            method="ivfflat",
            where="label IS NULL",
            maintenance_work_mem="64MB",
        )
    definition, valid = indexes(engine)["ix_items_ivf"]
    # 300 rows: rows / 1000 rounds down to pgvector's minimum of one list.
    assert valid and definition.endswith("WITH (lists='1') WHERE (label IS NULL)")
    assert not caplog.records  # 300 rows train one list well

    with caplog.at_level(logging.WARNING, logger="pgsearch.migrations.operations"):
        run(
            engine,
            "create_vector_index",
            "ix_items_ivf_many",
            table,
            schema="app",
            method="ivfflat",
            lists=100,
        )
    assert "recall will be poor" in caplog.text and "300 rows for 100 lists" in caplog.text


def test_build_settings_stay_with_the_build(engine: sa.Engine, table: str) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            operations: Any = Operations(context)  # the operation is registered at run time
            operations.create_vector_index(
                "ix_items_hnsw",
                table,
                schema="app",
                maintenance_work_mem="77MB",
                max_parallel_maintenance_workers=0,
            )
        assert conn.exec_driver_sql("SHOW maintenance_work_mem").scalar() == "64MB"
        assert conn.exec_driver_sql("SHOW max_parallel_maintenance_workers").scalar() == "2"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"m": 200}, "out of pgvector's range"),
        ({"ef_construction": 10}, "at least 2 \\* m"),
        ({"method": "ivfflat", "lists": 40_000}, "lists=40000"),
        ({"method": "annoy"}, "no index method"),
        ({"storage": "sparsevec"}, "unknown index storage"),
        ({"maintenance_work_mem": "1GB", "work_mem": "1MB"}, "unexpected keyword|unknown"),
    ],
)
def test_bad_parameters_change_nothing(
    engine: sa.Engine, table: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises((InvalidIndexError, TypeError), match=message):
        run(engine, "create_vector_index", "ix_bad", table, schema="app", **kwargs)
    assert indexes(engine) == {}


def test_database_facts_are_checked_before_any_ddl(engine: sa.Engine, table: str) -> None:
    run(engine, "create_vector_index", "ix_items_hnsw", table, schema="app")
    before = indexes(engine)
    cases: list[tuple[dict[str, object], str]] = [
        ({"index_name": "ix_items_hnsw"}, "ix_items_hnsw already exists in schema app"),
        ({"index_name": "items"}, "items already exists"),
        ({"table_name": "nothing"}, "table app.nothing does not exist|does not exist"),
        ({"column_name": "absent"}, "has no column absent"),
        ({"column_name": "label"}, "is text, not vector"),
        ({"column_name": "loose"}, "no fixed dimension"),
    ]
    for overrides, message in cases:
        arguments: dict[str, object] = {
            "index_name": "ix_new",
            "table_name": table,
            "column_name": "embedding",
            "schema": "app",
        } | overrides
        with pytest.raises(InvalidIndexError, match=message):
            run(engine, "create_vector_index", **arguments)
    assert indexes(engine) == before


def test_storage_the_dimension_does_not_allow(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS app CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA app")
        conn.exec_driver_sql(
            "CREATE TABLE app.wide (id bigint PRIMARY KEY, embedding vector(3072))"
        )
    with pytest.raises(InvalidIndexError, match=r"at most 2,000 dimensions.*storage=halfvec"):
        run(engine, "create_vector_index", "ix_wide", "wide", schema="app")
    run(engine, "create_vector_index", "ix_wide", "wide", schema="app", storage="halfvec")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('app.ix_wide')").scalar() is not None


def test_drop_checks_what_it_drops(engine: sa.Engine, table: str) -> None:
    with pytest.raises(InvalidIndexError, match="there is no index ix_none in schema app"):
        run(engine, "drop_vector_index", "ix_none", table, schema="app")
    run(engine, "drop_vector_index", "ix_none", table, schema="app", if_exists=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_items_label ON app.items (label)")
    with pytest.raises(InvalidIndexError, match="not a pgvector index of items"):
        run(engine, "drop_vector_index", "ix_items_label", table, schema="app")
    assert "ix_items_label" in indexes(engine)


@pytest.mark.parametrize("concurrently", [True, False])
def test_rebuild_swaps_in_the_new_index(engine: sa.Engine, table: str, concurrently: bool) -> None:
    run(engine, "create_vector_index", "ix_items_vec", table, schema="app")
    run(
        engine,
        "rebuild_vector_index",
        "ix_items_vec",
        table,
        schema="app",
        storage="halfvec",
        m=24,
        ef_construction=100,
        concurrently=concurrently,
        old_index_grace=0,
    )
    assert list(indexes(engine)) == ["ix_items_vec"]
    definition, valid = indexes(engine)["ix_items_vec"]
    assert valid and "halfvec_cosine_ops) WITH (m='24', ef_construction='100')" in definition
    with pytest.raises(
        InvalidIndexError, match=r"no pgvector index ix_other of app.items to rebuild"
    ):
        run(engine, "rebuild_vector_index", "ix_other", table, schema="app")


def test_rebuild_that_fails_keeps_the_old_index(engine: sa.Engine, table: str) -> None:
    run(engine, "create_vector_index", "ix_items_vec", table, schema="app")
    # A concurrent build whose predicate fails on a row fails after its index entry was
    # committed: the invalid index it leaves must be dropped, and the old index must stay.
    with pytest.raises(PgSearchError, match=r"left it invalid; it was dropped: division by zero"):
        run(
            engine,
            "rebuild_vector_index",
            "ix_items_vec",
            table,
            schema="app",
            m=8,
            where="1 / (id - 5) > 0",
        )
    assert list(indexes(engine)) == ["ix_items_vec"]
    definition, valid = indexes(engine)["ix_items_vec"]
    assert valid and "m='16'" in definition
    run(engine, "rebuild_vector_index", "ix_items_vec", table, schema="app", m=8)
    assert "m='8'" in indexes(engine)["ix_items_vec"][0]


def _oid(engine: sa.Engine, name: str) -> int | None:
    with engine.connect() as conn:
        value = conn.exec_driver_sql("SELECT to_regclass(%(n)s)::oid", {"n": name}).scalar()
    return None if value is None else int(value)


def test_rebuild_blocked_by_a_long_transaction(engine: sa.Engine, table: str) -> None:
    """The old index cannot be dropped while a transaction holds the table: the new index
    already has the name and serves; running the rebuild again drops the old one, and does
    not build a third."""
    run(engine, "create_vector_index", "ix_items_vec", table, schema="app")
    impatient = sa.create_engine(
        engine.url, connect_args={"options": "-c lock_timeout=300ms"}, poolclass=sa.NullPool
    )
    with engine.connect() as reader:
        reader.exec_driver_sql("SELECT count(*) FROM app.items").scalar()
        with pytest.raises(
            PgSearchError, match=r"serves searches as ix_items_vec, .*lock timeout.*run the same"
        ):
            run(impatient, "rebuild_vector_index", "ix_items_vec", table, schema="app", m=8)
        reader.rollback()
    found = indexes(engine)
    assert found["ix_items_vec"][1] and "m='8'" in found["ix_items_vec"][0]
    assert "ix_items_vec_old" in found
    rebuilt = _oid(engine, "app.ix_items_vec")
    run(engine, "rebuild_vector_index", "ix_items_vec", table, schema="app", m=8)
    assert list(indexes(engine)) == ["ix_items_vec"]
    assert _oid(engine, "app.ix_items_vec") == rebuilt  # finished, not built again


def test_rebuild_finishes_a_swap_cut_short(engine: sa.Engine, table: str) -> None:
    """A new index built under the temporary name, the old one gone: it takes the name."""
    run(engine, "create_vector_index", "ix_items_vec_rebuild", table, schema="app", m=8)
    built = _oid(engine, "app.ix_items_vec_rebuild")
    run(engine, "rebuild_vector_index", "ix_items_vec", table, schema="app", m=8)
    assert list(indexes(engine)) == ["ix_items_vec"]
    assert _oid(engine, "app.ix_items_vec") == built


def test_rebuild_keeps_what_it_is_not_asked_to_change(engine: sa.Engine, table: str) -> None:
    run(
        engine,
        "create_vector_index",
        "ix_items_p",
        table,
        schema="app",
        storage="halfvec",
        distance="l2",
        m=24,
        ef_construction=100,
        where="label LIKE 'a%' OR label IS NULL",  # a % is not a placeholder
    )
    run(engine, "rebuild_vector_index", "ix_items_p", table, schema="app", m=8)
    definition, valid = indexes(engine)["ix_items_p"]
    assert valid and definition.endswith(
        "USING hnsw (((embedding)::halfvec(8)) halfvec_l2_ops)"
        " WITH (m='8', ef_construction='100') WHERE ((label ~~ 'a%'::text) OR (label IS NULL))"
    )
    # Another method: the old method's parameters go, the storage and predicate stay.
    run(engine, "rebuild_vector_index", "ix_items_p", table, schema="app", method="ivfflat",
        lists=2)  # fmt: skip
    definition, _ = indexes(engine)["ix_items_p"]
    assert "USING ivfflat (((embedding)::halfvec(8)) halfvec_l2_ops) WITH (lists='2') WHERE" in (
        definition
    )


def test_one_operation_at_a_time_per_index(engine: sa.Engine, table: str) -> None:
    run(engine, "create_vector_index", "ix_items_vec", table, schema="app")
    with engine.connect() as holder:
        holder.exec_driver_sql(
            "SELECT pg_advisory_lock(hashtextextended('pgsearch.vector_index:app.ix_items_vec', 0))"
        )
        with pytest.raises(InvalidIndexError, match=r"another operation on index app.ix_items_vec"):
            run(engine, "rebuild_vector_index", "ix_items_vec", table, schema="app", m=8)
        holder.rollback()
    assert "m='16'" in indexes(engine)["ix_items_vec"][0]


def test_predicates_and_settings_are_checked_before_ddl(engine: sa.Engine, table: str) -> None:
    with pytest.raises(InvalidIndexError, match=r"is not a predicate on app.items: .*nope"):
        run(engine, "create_vector_index", "ix_x", table, schema="app", where="nope > 1")
    with pytest.raises(InvalidIndexError, match="a build setting was refused"):
        run(engine, "create_vector_index", "ix_x", table, schema="app",
            maintenance_work_mem="777MB", max_parallel_maintenance_workers=-1)  # fmt: skip
    assert indexes(engine) == {}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW maintenance_work_mem").scalar() == "64MB"


def test_drop_needs_only_the_index(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS app CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA app")
        conn.exec_driver_sql("CREATE TABLE app.wide (id bigint PRIMARY KEY, v vector(3072))")
    run(engine, "create_vector_index", "ix_wide", "wide", "v", schema="app", storage="halfvec")
    run(engine, "drop_vector_index", "ix_wide", "wide", schema="app")  # no storage, no column
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT to_regclass('app.ix_wide')").scalar() is None
    run(engine, "drop_vector_index", "ix_wide", "gone", schema="app", if_exists=True)
    with pytest.raises(InvalidIndexError, match=r"table app.gone does not exist"):
        run(engine, "drop_vector_index", "ix_wide", "gone", schema="app")


def test_reverse_operations_for_autogenerate() -> None:
    from pgsearch.migrations.operations import CreateVectorIndexOp, RebuildVectorIndexOp

    create = CreateVectorIndexOp(
        "ix", "items", schema="app", storage="bit", m=8, ef_construction=16
    )
    drop = create.reverse()
    assert (drop.index_name, drop.index.storage, drop.index.m) == ("ix", "bit", 8)
    assert drop.reverse().arguments() == create.arguments()
    rebuild = RebuildVectorIndexOp("ix", "items", m=32, previous={"m": 16})
    assert rebuild.reverse().given == {"m": 16}
    assert rebuild.reverse().reverse().given == {"m": 32}
    with pytest.raises(ValueError, match="previous parameters"):
        RebuildVectorIndexOp("ix", "items").reverse()
