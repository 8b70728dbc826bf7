"""Migrate up, down and up again on fresh databases; the schema is what the issue promises."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL, create_engine, text

from pgsearch import (
    ConfigurationError,
    DocumentInput,
    ExtensionMissingError,
    HashingEmbedder,
    Store,
    StoreOptions,
)
from pgsearch.migrations import downgrade, upgrade


def _facts(conn: psycopg.Connection) -> dict[str, object]:
    return {
        "schema": conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgsearch'"
        ).fetchone()[0],  # type: ignore[index]
        "vector": conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0],  # type: ignore[index]
        "indexes": {
            name: definition
            for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'pgsearch'"
            )
        },
    }


def test_upgrade_downgrade_upgrade(make_database: Callable[[], URL], libpq) -> None:  # type: ignore[no-untyped-def]
    url = make_database()
    engine = create_engine(url)
    with psycopg.connect(libpq(url)) as conn:
        before = {r[0] for r in conn.execute("SELECT oid::regclass::text FROM pg_class")}

    upgrade(engine, StoreOptions(dim=8, model="test-8"))
    with psycopg.connect(libpq(url)) as conn:
        facts = _facts(conn)
        assert facts["schema"] == 1 and facts["vector"] == 1
        indexes = facts["indexes"]
        assert isinstance(indexes, dict)
        assert (
            "USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')"
            in (indexes["ix_chunks_embedding_hnsw"])
        )
        assert "USING gin (tsv)" in indexes["ix_chunks_tsv"]
        assert "USING gin (metadata jsonb_path_ops)" in indexes["ix_chunks_metadata"]
        columns = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) || ':' || attstorage::text"
                " FROM pg_attribute WHERE attrelid = 'pgsearch.chunks'::regclass AND attnum > 0"
                " AND NOT attisdropped"
            ).fetchall()
        )
        assert columns["embedding"] == "vector(8):p"  # STORAGE PLAIN
        assert columns["tsv"].startswith("tsvector")
        generated = conn.execute(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef"
            " WHERE adrelid = 'pgsearch.chunks'::regclass"
        ).fetchall()
        assert any("to_tsvector('english'::regconfig, content)" in g[0] for g in generated)
        assert conn.execute(
            "SELECT embedding_model, embedding_dim, distance, text_config"
            " FROM pgsearch.store_config"
        ).fetchall() == [("test-8", 8, "cosine", "english")]

    upgrade(engine, StoreOptions(dim=8, model="test-8"))  # at head already: a no-op

    downgrade(engine, "base")
    with psycopg.connect(libpq(url)) as conn:
        facts = _facts(conn)
        assert facts["schema"] == 0 and facts["vector"] == 0 and facts["indexes"] == {}
        after = {r[0] for r in conn.execute("SELECT oid::regclass::text FROM pg_class")}
    # Nothing pgsearch created is left, Alembic's version table included.
    assert after == before

    upgrade(engine, StoreOptions(dim=16, model="test-16", distance="l2", text_config="simple"))
    with psycopg.connect(libpq(url)) as conn:
        indexes = _facts(conn)["indexes"]
        assert isinstance(indexes, dict)
        assert "vector_l2_ops" in indexes["ix_chunks_embedding_hnsw"]
        assert conn.execute("SELECT text_config FROM pgsearch.store_config").fetchone() == (
            "simple",
        )
    engine.dispose()


def test_downgrade_keeps_a_vector_extension_it_did_not_create(
    make_database: Callable[[], URL],
    libpq,  # type: ignore[no-untyped-def]
) -> None:
    url = make_database()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE TABLE mine (v vector(3))")
    engine = create_engine(url)
    upgrade(engine, StoreOptions(dim=3, model="m"))
    downgrade(engine, "base")
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        ).fetchone() == (1,)
        assert conn.execute("SELECT to_regclass('public.mine')::text").fetchone() == ("mine",)
    engine.dispose()


def test_server_without_pgvector_is_refused_and_nothing_is_created(
    make_database: Callable[[], URL],
    libpq,  # type: ignore[no-untyped-def]
) -> None:
    url = make_database()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
        if major < 18:
            pytest.skip("hiding pgvector needs PostgreSQL 18's extension_control_path")
        # The server can no longer see any extension's control file: like a server without pgvector.
        conn.execute(
            sql.SQL(
                "ALTER DATABASE {} SET extension_control_path = '/nonexistent-pgsearch'"
            ).format(sql.Identifier(str(url.database)))
        )
    engine = create_engine(url)
    with pytest.raises(ExtensionMissingError, match="does not have the pgvector extension"):
        upgrade(engine, StoreOptions(dim=3, model="m"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regnamespace('pgsearch')")).scalar() is None
        assert conn.execute(text("SELECT to_regclass('pgsearch_alembic_version')")).scalar() is None
    engine.dispose()


def test_unknown_text_configuration_is_refused(make_database: Callable[[], URL]) -> None:
    engine = create_engine(make_database())
    with pytest.raises(ConfigurationError, match="'klingon' does not exist"):
        upgrade(engine, StoreOptions(dim=3, model="m", text_config="klingon"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regnamespace('pgsearch')")).scalar() is None
    engine.dispose()


def test_alembic_command_line_from_the_repository(
    make_database: Callable[[], URL],
    libpq,  # type: ignore[no-untyped-def]
) -> None:
    url = make_database()
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSEARCH_")}

    def alembic(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-x", f"url={libpq(url)}", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    alembic(
        "-x", "dim=12", "-x", "model=my-model", "-x", "distance=inner_product", "upgrade", "head"
    )
    assert "0006_vector_index_search (head)" in alembic("current")
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute(
            "SELECT embedding_model, embedding_dim, distance FROM pgsearch.store_config"
        ).fetchone() == ("my-model", 12, "inner_product")
    alembic("downgrade", "base")
    with psycopg.connect(libpq(url)) as conn:
        assert conn.execute("SELECT to_regnamespace('pgsearch')").fetchone() == (None,)


def test_a_role_that_may_not_create_pg_trgm_is_told_what_to_do(
    make_database: Callable[[], URL],
    libpq,  # type: ignore[no-untyped-def]
) -> None:
    url = make_database()
    role = f"pgsearch_limited_{url.database}"[:63]
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")  # as a superuser would, once
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role))
        )  # the version table
        conn.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(str(url.database)), sql.Identifier(role)
            )
        )
    limited = create_engine(url.set(username=role, password=None))
    try:
        upgrade(limited, StoreOptions(dim=3, model="m"), revision="0004_deferred_indexes")
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(
                    sql.Identifier(str(url.database)), sql.Identifier(role)
                )
            )
        with pytest.raises(ExtensionMissingError, match="may not create the pg_trgm extension"):
            upgrade(limited)
        with limited.connect() as conn:  # the failed upgrade left the schema as it was
            assert (
                conn.execute(text("SELECT to_regclass('pgsearch.bm25_postings')")).scalar() is None
            )
    finally:
        limited.dispose()
        with psycopg.connect(libpq(url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_pg_trgm_in_a_schema_whose_name_needs_quotes(
    make_database: Callable[[], URL],
    libpq,  # type: ignore[no-untyped-def]
) -> None:
    url = make_database()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Trigram Tools"')
        conn.execute('CREATE EXTENSION pg_trgm WITH SCHEMA "Trigram Tools"')
    engine = create_engine(url)
    upgrade(engine, StoreOptions(dim=8, model="hashing-8"))
    engine.dispose()
    with Store.open(url.render_as_string(hide_password=False), embedder=HashingEmbedder(8)) as s:
        s.add([DocumentInput("bees", "honeybees pollinate flowering plants")])
        assert [r.external_id for r in s.search("polinate", 5, "text")] == ["bees"]
