"""Embeddings from the OpenAI embeddings API (or any server that speaks it).

The client reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` as usual; pass ``client=`` to share
one. Requests carry at most ``batch_size`` texts, and results are put back in input order by
their ``index``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pgsearch.embedders.base import Vectors, check_vectors
from pgsearch.exceptions import ConfigurationError, EmbedderError

__all__ = ["KNOWN_DIMENSIONS", "OpenAIEmbedder"]

KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedder:
    """Embeds through ``client.embeddings.create``.

    Args:
        model: Embedding model name (default ``text-embedding-3-small``).
        dimensions: Shortened output size (``text-embedding-3-*`` only); also required for
            models whose size pgsearch does not know.
        batch_size: Texts per request (the API accepts up to 2,048).
        client: An ``openai.OpenAI`` client; default: one built from the environment.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        batch_size: int = 256,
        client: Any = None,
    ) -> None:
        if dimensions is None and model not in KNOWN_DIMENSIONS:
            raise ConfigurationError(
                f"pgsearch does not know the size of OpenAI model {model!r}: pass dimensions="
            )
        if not 1 <= batch_size <= 2048:
            raise ConfigurationError("batch_size must be between 1 and 2048")
        self._model = model
        self._dimensions = dimensions
        self._batch_size = batch_size
        self._client = client

    @property
    def name(self) -> str:
        """``openai/<model>``, with ``@<dimensions>`` when the output is shortened."""
        suffix = f"@{self._dimensions}" if self._dimensions is not None else ""
        return f"openai/{self._model}{suffix}"

    @property
    def dimension(self) -> int:
        """Vector length."""
        return self._dimensions or KNOWN_DIMENSIONS[self._model]

    def _client_or_default(self) -> Any:
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise ConfigurationError(
                    "the OpenAI embedder needs `pip install 'pgsearch[openai]'`"
                ) from exc
            self._client = OpenAI()
        return self._client

    def _request(self, texts: Sequence[str]) -> list[list[float]]:
        import openai

        options: dict[str, Any] = {"model": self._model, "input": list(texts)}
        if self._dimensions is not None:
            options["dimensions"] = self._dimensions
        try:
            response = self._client_or_default().embeddings.create(**options)
        except openai.AuthenticationError as exc:
            raise EmbedderError(
                f"the embeddings API refused the credentials ({exc.status_code}): "
                "set OPENAI_API_KEY"
            ) from exc
        except openai.OpenAIError as exc:
            raise EmbedderError(
                f"the embeddings API failed for model {self._model}: {exc}"
            ) from exc
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(len(texts))):
            raise EmbedderError(
                f"the embeddings API answered {len(data)} embeddings for {len(texts)} inputs"
            )
        return [item.embedding for item in data]

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed texts, ``batch_size`` per request."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._request(texts[start : start + self._batch_size]))
        array = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        if not rows:
            array = np.zeros((0, self.dimension), dtype=np.float32)
        return check_vectors(array, len(texts), self.dimension, self.name)

    def embed_query(self, text: str) -> Vectors:
        """Embed one query."""
        query: Vectors = self.embed_documents([text])[0]
        return query
