"""Bulk loads build the HNSW and GIN indexes after the data, and a load that dies loses none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL

from pgsearch import Distance, DocumentInput, HashingEmbedder, IndexBuildSettings, Store
from pgsearch.bulk_load import build_deferred_indexes
from pgsearch.cli import main
from pgsearch.exceptions import ConfigurationError
from pgsearch.migrations import downgrade

DEFERRED = [
    "ix_bm25_postings_lexeme",
    "ix_bm25_vocabulary_trigrams",
    "ix_chunks_embedding_hnsw",
    "ix_chunks_metadata",
    "ix_chunks_tsv",
    "ix_documents_metadata",
]


@pytest.fixture
def url(make_database: Callable[[], URL]) -> URL:
    return make_database()


@pytest.fixture
def store(url: URL) -> Iterator[Store]:
    with Store.open(url.render_as_string(hide_password=False), embedder=HashingEmbedder(32)) as s:
        s.migrate()
        yield s


def _indexes(libpq_url: str) -> dict[str, str]:
    with psycopg.connect(libpq_url) as conn:
        return dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'pgsearch'"
            ).fetchall()
        )


def _docs(n: int, prefix: str = "d") -> list[DocumentInput]:
    return [
        DocumentInput(
            f"{prefix}{i}", f"document number {i} about bees and honey", metadata={"i": i}
        )
        for i in range(n)
    ]


def test_a_bulk_load_builds_the_same_indexes_after_its_data(
    store: Store, url: URL, libpq: Callable[[URL], str]
) -> None:
    before = _indexes(libpq(url))
    with store.bulk_load() as deferred:
        assert deferred == DEFERRED
        during = _indexes(libpq(url))
        assert not set(DEFERRED) & set(during)
        assert {"pk_chunks", "uq_chunks_document_id_position", "uq_documents_external_id"} <= set(
            during
        )
        assert store.deferred_indexes() == DEFERRED
        store.upsert(_docs(50))
        # Searches stay correct without their indexes.
        assert store.search("document number 7", 1, "text")[0].external_id == "d7"
    assert _indexes(libpq(url)) == before
    assert store.deferred_indexes() == []
    assert store.status().deferred_indexes == []
    assert store.search("bees", 5, "vector", filter={"i": {"$gte": 45}})


def test_a_failing_load_still_builds_the_indexes_and_keeps_what_it_committed(
    store: Store, url: URL, libpq: Callable[[URL], str]
) -> None:
    before = _indexes(libpq(url))
    with pytest.raises(RuntimeError), store.bulk_load():
        store.upsert(_docs(10))
        raise RuntimeError("the source failed")
    assert _indexes(libpq(url)) == before
    assert store.status().documents == 10


def test_a_killed_load_leaves_its_indexes_to_the_next_optimize(
    store: Store, url: URL, libpq: Callable[[URL], str], tmp_path: Path
) -> None:
    before = _indexes(libpq(url))
    script = tmp_path / "load.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            from pgsearch import DocumentInput, HashingEmbedder, Store
            store = Store.open(sys.argv[1], embedder=HashingEmbedder(32))
            with store.bulk_load():
                store.upsert([DocumentInput(f"k{i}", f"killed load text {i}") for i in range(20)])
                os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSEARCH_")}
    done = subprocess.run(
        [sys.executable, str(script), url.render_as_string(hide_password=False)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    assert store.deferred_indexes() == DEFERRED
    assert not set(DEFERRED) & set(_indexes(libpq(url)))
    assert store.status().documents == 20  # its committed batch is whole
    assert store.search("killed load text 3", 1, "text")[0].external_id == "k3"

    store.optimize()
    assert _indexes(libpq(url)) == before
    assert store.deferred_indexes() == []


def test_a_running_load_keeps_its_indexes_from_other_processes(
    store: Store, url: URL, libpq: Callable[[URL], str]
) -> None:
    other = Store.open(url.render_as_string(hide_password=False), embedder=HashingEmbedder(32))
    try:
        with store.bulk_load() as deferred:
            assert deferred == DEFERRED
            assert build_deferred_indexes(other.engine) is None  # not built under the load
            other.optimize()
            assert other.deferred_indexes() == DEFERRED
            with other.bulk_load() as second:
                assert second == []  # one bulk load at a time; the second writes as usual
                other.upsert(_docs(5, "o"))
        assert store.deferred_indexes() == []
        assert set(DEFERRED) <= set(_indexes(libpq(url)))
    finally:
        other.close()


def test_loads_defer_nothing_while_searches_hold_the_tables(
    store: Store, url: URL, libpq: Callable[[URL], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pgsearch.bulk_load._DROP_LOCK_TIMEOUT", "100ms")
    with psycopg.connect(libpq(url)) as reader:
        reader.execute("SELECT count(*) FROM pgsearch.chunks")  # holds ACCESS SHARE until commit
        with store.bulk_load() as deferred:
            assert deferred == []
            assert set(DEFERRED) <= set(_indexes(libpq(url)))


def test_build_settings_are_checked_before_anything_is_dropped(store: Store) -> None:
    with pytest.raises(ConfigurationError, match="maintenance_work_mem"):  # noqa: SIM117
        with store.bulk_load(IndexBuildSettings(maintenance_work_mem="lots")):
            store.upsert(_docs(3))
    assert store.deferred_indexes() == []
    assert store.status().documents == 0
    with store.bulk_load(IndexBuildSettings("64MB", max_parallel_maintenance_workers=0)) as names:
        assert names == DEFERRED
    assert store.deferred_indexes() == []


def test_downgrade_builds_deferred_indexes_before_forgetting_them(
    store: Store, url: URL, libpq: Callable[[URL], str]
) -> None:
    before = _indexes(libpq(url))
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for name in DEFERRED:
            definition = before[name]
            conn.execute(
                "INSERT INTO pgsearch.deferred_indexes (name, definition) VALUES (%s, %s)",
                (name, definition),
            )
            conn.execute(sql.SQL("DROP INDEX pgsearch.{}").format(sql.Identifier(name)))
    downgrade(store.engine, "0003_embedding_cache")
    later = [name for name in before if name.startswith(("pk_deferred", "ix_bm25"))]
    for name in later:  # indexes of tables that the revisions after 0003 create
        del before[name]
    assert _indexes(libpq(url)) == before


def test_cli_ingest_defers_indexes_for_a_large_first_load(
    url: URL, libpq: Callable[[URL], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", url.render_as_string(hide_password=False), "--embedder", "hashing:32"]
    assert main([*base, "migrate"]) == 0
    before = _indexes(libpq(url))
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"_id": "s", "text": "a small load"}) + "\n")
    capsys.readouterr()
    assert main([*base, "ingest", str(small), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["indexes_built_after"] == []

    large = tmp_path / "large.jsonl"
    large.write_text(
        "".join(
            json.dumps({"_id": f"l{i}", "text": f"large load text {i}"}) + "\n"
            for i in range(1_000)
        )
    )
    assert main([*base, "ingest", str(large), "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inserted"] == 1_000 and report["indexes_built_after"] == DEFERRED
    assert _indexes(libpq(url)) == before

    assert main([*base, "ingest", str(small), "--no-progress", "--defer-indexes", "always"]) == 0
    assert "built 6 indexes after the data" in capsys.readouterr().out
    assert main([*base, "optimize"]) == 0
    assert "merged GIN pending lists" in capsys.readouterr().out
    assert (
        main(
            [
                *base,
                "ingest",
                str(small),
                "--defer-indexes",
                "always",
                "--maintenance-work-mem",
                "x",
            ]
        )
        == 1
    )
    assert "maintenance_work_mem" in capsys.readouterr().err
    assert _indexes(libpq(url)) == before

    with psycopg.connect(libpq(url), autocommit=True) as conn:  # as a killed load leaves it
        conn.execute(
            "INSERT INTO pgsearch.deferred_indexes (name, definition) VALUES (%s, %s)",
            ("ix_chunks_tsv", before["ix_chunks_tsv"]),
        )
        conn.execute("DROP INDEX pgsearch.ix_chunks_tsv")
    assert main([*base, "status"]) == 0
    assert "pgsearch optimize" in capsys.readouterr().out
    assert main([*base, "optimize"]) == 0
    assert "built 1 deferred indexes: ix_chunks_tsv" in capsys.readouterr().out
    assert _indexes(libpq(url)) == before


def test_bm25_statistics_stay_exact_through_a_bulk_load_with_replacements(store: Store) -> None:
    from tests.integration.test_bm25 import _ledger_and_recount

    with store.bulk_load():
        store.upsert(_docs(30))
        store.upsert([DocumentInput(f"d{i}", f"rewritten text {i} about wasps") for i in range(10)])
        store.delete(["d20", "d21"])
    ledger, recount = _ledger_and_recount(store)
    assert ledger == recount
    assert {r.external_id for r in store.search("wasps", 20, "bm25")} == {
        f"d{i}" for i in range(10)
    }


def test_a_graph_that_outgrows_maintenance_work_mem_is_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # pgvector tells the client when the HNSW graph no longer fits (the build then slows
    # several times): pgsearch passes the notice on as a warning that names the index.
    settings = IndexBuildSettings("1MB", max_parallel_maintenance_workers=0)
    with caplog.at_level("WARNING", logger="pgsearch.bulk_load"), store.bulk_load(settings):
        store.upsert(_docs(4000))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "building pgsearch.ix_chunks_embedding_hnsw" in w and "maintenance_work_mem" in w
        for w in warnings
    ), warnings
    assert store.deferred_indexes() == []


def test_a_bulk_load_rebuilds_compressed_vector_indexes_as_they_were(
    store: Store, url: URL, libpq: Callable[[URL], str]
) -> None:
    """halfvec and bit indexes index expressions: the load must build them back the same,
    and search must find and use them afterwards."""
    from pgsearch.index_catalog import cached_search_index
    from pgsearch.index_commands import apply_operation
    from pgsearch.migrations.operations import CreateVectorIndexOp, RebuildVectorIndexOp

    apply_operation(
        store.engine,
        RebuildVectorIndexOp(
            "ix_chunks_embedding_hnsw", "chunks", schema="pgsearch", storage="halfvec",
            old_index_grace=0,
        ),
    )  # fmt: skip
    apply_operation(
        store.engine,
        CreateVectorIndexOp(
            "ix_chunks_embedding_bits", "chunks", schema="pgsearch", storage="bit",
            method="ivfflat", lists=1,
        ),
    )  # fmt: skip
    before = _indexes(libpq(url))
    with store.bulk_load() as deferred:
        assert {"ix_chunks_embedding_hnsw", "ix_chunks_embedding_bits"} <= set(deferred)
        store.upsert(_docs(60))
    assert _indexes(libpq(url)) == before
    with store.engine.connect() as connection:
        chosen = cached_search_index(connection, Distance.COSINE, 32)
    assert chosen is not None and chosen.name == "ix_chunks_embedding_bits"  # the newest
    results = store.search("document number 7 about bees", 3, "vector")
    assert results.path == "hnsw" and len(results) == 3
