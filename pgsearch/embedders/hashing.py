"""A tiny deterministic embedder: hashed bag of words, for fast tests and offline demos.

It has no semantic knowledge (synonyms do not meet), but equal words map to equal
dimensions, so lexical overlap gives cosine similarity. Never a substitute for a real model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from pgsearch.embedders.base import Vectors

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature-hashing embedder: each lower-cased word adds ±1 to one of ``dimension`` slots.

    Args:
        dimension: Vector length (default 64).
    """

    def __init__(self, dimension: int = 64) -> None:
        if dimension < 1:
            raise ValueError("dimension must be positive")
        self._dimension = dimension

    @property
    def name(self) -> str:
        """``hashing-<dimension>``."""
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        """Vector length."""
        return self._dimension

    def _embed(self, text: str) -> Vectors:
        vector = np.zeros(self._dimension, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            slot = int.from_bytes(digest[:4], "little") % self._dimension
            vector[slot] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            # A text with no words still needs a valid (non-zero) vector for cosine distance.
            vector[0] = 1.0
            return vector
        return vector / norm

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed each text; rows are L2-normalised."""
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._embed(text) for text in texts])

    def embed_query(self, text: str) -> Vectors:
        """Embed a query like a document."""
        return self._embed(text)
