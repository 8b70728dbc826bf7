"""Small value types shared across pgsearch: distances and search modes."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from pgsearch.exceptions import ConfigurationError, InvalidSearchError

__all__ = ["Distance", "SearchMode", "vector_literal"]


class Distance(Enum):
    """A pgvector distance, carrying its operator and its index operator class.

    The value is the name stored in the database and accepted on the command line.
    """

    COSINE = "cosine"
    L2 = "l2"
    INNER_PRODUCT = "inner_product"

    @property
    def operator(self) -> str:
        """The pgvector operator that orders by this distance (ascending)."""
        return {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}[self.value]

    @property
    def opclass(self) -> str:
        """The HNSW / IVFFlat operator class that serves :attr:`operator`."""
        return {
            "cosine": "vector_cosine_ops",
            "l2": "vector_l2_ops",
            "inner_product": "vector_ip_ops",
        }[self.value]

    @classmethod
    def parse(cls, value: str | Distance) -> Distance:
        """Return the distance named ``value`` or raise :class:`ConfigurationError`."""
        if isinstance(value, Distance):
            return value
        try:
            return cls(value.strip().lower().replace("-", "_"))
        except ValueError:
            names = ", ".join(d.value for d in cls)
            raise ConfigurationError(f"unknown distance {value!r}: use one of {names}") from None


class SearchMode(Enum):
    """How :meth:`SearchRepository.search` ranks chunks."""

    VECTOR = "vector"
    TEXT = "text"
    BM25 = "bm25"
    HYBRID = "hybrid"

    @classmethod
    def parse(cls, value: str | SearchMode) -> SearchMode:
        """Return the mode named ``value`` or raise :class:`InvalidSearchError`."""
        if isinstance(value, SearchMode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise InvalidSearchError(f"unknown search mode {value!r}: use one of {names}") from None


def vector_literal(values: Iterable[float]) -> str:
    """pgvector's text form of a vector, ``[1.0,2.5,...]``, for a bound parameter."""
    return "[" + ",".join(repr(float(x)) for x in values) + "]"
