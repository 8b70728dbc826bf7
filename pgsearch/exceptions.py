"""The pgsearch exception hierarchy.

Every error pgsearch raises on purpose is a :class:`PgSearchError`, and its message says what to do
next. Driver errors that have a well-known cause are translated by SQLSTATE in
:func:`translate_errors`; anything else propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

__all__ = [
    "ConfigurationError",
    "DocumentExistsError",
    "EmbedderError",
    "EmbeddingMismatchError",
    "ExtensionMissingError",
    "InvalidDocumentError",
    "InvalidFilterError",
    "InvalidSearchError",
    "NotMigratedError",
    "PgSearchError",
    "SourceError",
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


class EmbeddingMismatchError(PgSearchError):
    """An embedder or a vector does not match the store's model or dimension."""


class EmbedderError(PgSearchError):
    """An embedding service failed or refused a request."""


class InvalidDocumentError(PgSearchError):
    """A document cannot be stored as given (empty content, bad id or metadata)."""


class DocumentExistsError(PgSearchError):
    """``add`` was asked to insert documents whose external ids are already stored."""


class InvalidSearchError(PgSearchError, ValueError):
    """A search request is malformed (unknown mode, empty query, bad ``k``)."""


class InvalidFilterError(InvalidSearchError):
    """A search filter is malformed: unknown operator, wrong type, bad key."""


class SourceError(PgSearchError):
    """An input file cannot be read or parsed."""


# SQLSTATEs whose cause pgsearch knows: undefined table, undefined schema.
_NOT_MIGRATED_STATES = {"42P01", "3F000"}


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise driver errors with a known cause as pgsearch errors.

    Translation is by SQLSTATE, never by message text, so it survives server locales.
    """
    try:
        yield
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _NOT_MIGRATED_STATES:
            raise NotMigratedError(str(exc.orig).splitlines()[0]) from exc
        if sqlstate == "22000" and "dimensions" in str(exc.orig):
            raise EmbeddingMismatchError(str(exc.orig).splitlines()[0]) from exc
        raise
