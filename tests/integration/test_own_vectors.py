"""Documents that carry vectors computed elsewhere: stored as given, no embedder runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from pgsearch import (
    DocumentInput,
    DocumentRepository,
    EmbeddingMismatchError,
    HashingEmbedder,
    InvalidDocumentError,
    SearchRepository,
)
from pgsearch.embedders.base import Vectors


class NoEmbedder(HashingEmbedder):
    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        raise AssertionError(f"the embedder ran for {len(texts)} texts")


def _unit(seed: int, dim: int = 64) -> Any:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _stored(session: Session, external_id: str) -> list[tuple[int, str, list[float]]]:
    rows = session.execute(
        text(
            "SELECT c.position, c.content, c.embedding::text FROM pgsearch.chunks c"
            " JOIN pgsearch.documents d ON d.id = c.document_id"
            " WHERE d.external_id = :id ORDER BY c.position"
        ),
        {"id": external_id},
    ).all()
    return [(r[0], r[1], [float(x) for x in r[2].strip("[]").split(",")]) for r in rows]


def test_one_vector_per_document_is_one_chunk(session: Session) -> None:
    long = "A long text. " * 200  # pgsearch would cut it into several chunks
    summary = DocumentRepository(session, NoEmbedder(64)).add(
        [
            DocumentInput("a", long, vectors=[_unit(1)]),
            DocumentInput("b", "Short.", vectors=_unit(2)),
        ]
    )
    assert summary.chunks == 2
    [(position, content, vector)] = _stored(session, "a")
    assert (position, content) == (0, long)
    assert vector == pytest.approx(_unit(1).tolist(), abs=1e-6)
    hits = SearchRepository(session).search(query_vector=_unit(2), k=1, exact=True)
    assert hits[0].external_id == "b" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_one_vector_per_given_chunk(session: Session) -> None:
    chunks = ["First chunk.", "Second chunk.", "Third chunk."]
    vectors = np.stack([_unit(i) for i in range(3)])
    DocumentRepository(session, NoEmbedder(64)).add(
        [DocumentInput("doc", " ".join(chunks), chunks=chunks, vectors=vectors)]
    )
    stored = _stored(session, "doc")
    assert [(p, c) for p, c, _ in stored] == list(enumerate(chunks))
    for (_, _, vector), expected in zip(stored, vectors, strict=True):
        assert vector == pytest.approx(expected.tolist(), abs=1e-6)


def test_given_chunks_without_vectors_are_embedded_as_given(
    session: Session, embedder: HashingEmbedder
) -> None:
    DocumentRepository(session, embedder).add(
        [DocumentInput("doc", "ignored for chunking", chunks=["one part", "another part"])]
    )
    assert [c for _, c, _ in _stored(session, "doc")] == ["one part", "another part"]


@pytest.mark.parametrize(
    "bad,error,message",
    [
        (DocumentInput("d", "t", vectors=[[0.1] * 32]), EmbeddingMismatchError, "32 dimensions"),
        (DocumentInput("d", "t", vectors=[[np.nan] * 64]), InvalidDocumentError, "NaN"),
        (DocumentInput("d", "t", vectors=[[0.1] * 64] * 2), InvalidDocumentError, "exactly one"),
        (
            DocumentInput("d", "t", chunks=["a", "b"], vectors=[[0.1] * 64]),
            InvalidDocumentError,
            "one per chunk",
        ),
        (DocumentInput("d", "t", vectors=[[0.0] * 64]), EmbeddingMismatchError, "all-zero"),
        (DocumentInput("d", "t", chunks=["a", " "]), InvalidDocumentError, "chunk 1 has no text"),
        (DocumentInput("d", "t", chunks="ab"), InvalidDocumentError, "list of texts"),
        (DocumentInput("d", "t", vectors=[["x"] * 64]), InvalidDocumentError, "not numbers"),
    ],
)
def test_bad_vectors_write_nothing(
    session: Session, bad: DocumentInput, error: type[Exception], message: str
) -> None:
    good = DocumentInput("good", "a good one", vectors=[_unit(5)])
    with pytest.raises(error, match=message):
        DocumentRepository(session, NoEmbedder(64)).add([good, bad])
    assert session.execute(text("SELECT count(*) FROM pgsearch.documents")).scalar() == 0
