"""The pgsearch exception hierarchy.

Every error pgsearch raises on purpose is a :class:`PgSearchError`, and its message says what to do
next. Driver errors that have a well-known cause are translated by SQLSTATE in
:func:`translate_errors`; anything else propagates unchanged. :func:`database_error` describes any
driver error, known or not, by its SQLSTATE class, for a command line that must not show a
traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.exc import DBAPIError

__all__ = [
    "ConfigurationError",
    "ConnectionFailedError",
    "DatabaseError",
    "DocumentExistsError",
    "EmbedderError",
    "EmbeddingMismatchError",
    "ExtensionMissingError",
    "InvalidDocumentError",
    "InvalidFilterError",
    "InvalidIndexError",
    "InvalidSearchError",
    "LimitExceededError",
    "NotMigratedError",
    "PgSearchError",
    "QueryCanceledError",
    "ServerShutdownError",
    "SourceError",
    "StoreNotFoundError",
    "database_error",
    "translate_errors",
]


class PgSearchError(Exception):
    """Base class of every error pgsearch raises on purpose."""


class ConfigurationError(PgSearchError, ValueError):
    """A setting, URL or option is invalid, or an optional dependency is missing."""


class ExtensionMissingError(PgSearchError):
    """The server cannot provide the pgvector extension."""


class NotMigratedError(PgSearchError):
    """The database has no pgsearch schema (or an incomplete one)."""

    def __init__(self, detail: str = "") -> None:
        message = (
            "this database has no pgsearch schema: run `pgsearch migrate` "
            "(or `alembic upgrade head`) against it first"
        )
        super().__init__(f"{message} ({detail})" if detail else message)


class StoreNotFoundError(NotMigratedError):
    """The embedded server has no store in its data directory yet, and none was created."""

    def __init__(self, data_dir: Path) -> None:
        super(NotMigratedError, self).__init__(
            f"no pgsearch store in {data_dir}: run `pgsearch migrate` first, which creates it"
            " (or set PGSEARCH_DATA_DIR or --data-dir to the directory of an existing one)"
        )
        self.data_dir = data_dir


class EmbeddingMismatchError(PgSearchError):
    """An embedder or a vector does not match the store's model or dimension."""


class EmbedderError(PgSearchError):
    """An embedding service failed or refused a request."""


class InvalidDocumentError(PgSearchError):
    """A document cannot be stored as given (empty content, bad id or metadata)."""


class DocumentExistsError(PgSearchError):
    """``add`` was asked to insert documents whose external ids are already stored."""


class InvalidIndexError(PgSearchError, ValueError):
    """A vector index cannot be built as asked: a parameter out of pgvector's range, a storage
    the column's dimension does not allow, an unknown method, or a name already taken."""


class InvalidSearchError(PgSearchError, ValueError):
    """A search request is malformed (unknown mode, empty query, bad ``k``)."""


class InvalidFilterError(InvalidSearchError):
    """A search filter is malformed: unknown operator, wrong type, bad key."""


class SourceError(PgSearchError):
    """An input file cannot be read or parsed."""


class DatabaseError(PgSearchError):
    """The database server or the connection to it failed an operation.

    Attributes:
        sqlstate: The server's SQLSTATE, or ``None`` when the driver failed without one
            (no connection could be made, or it broke).
    """

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConnectionFailedError(DatabaseError):
    """No connection to the server could be made, or an open one was lost.

    SQLSTATE class 08, or 28 (role, password) and 3D (no such database) when connecting, or no
    SQLSTATE at all: the driver could not reach the server.
    """


class ServerShutdownError(DatabaseError):
    """The server shut down, crashed or is not accepting connections yet (57P01, 57P02, 57P03)."""


class QueryCanceledError(DatabaseError):
    """The server canceled a statement: ``statement_timeout`` or a cancel request (57014)."""


class LimitExceededError(DatabaseError):
    """A statement went past a server limit: too complex, too deep or too large (class 54)."""


# SQLSTATEs whose cause pgsearch knows: undefined table, undefined schema.
_NOT_MIGRATED_STATES = {"42P01", "3F000"}
# Failures of a connection attempt that a different URL may cure: connection exception,
# invalid authorization (role or password), invalid catalog name (no such database).
_CONNECT_CLASSES = {"08", "28", "3D"}
_SHUTDOWN_STATES = {
    "57P01": "it is shutting down, or an administrator ended this session (57P01 admin_shutdown)",
    "57P02": "it is restarting after another server process crashed (57P02 crash_shutdown)",
    "57P03": "it is starting up or shutting down (57P03 cannot_connect_now)",
}
_URL_ADVICE = (
    "check --database-url or PGSEARCH_DATABASE_URL, or unset it to use the embedded server"
)
# SQLSTATE classes of PostgreSQL's Appendix A, for errors pgsearch has no advice about.
_STATE_CLASSES = {
    "08": "a connection exception",
    "0A": "an unsupported feature",
    "21": "a cardinality violation",
    "22": "a data exception",
    "23": "an integrity constraint violation",
    "25": "an invalid transaction state",
    "28": "an invalid authorization",
    "2B": "a dependent privilege descriptor still exists",
    "2D": "an invalid transaction termination",
    "3D": "an invalid catalog name",
    "3F": "an invalid schema name",
    "40": "a transaction rollback",
    "42": "a syntax error or access rule violation",
    "53": "insufficient resources",
    "54": "a program limit exceeded",
    "55": "an object not in prerequisite state",
    "57": "an operator intervention",
    "58": "a system error",
    "F0": "a configuration file error",
    "P0": "a PL/pgSQL error",
    "XX": "an internal error",
}


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _known_error(orig: BaseException, *, connecting: bool, vectors: bool) -> PgSearchError | None:
    """The pgsearch error for a driver error whose SQLSTATE (or lack of one) pgsearch knows."""
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    reason = _first_line(orig)
    if sqlstate in _NOT_MIGRATED_STATES:
        return NotMigratedError(reason)
    if sqlstate in _SHUTDOWN_STATES:
        return ServerShutdownError(
            f"the database server cannot serve this request: {_SHUTDOWN_STATES[sqlstate]};"
            f" try again when it is back ({reason})",
            sqlstate,
        )
    if connecting and (sqlstate is None or sqlstate[:2] in _CONNECT_CLASSES):
        return ConnectionFailedError(
            f"cannot connect to the database server ({reason}); {_URL_ADVICE}", sqlstate
        )
    if sqlstate is None or sqlstate[:2] == "08":
        # An open connection broke: the URL was right, the server or the network went away.
        if isinstance(orig, psycopg.OperationalError):
            return ConnectionFailedError(
                f"lost the connection to the database server ({reason}); check that the server"
                " is running and try again",
                sqlstate,
            )
        return None
    if sqlstate == "57014":
        return QueryCanceledError(
            f"the database server canceled the statement ({reason}): it ran past"
            " statement_timeout or was canceled; allow it more time or ask for less (SQLSTATE"
            " 57014)",
            sqlstate,
        )
    if sqlstate[:2] == "54":
        what = "too complex" if sqlstate == "54001" else "too large"
        return LimitExceededError(
            f"the statement is {what} for the database server ({reason}; SQLSTATE {sqlstate}):"
            " use a shorter query, or smaller documents or chunks (--chunk-size)",
            sqlstate,
        )
    if vectors and sqlstate == "22000":
        # pgvector reports vectors of the wrong or different dimensions, NaN and infinite
        # values as data_exception; the caller knows this statement reads or writes vectors.
        return EmbeddingMismatchError(
            f"the database refused a vector ({reason}): the embedder does not fit this store;"
            " compare its model and dimension with `pgsearch status`"
        )
    return None


def _unwrap(error: DBAPIError | psycopg.Error) -> tuple[BaseException, bool]:
    """The driver's exception, and whether it came from an attempt to connect."""
    if isinstance(error, DBAPIError):
        # SQLAlchemy has no statement to report when the connection attempt itself failed.
        connecting = error.statement is None and not error.connection_invalidated
        return error.orig if error.orig is not None else error, connecting
    return error, False


def database_error(error: DBAPIError | psycopg.Error, *, vectors: bool = False) -> PgSearchError:
    """Describe a driver error as a pgsearch error, by its SQLSTATE class.

    Errors :func:`translate_errors` knows get their own class and advice; any other becomes a
    plain :class:`DatabaseError` naming its SQLSTATE and class and quoting the server's first
    line. No message includes a connection URL.

    Args:
        error: A SQLAlchemy-wrapped or a raw psycopg error.
        vectors: The failed statement compared or stored vectors (see :func:`translate_errors`).
    """
    orig, connecting = _unwrap(error)
    known = _known_error(orig, connecting=connecting, vectors=vectors)
    if known is not None:
        return known
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    reason = _first_line(orig)
    if sqlstate is None:
        return DatabaseError(f"the database driver failed: {reason}")
    kind = _STATE_CLASSES.get(sqlstate[:2], "an error")
    return DatabaseError(
        f"the database server reported {kind} (SQLSTATE {sqlstate}): {reason}", sqlstate
    )


@contextmanager
def translate_errors(*, vectors: bool = False) -> Iterator[None]:
    """Re-raise driver errors with a known cause as pgsearch errors.

    Translation is by SQLSTATE, never by message text, so it survives server locales and
    wording changes. Errors of no known cause propagate unchanged.

    Args:
        vectors: The statements compare or store pgvector values, so a ``22000``
            data_exception (how pgvector reports vectors of different dimensions) means
            the embedder does not fit the store: raise :class:`EmbeddingMismatchError`.
    """
    try:
        yield
    except DBAPIError as exc:
        orig, connecting = _unwrap(exc)
        known = _known_error(orig, connecting=connecting, vectors=vectors)
        if known is None:
            raise
        raise known from exc
