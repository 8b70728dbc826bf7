"""Driver errors become pgsearch errors by SQLSTATE, never by message text."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DBAPIError, OperationalError

from pgsearch import cli
from pgsearch.cli import main
from pgsearch.exceptions import (
    ConnectionFailedError,
    DatabaseError,
    EmbeddingMismatchError,
    LimitExceededError,
    NotMigratedError,
    PgSearchError,
    QueryCanceledError,
    ServerShutdownError,
    database_error,
    translate_errors,
)

URL_ADVICE = "PGSEARCH_DATABASE_URL"


def _wrapped(
    orig: Exception, *, statement: str | None = "SELECT 1", invalidated: bool = False
) -> DBAPIError:
    """What SQLAlchemy raises: ``statement`` is ``None`` when the connection attempt failed."""
    return DBAPIError.instance(
        statement, {}, orig, psycopg.Error, connection_invalidated=invalidated
    )


REFUSED = psycopg.OperationalError(
    'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
    "\tIs the server running on that host and accepting TCP/IP connections?"
)


def _connecting(orig: Exception) -> DBAPIError:
    return _wrapped(orig, statement=None)


@pytest.mark.parametrize(
    ("error", "expected", "says"),
    [
        (_connecting(REFUSED), ConnectionFailedError, "cannot connect"),
        (
            _connecting(errors.SqlclientUnableToEstablishSqlconnection("no")),
            ConnectionFailedError,
            "cannot connect",
        ),
        (_connecting(errors.InvalidPassword("auth failed")), ConnectionFailedError, "auth failed"),
        (_wrapped(errors.StatementTooComplex("stack depth")), LimitExceededError, "54001"),
        (_wrapped(errors.ProgramLimitExceeded("too long")), LimitExceededError, "54000"),
        (_wrapped(errors.QueryCanceled("canceling")), QueryCanceledError, "statement_timeout"),
        (_wrapped(errors.AdminShutdown("terminating")), ServerShutdownError, "57P01"),
        (_wrapped(errors.CrashShutdown("crash")), ServerShutdownError, "57P02"),
        (_connecting(errors.CannotConnectNow("starting")), ServerShutdownError, "57P03"),
        (_wrapped(errors.UndefinedTable("no table")), NotMigratedError, "pgsearch migrate"),
    ],
)
def test_known_states_are_translated(
    error: DBAPIError, expected: type[PgSearchError], says: str
) -> None:
    with pytest.raises(expected, match=says) as raised, translate_errors():
        raise error
    assert raised.value.__cause__ is error
    assert database_error(error).__class__ is expected


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(errors.StatementTooComplex("stack depth limit exceeded")),
        _wrapped(errors.QueryCanceled("canceling statement due to statement timeout")),
        _wrapped(errors.AdminShutdown("terminating connection due to administrator command")),
        _wrapped(errors.ConnectionFailure("server closed the connection"), invalidated=True),
        _wrapped(psycopg.OperationalError("consuming input failed"), invalidated=True),
    ],
)
def test_only_a_failed_connection_attempt_points_at_the_url(error: DBAPIError) -> None:
    assert URL_ADVICE not in str(database_error(error))


def test_a_failed_connection_attempt_points_at_the_url() -> None:
    message = str(database_error(_wrapped(REFUSED, statement=None)))
    assert "--database-url" in message and URL_ADVICE in message
    assert "Connection refused" in message


def test_a_lost_connection_is_a_connection_error_without_url_advice() -> None:
    lost = _wrapped(psycopg.OperationalError("consuming input failed"), invalidated=True)
    assert isinstance(database_error(lost), ConnectionFailedError)


def test_data_exception_is_a_vector_mismatch_only_where_vectors_are_compared() -> None:
    # pgvector reports different dimensions as SQLSTATE 22000; the message text is irrelevant.
    mismatch = _wrapped(errors.DataException("different vector dimensions 3 and 2"))
    with pytest.raises(DBAPIError) as raised, translate_errors():
        raise mismatch
    assert raised.value is mismatch  # not a vector operation: unchanged
    worded_otherwise = _wrapped(errors.DataException("les dimensions diffèrent"))
    with (
        pytest.raises(EmbeddingMismatchError, match="les dimensions"),
        translate_errors(vectors=True),
    ):
        raise worded_otherwise
    unrelated = _wrapped(errors.InvalidTextRepresentation("dimensions"))
    with pytest.raises(DBAPIError), translate_errors(vectors=True):
        raise unrelated


def test_unknown_states_propagate_unchanged_but_describe_their_class() -> None:
    full = _wrapped(errors.DiskFull("could not extend file: No space left on device"))
    with pytest.raises(DBAPIError) as raised, translate_errors():
        raise full
    assert raised.value is full
    described = database_error(full)
    assert type(described) is DatabaseError and described.sqlstate == "53100"
    assert "insufficient resources" in str(described)
    assert "No space left on device" in str(described)


def test_cli_reports_an_untranslated_database_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disk_full(*_: object) -> None:
        raise OperationalError(
            "INSERT ...", {}, errors.DiskFull("could not extend file\nHINT: free some space")
        )

    monkeypatch.setitem(cli._COMMANDS, "status", disk_full)
    url = "postgresql://alice:S3cretPW@127.0.0.1:1/none"  # never connected to
    assert main(["--database-url", url, "--embedder", "hashing:8", "status"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("pgsearch: error: ")
    assert "53100" in err and "insufficient resources" in err and "could not extend file" in err
    assert "Traceback" not in err and "S3cretPW" not in err and URL_ADVICE not in err


def test_cli_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["search"])  # no query: an argparse usage error
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        main(["search", "x", "-k", "many"])
    assert usage.value.code == 2

    def refuse(*_: object) -> None:
        raise ConnectionFailedError("cannot connect")

    monkeypatch.setitem(cli._COMMANDS, "status", refuse)
    assert (
        main(
            ["--database-url", "postgresql://u@127.0.0.1:1/x", "--embedder", "hashing:8", "status"]
        )
        == 1
    )
    capsys.readouterr()
