"""The :class:`Embedder` protocol every embedding backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embedder", "Vectors", "check_vectors"]

Vectors = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into fixed-size float vectors.

    ``name`` identifies the model (it is recorded in the store, so two embedders with the same
    name must produce the same vector space) and ``dimension`` is the vector length.
    """

    @property
    def name(self) -> str:
        """Model identifier recorded in the store."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed document chunks; returns an array of shape ``(len(texts), dimension)``."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Embed a search query; returns an array of shape ``(dimension,)``."""
        ...


def check_vectors(vectors: Vectors, count: int, dimension: int, name: str) -> Vectors:
    """Check an embedder's output shape and values; return it as float32.

    Raises:
        EmbeddingMismatchError: Wrong shape, or NaN / infinite values.
    """
    from pgsearch.exceptions import EmbeddingMismatchError

    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != count or array.shape[1] != dimension:
        raise EmbeddingMismatchError(
            f"embedder {name} returned vectors of shape {array.shape}, expected "
            f"({count}, {dimension}): check that the embedder's dimension matches its model"
        )
    if not np.isfinite(array).all():
        raise EmbeddingMismatchError(f"embedder {name} returned NaN or infinite values")
    return array
