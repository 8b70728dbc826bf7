"""`pgsearch index list|create|rebuild|drop|recall` on a real store.

create/rebuild/drop run now with --apply, or write a revision into an application's Alembic
versions directory (tests/integration/app_recipe) that `alembic upgrade heads` applies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.config import Config

from alembic import command
from pgsearch import DocumentInput, HashingEmbedder, Store
from pgsearch.cli import main
from pgsearch.migrations import StoreOptions, upgrade

DIM = 16
ROWS = 400
RECIPE = Path(__file__).parent / "app_recipe"


@pytest.fixture(scope="module")
def store(make_database: Callable[[], sa.URL]) -> Iterator[Store]:
    engine = sa.create_engine(make_database())
    upgrade(engine, StoreOptions(dim=DIM, model=f"hashing-{DIM}"))
    store = Store(engine, embedder=HashingEmbedder(DIM))
    vectors = np.random.default_rng(1).normal(size=(ROWS, DIM)).astype(np.float32)
    store.upsert([DocumentInput(f"d{i}", f"text {i}", vectors=[v]) for i, v in enumerate(vectors)])
    yield store
    engine.dispose()


def _base(store: Store) -> list[str]:
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return ["--database-url", url, "--embedder", f"hashing:{DIM}"]


def _list(store: Store, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()  # what earlier commands printed
    assert main([*_base(store), "index", "list", "--json"]) == 0
    listed: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return listed


def test_apply_create_rebuild_drop_and_recall(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _base(store)
    [index] = _list(store, capsys)
    assert (index["name"], index["method"], index["storage"], index["valid"]) == (
        "ix_chunks_embedding_hnsw",
        "hnsw",
        "vector",
        True,
    )
    assert index["parameters"] == {"m": 16, "ef_construction": 64}

    rebuild = ["index", "rebuild", "--storage", "halfvec", "--m", "8", "--old-index-grace", "0"]
    assert main([*base, *rebuild, "--apply"]) == 0
    assert "rebuild vector index ix_chunks_embedding_hnsw: done" in capsys.readouterr().out
    [index] = _list(store, capsys)
    assert (index["storage"], index["parameters"]) == (
        "halfvec",
        {"m": 8, "ef_construction": 64},
    )

    assert main([*base, "index", "create", "ix_chunks_embedding_ivf", "--method", "ivfflat",
                 "--storage", "bit", "--apply"]) == 0  # fmt: skip
    assert "create vector index ix_chunks_embedding_ivf: done" in capsys.readouterr().out
    names = [i["name"] for i in _list(store, capsys)]
    assert names == ["ix_chunks_embedding_ivf", "ix_chunks_embedding_hnsw"]  # newest first

    assert main([*base, "index", "list"]) == 0
    out = capsys.readouterr().out
    assert "ix_chunks_embedding_ivf: ivfflat bit (lists=1)" in out and "valid" in out

    # The newest index serves searches: recall of the bit IVFFlat index against exact.
    assert main([*base, "index", "recall", "--queries", "20", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["queries"] == 20 and estimate["k"] == 10
    assert 0.5 <= estimate["recall"] <= 1.0 and estimate["path"] == "hnsw"

    assert main([*base, "index", "drop", "ix_chunks_embedding_ivf", "--apply"]) == 0
    assert [i["name"] for i in _list(store, capsys)] == ["ix_chunks_embedding_hnsw"]
    assert main([*base, "index", "recall", "--queries", "20", "--json"]) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["recall"] >= 0.9  # a halfvec HNSW graph over 400 rows misses little
    assert main([*base, "index", "recall", "--queries", "20", "--ef-search", "10"]) == 0
    assert "recall@10 " in capsys.readouterr().out


def test_bad_requests_change_nothing(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    base = _base(store)
    before = _list(store, capsys)
    for arguments, message in [
        (["create", "ix_chunks_embedding_hnsw", "--apply"], "already exists"),
        (["create", "ix_x", "--m", "500", "--apply"], "m=500 is out of pgvector's range"),
        (["create", "ix_x", "--method", "ivfflat", "--lists", "0", "--apply"], "lists=0"),
        (["create", "ix_x", "--m", "8", "--method", "ivfflat", "--apply"], "HNSW parameters"),
        (["drop", "ix_none", "--apply"], "there is no index ix_none"),
        (["rebuild", "ix_none", "--apply"], "no pgvector index ix_none"),
        (["create", "ix_x", "--config", "/nonexistent/alembic.ini"], "no Alembic config"),
    ]:
        assert main([*base, "index", *arguments]) == 1, arguments
        assert message in capsys.readouterr().err, arguments
    assert _list(store, capsys) == before


def test_writes_migrations_into_the_application(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = tmp_path / "app"
    shutil.copytree(RECIPE, app, ignore=shutil.ignore_patterns("__pycache__"))
    sys.modules.pop("models", None)
    url = store.engine.url.render_as_string(hide_password=False)
    ini = app / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with ini.open("a") as file:  # the application's env.py reads its URL from the config
        file.write(f"sqlalchemy.url = {url.replace('%', '%%')}\n")
    config.cmd_opts = argparse.Namespace(x=[f"dim={DIM}", f"model=hashing-{DIM}"])
    # The store was migrated by pgsearch itself; the application adopts it at pgsearch's head.
    command.stamp(config, "pgsearch@head")
    command.upgrade(config, "heads")  # the application's own first revision

    base = _base(store)
    assert main([*base, "index", "rebuild", "--m", "12", "--config", str(ini), "-m",
                 "retune hnsw"]) == 0  # fmt: skip
    written = Path(capsys.readouterr().out.split("wrote ")[1].split(":")[0])
    text = written.read_text()
    assert "op.rebuild_vector_index('ix_chunks_embedding_hnsw', 'chunks', 'embedding'" in text
    # Only --m changes: the rebuild keeps the index's storage and ef_construction.
    assert "'embedding', schema='pgsearch', m=12, previous={" in text
    assert "=None" not in text and ": None," not in text and ": None}" not in text
    assert "depends_on" in text and written.parent == app / "migrations" / "versions"
    [index] = _list(store, capsys)
    assert index["parameters"]["m"] != 12  # type: ignore[index]  # written, not applied

    command.upgrade(config, "heads")
    [index] = _list(store, capsys)
    assert (index["storage"], index["parameters"]) == ("halfvec", {"m": 12, "ef_construction": 64})
    command.downgrade(config, "-1")  # the rebuild's downgrade restores the previous index
    [index] = _list(store, capsys)
    assert (index["storage"], index["parameters"]) == ("halfvec", {"m": 8, "ef_construction": 64})
