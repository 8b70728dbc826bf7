"""Embedding backends and the spec strings that name them.

A spec is ``provider:model``: ``sentence-transformers:all-MiniLM-L6-v2`` (the default) or
``openai:text-embedding-3-small`` (the OpenAI API; ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) or
``hashing:64`` (a deterministic bag-of-words embedder for tests).

``sentence-transformers`` models run on ONNX Runtime where ``onnxruntime`` and ``tokenizers`` are
installed (exported once, with torch, into the user's cache directory), else on torch; both
give the same vectors under the same name. Nothing heavy is imported until the first embedding.
"""

from __future__ import annotations

from pgsearch.embedders.base import Embedder, Vectors, check_vectors
from pgsearch.embedders.hashing import HashingEmbedder
from pgsearch.exceptions import ConfigurationError

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "Vectors",
    "check_vectors",
    "describe_embedder",
    "load_embedder",
]

_PROVIDERS = ("sentence-transformers", "openai", "hashing")


def _split_spec(spec: str) -> tuple[str, str]:
    provider, sep, model = spec.partition(":")
    if not sep or provider not in _PROVIDERS or not model:
        raise ConfigurationError(
            f"unknown embedder {spec!r}: write provider:model with provider one of "
            f"{', '.join(_PROVIDERS)}, e.g. sentence-transformers:all-MiniLM-L6-v2 or hashing:64"
        )
    return provider, model


def load_embedder(spec: str) -> Embedder:
    """Build the embedder a spec names; heavy models load lazily on first use."""
    provider, model = _split_spec(spec)
    if provider == "hashing":
        try:
            return HashingEmbedder(int(model))
        except ValueError:
            raise ConfigurationError(
                f"hashing embedder needs a positive dimension, got {model!r}"
            ) from None
    if provider == "openai":
        from pgsearch.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder(model)
    from pgsearch.embedders.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model)


def describe_embedder(spec: str) -> tuple[str, int]:
    """``(name, dimension)`` of the embedder a spec names, without loading known models."""
    embedder = load_embedder(spec)
    return embedder.name, embedder.dimension
