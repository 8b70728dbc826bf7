"""Documents in and out: add, upsert, get, delete, and bad input that writes nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import URL, create_engine, text
from sqlalchemy.orm import Session

from pgsearch import (
    ChunkingOptions,
    DocumentExistsError,
    DocumentInput,
    DocumentRepository,
    EmbeddingMismatchError,
    HashingEmbedder,
    InvalidDocumentError,
    NotMigratedError,
    SearchRepository,
)
from pgsearch.embedders.base import Vectors
from pgsearch.ingest import content_hash
from tests.integration.helpers import row_counts


def test_add_and_get(
    session: Session, embedder: HashingEmbedder, corpus: list[DocumentInput]
) -> None:
    summary = DocumentRepository(session, embedder).add(corpus)
    assert (summary.inserted, summary.updated, summary.chunks) == (5, 0, 5)
    doc = DocumentRepository(session, embedder).get("bees")
    assert doc is not None
    assert (doc.title, doc.metadata_) == ("Bees", {"topic": "nature"})
    assert [c.position for c in doc.chunks] == [0]
    assert doc.chunks[0].metadata_ == {"topic": "nature"}
    assert len(doc.chunks[0].embedding) == embedder.dimension
    assert DocumentRepository(session, embedder).get("missing") is None


def test_long_document_is_chunked_in_order(session: Session, embedder: HashingEmbedder) -> None:
    content = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))
    repo = DocumentRepository(session, embedder, chunking=ChunkingOptions(200, 40))
    summary = repo.add(DocumentInput("long", content))
    doc = repo.get("long")
    assert doc is not None and summary.chunks == len(doc.chunks) > 5
    assert [c.position for c in doc.chunks] == list(range(len(doc.chunks)))
    assert all(len(c.content) <= 200 for c in doc.chunks)
    tsv_matches = session.execute(
        text("SELECT count(*) FROM pgsearch.chunks WHERE tsv @@ to_tsquery('english', 'sentence')")
    ).scalar()
    assert tsv_matches == len(doc.chunks)


def test_add_refuses_existing_ids_and_writes_nothing(
    session: Session, embedder: HashingEmbedder, corpus: list[DocumentInput]
) -> None:
    repo = DocumentRepository(session, embedder)
    repo.add(corpus[:2])
    with pytest.raises(DocumentExistsError, match="bees"):
        repo.add([DocumentInput("new-one", "fresh text"), corpus[0]])
    assert repo.get("new-one") is None
    assert row_counts(session) == (2, 2)


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(64)
        self.embedded: list[str] = []

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        return super().embed_documents(texts)


def test_upsert_reembeds_only_changed_content(
    session: Session, corpus: list[DocumentInput]
) -> None:
    counting = CountingEmbedder()
    repo = DocumentRepository(session, counting)
    repo.upsert(corpus)
    counting.embedded.clear()

    unchanged = repo.upsert(corpus)
    assert (unchanged.inserted, unchanged.updated, unchanged.unchanged) == (0, 0, 5)
    assert counting.embedded == []

    tagged = DocumentInput("bees", corpus[0].content, "Bees", {"topic": "insects"})
    summary = repo.upsert(tagged)
    assert (summary.updated, summary.chunks) == (1, 0)  # metadata alone embeds nothing
    assert counting.embedded == []
    doc = repo.get("bees")
    assert doc is not None and doc.chunks[0].metadata_ == {"topic": "insects"}  # it follows

    # The embedded text includes the title: a new title re-embeds.
    retitled = DocumentInput("bees", corpus[0].content, "Bees!", {"topic": "insects"})
    summary = repo.upsert(retitled)
    assert (summary.updated, summary.chunks) == (1, 1)
    assert counting.embedded == ["Bees!\n\n" + corpus[0].content]
    counting.embedded.clear()
    session.expire_all()
    doc = repo.get("bees")
    assert doc is not None and doc.title == "Bees!"

    rewritten = DocumentInput("bees", "Bumblebees nest in the ground.", "Bees", {})
    summary = repo.upsert(rewritten)
    assert (summary.updated, summary.chunks) == (1, 1)
    assert counting.embedded == ["Bees\n\nBumblebees nest in the ground."]
    session.expire_all()
    doc = repo.get("bees")
    assert doc is not None and [c.content for c in doc.chunks] == ["Bumblebees nest in the ground."]
    assert row_counts(session) == (5, 5)


def test_new_chunking_settings_rechunk_on_upsert(
    session: Session, embedder: HashingEmbedder
) -> None:
    content = " ".join(f"Sentence {i} is about bees and honey." for i in range(30))
    doc = DocumentInput("long", content)
    first = DocumentRepository(session, embedder, chunking=ChunkingOptions(400, 50)).upsert(doc)
    again = DocumentRepository(session, embedder, chunking=ChunkingOptions(400, 50)).upsert(doc)
    assert (again.unchanged, again.chunks) == (1, 0)
    smaller = DocumentRepository(session, embedder, chunking=ChunkingOptions(150, 20))
    summary = smaller.upsert(doc)
    assert (summary.updated, summary.unchanged) == (1, 0)
    assert summary.chunks > first.chunks
    stored = smaller.get("long")
    assert stored is not None and len(stored.chunks) == summary.chunks
    assert all(len(c.content) <= 150 for c in stored.chunks)


def test_stale_content_hash_is_repaired(session: Session, embedder: HashingEmbedder) -> None:
    repo = DocumentRepository(session, embedder)
    repo.add(DocumentInput("a", "Some text about bees."))
    session.execute(text("UPDATE pgsearch.documents SET content_hash = 'stale'"))
    summary = repo.upsert(DocumentInput("a", "Some text about bees."))
    assert (summary.updated, summary.chunks) == (1, 0)
    assert session.execute(text("SELECT content_hash FROM pgsearch.documents")).scalar() == (
        content_hash("Some text about bees.")
    )


def test_delete_cascades_to_chunks(
    session: Session, embedder: HashingEmbedder, corpus: list[DocumentInput]
) -> None:
    repo = DocumentRepository(session, embedder)
    repo.add(corpus)
    assert repo.delete(["bees", "bread", "not-there"]) == 2
    assert repo.delete("bees") == 0
    assert row_counts(session) == (3, 3)


@pytest.mark.parametrize(
    "bad,message",
    [
        (DocumentInput("empty", ""), "has no text"),
        (DocumentInput("blank", " \n\t "), "has no text"),
        (DocumentInput("", "text"), "is empty"),
        (DocumentInput("nul", "a\x00b"), "NUL"),
        (DocumentInput("meta", "text", metadata={"when": object()}), "JSON"),
        (
            DocumentInput("meta-nul", "text", metadata={"tags": ["a\x00"]}),
            "metadata contains a NUL",
        ),
        (DocumentInput("surrogate", "half a pair: \ud800"), "not valid Unicode"),
    ],
)
def test_bad_documents_write_nothing(
    session: Session,
    embedder: HashingEmbedder,
    corpus: list[DocumentInput],
    bad: DocumentInput,
    message: str,
) -> None:
    with pytest.raises(InvalidDocumentError, match=message):
        DocumentRepository(session, embedder).upsert([*corpus, bad])
    assert row_counts(session) == (0, 0)


def test_duplicate_ids_in_one_batch_are_refused(
    session: Session, embedder: HashingEmbedder
) -> None:
    with pytest.raises(InvalidDocumentError, match="twice"):
        DocumentRepository(session, embedder).add(
            [DocumentInput("a", "one"), DocumentInput("a", "two")]
        )


def test_embedder_of_another_dimension_is_refused(
    session: Session, corpus: list[DocumentInput]
) -> None:
    with pytest.raises(
        EmbeddingMismatchError, match=r"64-dimension vectors of hashing-64.*migrate --dim 32"
    ):
        DocumentRepository(session, HashingEmbedder(32)).add(corpus)
    with pytest.raises(EmbeddingMismatchError):
        SearchRepository(session, HashingEmbedder(32)).search("bees", mode="vector")
    assert row_counts(session) == (0, 0)


class RenamedEmbedder(HashingEmbedder):
    @property
    def name(self) -> str:
        return "some-other-model"


def test_embedder_of_another_model_is_refused(
    session: Session, corpus: list[DocumentInput]
) -> None:
    with pytest.raises(EmbeddingMismatchError, match="not the model this store was built with"):
        DocumentRepository(session, RenamedEmbedder(64)).add(corpus)


class BrokenEmbedder(HashingEmbedder):
    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        vectors: Vectors = super().embed_documents(texts)
        return vectors[:, :10]


class NanEmbedder(HashingEmbedder):
    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        return np.full((len(texts), 64), np.nan, dtype=np.float32)


@pytest.mark.parametrize("bad_embedder", [BrokenEmbedder(64), NanEmbedder(64)])
def test_bad_vectors_are_refused_before_writing(
    session: Session, corpus: list[DocumentInput], bad_embedder: HashingEmbedder
) -> None:
    with pytest.raises(EmbeddingMismatchError):
        DocumentRepository(session, bad_embedder).add(corpus)
    assert row_counts(session) == (0, 0)


def test_unmigrated_database_is_refused(
    make_database: Callable[[], URL], embedder: HashingEmbedder
) -> None:
    engine = create_engine(make_database())
    with Session(engine) as session:
        with pytest.raises(NotMigratedError, match="pgsearch migrate"):
            DocumentRepository(session, embedder).add([DocumentInput("a", "text")])
        session.rollback()
        with pytest.raises(NotMigratedError, match="pgsearch migrate"):
            SearchRepository(session, embedder).search("text", mode="text")
        session.rollback()
        with pytest.raises(NotMigratedError):
            DocumentRepository(session, embedder).get("a")
    engine.dispose()
