"""Vectors on the wire: checked in Python, sent to PostgreSQL in pgvector's binary format.

A query vector travels as a bound parameter of type :class:`VectorParam`: SQLAlchemy hands a
:class:`pgvector.Vector` to psycopg, which dumps it with pgvector's binary dumper (4 bytes per
dimension, no float formatting or parsing). The dumper needs the ``vector`` type's OID, looked
up once per connection by :func:`register_binary_vectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pgvector import Vector
from pgvector.psycopg.vector import VectorBinaryDumper
from psycopg.types import TypeInfo
from sqlalchemy import Connection
from sqlalchemy.types import UserDefinedType

from pgsearch.exceptions import EmbeddingMismatchError, ExtensionMissingError

__all__ = ["VectorParam", "check_query_vector", "register_binary_vectors"]

_REGISTERED = "pgsearch_binary_vector"


class VectorParam(UserDefinedType[Any]):
    """A bound ``vector`` parameter sent in binary (see the module docstring)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"

    def bind_processor(self, dialect: Any) -> Any:
        def process(value: Any) -> Vector | None:
            return None if value is None else Vector(value)

        return process


def register_binary_vectors(connection: Connection) -> int:
    """Teach this DBAPI connection pgvector's binary dumper (once per pooled connection).

    Returns:
        The OID of the database's ``vector`` type.

    Raises:
        ExtensionMissingError: The database has no ``vector`` type.
    """
    known: int | None = connection.info.get(_REGISTERED)
    if known is not None:
        return known
    dbapi_connection: Any = connection.connection.dbapi_connection
    info = TypeInfo.fetch(dbapi_connection, "vector")
    if info is None:
        raise ExtensionMissingError(
            "this database has no pgvector `vector` type: run `pgsearch migrate` first"
        )
    info.register(dbapi_connection)  # COPY ... set_types(["vector"]) finds the type by name
    dumper = type("PgsearchVectorDumper", (VectorBinaryDumper,), {"oid": info.oid})
    dbapi_connection.adapters.register_dumper(Vector, dumper)
    connection.info[_REGISTERED] = info.oid
    return int(info.oid)


def check_query_vector(
    value: Sequence[float] | NDArray[Any], dim: int, *, cosine: bool = False
) -> NDArray[np.float32]:
    """The query vector as a float32 array, checked for shape, dimension and finiteness.

    Raises:
        EmbeddingMismatchError: Wrong dimension, not one-dimensional, NaN / infinity, or
            all-zero when ``cosine`` (cosine distance to a zero vector is undefined).
    """
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingMismatchError(
            f"the query vector is not a sequence of numbers ({exc})"
        ) from None
    if array.ndim != 1:
        raise EmbeddingMismatchError(
            f"the query vector must be one-dimensional, got shape {array.shape}"
        )
    if array.shape[0] != dim:
        raise EmbeddingMismatchError(
            f"the query vector has {array.shape[0]} dimensions, the store holds {dim}: "
            "embed the query with the store's model"
        )
    if not np.isfinite(array).all():
        raise EmbeddingMismatchError("the query vector holds NaN or infinity")
    if cosine and not array.any():
        raise EmbeddingMismatchError(
            "the query vector is all-zero: cosine distance to it is undefined (every score NaN)"
        )
    return array
