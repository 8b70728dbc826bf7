"""Real server errors, translated by SQLSTATE, and what the command line says about them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from pgsearch.cli import main
from pgsearch.exceptions import (
    ConnectionFailedError,
    EmbeddingMismatchError,
    LimitExceededError,
    QueryCanceledError,
    ServerShutdownError,
    translate_errors,
)

URL_ADVICE = "PGSEARCH_DATABASE_URL"

# A tsvector holds at most 1 MiB of lexemes: 40,000 distinct 32-character words are more.
TOO_MANY_WORDS = "SELECT string_agg(md5(i::text), ' ') FROM generate_series(1, 40000) AS i"


@pytest.fixture
def engine(make_database: Callable[[], URL]) -> Iterator[Engine]:
    engine = create_engine(make_database())
    with engine.begin() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    yield engine
    engine.dispose()


def _fail(engine: Engine, *statements: str, vectors: bool = False) -> None:
    with translate_errors(vectors=vectors), engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_stack_depth_is_a_limit_error(engine: Engine) -> None:
    recursive = (
        "CREATE FUNCTION pg_temp.deep(n int) RETURNS int LANGUAGE plpgsql AS"
        " 'BEGIN RETURN pg_temp.deep(n + 1); END'"
    )
    with pytest.raises(LimitExceededError, match="54001") as raised:
        _fail(engine, recursive, "SELECT pg_temp.deep(0)")
    assert URL_ADVICE not in str(raised.value)


def test_tsvector_size_is_a_limit_error(engine: Engine) -> None:
    with pytest.raises(LimitExceededError, match="54000"):
        _fail(engine, f"SELECT to_tsvector('simple', ({TOO_MANY_WORDS}))")


def test_statement_timeout_is_a_timeout(engine: Engine) -> None:
    with pytest.raises(QueryCanceledError, match="statement_timeout"):
        _fail(engine, "SET LOCAL statement_timeout = 50", "SELECT pg_sleep(5)")


def test_terminated_session_is_a_shutdown_error(engine: Engine) -> None:
    with pytest.raises(ServerShutdownError, match="57P01") as raised:
        _fail(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert URL_ADVICE not in str(raised.value)


def test_vector_dimension_mismatch_is_translated_only_for_vector_operations(
    engine: Engine,
) -> None:
    compare = "SELECT '[1,2,3]'::vector <-> '[1,2]'::vector"
    with pytest.raises(EmbeddingMismatchError, match="different vector dimensions"):
        _fail(engine, compare, vectors=True)
    with pytest.raises(DBAPIError) as raised:
        _fail(engine, compare)
    assert getattr(raised.value.orig, "sqlstate", None) == "22000"


def test_refused_connection_points_at_the_url() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ConnectionFailedError, match=URL_ADVICE):
        _fail(engine, "SELECT 1")


def _url(make_database: Callable[[], URL]) -> str:
    return make_database().set(drivername="postgresql").render_as_string(hide_password=False)


def test_cli_says_which_limit_and_not_to_check_the_url(
    make_database: Callable[[], URL], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", _url(make_database), "--embedder", "hashing:16"]
    assert main([*base, "migrate"]) == 0
    capsys.readouterr()
    engine = create_engine(make_database())
    with engine.connect() as connection:
        words = connection.execute(text(TOO_MANY_WORDS)).scalar_one()
    engine.dispose()
    corpus = tmp_path / "huge.jsonl"
    corpus.write_text(json.dumps({"id": "huge", "text": words}) + "\n")
    size = str(len(words) + 1)
    args = [*base, "ingest", str(corpus), "--chunk-size", size, "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("pgsearch: error: ") and err.count("\n") == 1
    assert "54000" in err and URL_ADVICE not in err and "Traceback" not in err


def test_cli_unreachable_server_points_at_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://nobody:S3cretPW@127.0.0.1:1/none"
    assert main(["--database-url", url, "--embedder", "hashing:8", "status"]) == 1
    out, err = capsys.readouterr()
    assert "cannot connect" in err and "--database-url" in err and URL_ADVICE in err
    assert err.count("\n") == 1 and "S3cretPW" not in out + err
