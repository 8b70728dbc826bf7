"""What a write takes (:class:`DocumentInput`) and what it reports (:class:`IngestSummary`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from numpy.typing import NDArray

__all__ = ["DocumentInput", "IngestSummary", "content_hash"]


@dataclass(frozen=True)
class DocumentInput:
    """A document to store.

    Attributes:
        external_id: The caller's unique key (a path, a URL, a primary key...).
        content: The text to chunk, embed and index; must not be blank.
        title: Optional title.
        metadata: A JSON object stored on the document and repeated on its chunks.
        chunks: Chunk texts chosen by the caller, stored in this order instead of pgsearch's
            chunking of ``content``.
        vectors: Precomputed vectors (computed elsewhere, with the store's model): one per
            chunk when ``chunks`` is given, else exactly one, and the whole ``content`` is
            stored as a single chunk. Checked for dimension and finiteness; no embedder runs.
            A document whose chunk texts are unchanged keeps its stored vectors.
    """

    external_id: str
    content: str
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    chunks: Sequence[str] | None = None
    vectors: Sequence[Sequence[float]] | NDArray[Any] | None = field(default=None, compare=False)


@dataclass
class IngestSummary:
    """Counts of what a write did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    """Chunk rows written (copied); each one's vector was embedded, cached or given."""
    embedded: int = 0
    """Texts sent to the embedder."""
    cached: int = 0
    """Chunks written with a vector from the embedding cache."""
    given: int = 0
    """Chunks written with a vector the caller gave (``DocumentInput.vectors``)."""

    def __iadd__(self, other: IngestSummary) -> IngestSummary:
        for name in ("inserted", "updated", "unchanged", "chunks", "embedded", "cached", "given"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def embedded_text(title: str | None, chunk: str) -> str:
    """What is embedded for a chunk: the document's title, a blank line, the chunk's text.

    A chunk cut from the middle of a document rarely names its subject; the title does.
    Without a title (or a blank one), the chunk's text alone.
    """
    return f"{title.strip()}\n\n{chunk}" if title and title.strip() else chunk


def content_hash(value: str) -> str:
    """SHA-256 of the UTF-8 text, as hex: the key that decides whether to re-embed."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
