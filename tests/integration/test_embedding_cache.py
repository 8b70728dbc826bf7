"""The embedding cache: what a write embeds, what it leaves alone, and when it locks."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from pgsearch import (
    ChunkingOptions,
    DocumentInput,
    DocumentRepository,
    EmbedderError,
    EmbeddingMismatchError,
    HashingEmbedder,
    Store,
)
from pgsearch.cli import main
from pgsearch.embedders.base import Vectors
from pgsearch.embedders.openai import OpenAIEmbedder
from pgsearch.embedding_cache import cache_status, clear_cache
from tests.unit.openai_stub import Reply, running_stub


class CountingEmbedder(HashingEmbedder):
    """Records every text it embeds."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.texts: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.texts.extend(texts)
        return super().embed_documents(texts)


SMALL = ChunkingOptions(max_chars=40, overlap=0)
TEXT = "First part of the text.\n\nSecond part of the text.\n\nThird part of the text."


def _repository(session: Session, embedder: HashingEmbedder) -> DocumentRepository:
    return DocumentRepository(session, embedder, chunking=SMALL)


def test_a_changed_document_re_embeds_only_its_changed_chunks(session: Session) -> None:
    embedder = CountingEmbedder(64)
    _repository(session, embedder).upsert([DocumentInput("doc", TEXT)])
    assert len(embedder.texts) == 3
    embedder.texts.clear()
    changed = TEXT.replace("Second part", "Another middle")
    summary = _repository(session, embedder).upsert([DocumentInput("doc", changed)])
    assert summary.updated == 1
    assert embedder.texts == ["Another middle of the text."]


def test_the_same_text_under_another_id_embeds_nothing(session: Session) -> None:
    embedder = CountingEmbedder(64)
    _repository(session, embedder).add([DocumentInput("one", TEXT)])
    embedder.texts.clear()
    _repository(session, embedder).add([DocumentInput("two", TEXT)])
    assert embedder.texts == []
    rows = session.execute(
        text(
            "SELECT count(DISTINCT document_id), count(*) FROM pgsearch.chunks"
            " WHERE content LIKE '%part of the text.'"
        )
    ).one()
    assert tuple(rows) == (2, 6)


def test_an_unchanged_corpus_writes_no_row(session: Session) -> None:
    embedder = CountingEmbedder(64)
    documents = [DocumentInput(f"d{i}", f"{TEXT} {i}", "title", {"i": i}) for i in range(5)]
    _repository(session, embedder).upsert(documents)
    session.flush()
    versions = "SELECT array_agg(xmin::text ORDER BY id) FROM pgsearch.{}"
    before = [session.execute(text(versions.format(t))).scalar() for t in ("documents", "chunks")]
    cached = session.execute(text("SELECT count(*) FROM pgsearch.embedding_cache")).scalar()
    embedder.texts.clear()
    summary = _repository(session, embedder).upsert(documents)
    assert (summary.unchanged, summary.chunks, embedder.texts) == (5, 0, [])
    after = [session.execute(text(versions.format(t))).scalar() for t in ("documents", "chunks")]
    assert after == before
    assert session.execute(text("SELECT count(*) FROM pgsearch.embedding_cache")).scalar() == cached


def test_a_cached_vector_of_the_wrong_dimension_is_a_clear_error(
    session: Session, embedder: HashingEmbedder
) -> None:
    session.execute(
        text(
            "INSERT INTO pgsearch.embedding_cache (model, text_hash, embedding)"
            " VALUES (:model, sha256(convert_to(:text, 'UTF8')), '[1,2,3]')"
        ),
        {"model": embedder.name, "text": "Bees make honey."},
    )
    with pytest.raises(EmbeddingMismatchError, match="cache clear"):
        DocumentRepository(session, embedder).add([DocumentInput("bees", "Bees make honey.")])


def test_status_and_clear(session: Session, embedder: HashingEmbedder) -> None:
    _repository(session, embedder).add([DocumentInput("doc", TEXT)])
    status = cache_status(session)
    assert [(m.model, m.rows) for m in status] == [(embedder.name, 3)]
    assert status[0].bytes > 3 * 64 * 4
    assert clear_cache(session, "another-model") == 0
    assert clear_cache(session) == 3
    assert cache_status(session) == []


def test_the_cli_reports_and_clears_the_cache(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    base = ["--database-url", url, "--embedder", "hashing:64"]
    assert main([*base, "cache", "status"]) == 0
    assert main([*base, "cache", "clear", "--model", "nothing-here"]) == 0
    assert "removed 0 cached vectors" in capsys.readouterr().out


def test_embedding_happens_before_row_locks(engine: Engine) -> None:
    """A slow embedder must not hold the rows it is about to replace locked."""
    with Session(engine) as setup, setup.begin():
        DocumentRepository(setup, HashingEmbedder(64)).upsert([DocumentInput("slow", "old text")])
    embedding, release = threading.Event(), threading.Event()

    class SlowEmbedder(HashingEmbedder):
        def embed_documents(self, texts: Sequence[str]) -> Vectors:
            embedding.set()
            release.wait(10)
            return super().embed_documents(texts)

    errors: list[BaseException] = []

    def write() -> None:
        try:
            with Session(engine) as session, session.begin():
                DocumentRepository(session, SlowEmbedder(64)).upsert(
                    [DocumentInput("slow", "brand new text")]
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert embedding.wait(10)
        with engine.connect() as other:
            # NOWAIT fails at once if the writer holds the row: it must not.
            row = other.execute(
                text(
                    "SELECT id FROM pgsearch.documents WHERE external_id = 'slow' FOR UPDATE NOWAIT"
                )
            ).one_or_none()
            assert row is not None
            other.rollback()
    finally:
        release.set()
        writer.join(20)
    assert errors == []
    with Session(engine) as check, check.begin():
        stored = check.execute(
            text("SELECT content FROM pgsearch.documents WHERE external_id = 'slow'")
        ).scalar()
        assert stored == "brand new text"
        check.execute(text("DELETE FROM pgsearch.documents WHERE external_id = 'slow'"))
        clear_cache(check)


def test_vectors_computed_before_a_failure_stay_in_the_cache(
    make_database: Any,
) -> None:
    """An OpenAI batch fails after another succeeded: the write fails, the first batch's
    vectors are kept, and the retry sends only what is missing."""
    texts = ["bees make honey", "postgres mvcc", "sourdough bread", "rovers on mars"]
    with running_stub() as server, Store(create_engine(make_database()), "hashing:8") as store:
        embedder = OpenAIEmbedder(
            client=server.client(), dimensions=8, batch_size=2, max_retries=1, sleep=lambda s: None
        )
        store.embedder = embedder
        store.migrate()
        server.respond = lambda request: (
            Reply(503) if "sourdough bread" in request["input"] else None
        )
        documents = [DocumentInput(f"d{i}", t) for i, t in enumerate(texts)]
        with pytest.raises(EmbedderError):
            store.upsert(documents)
        assert store.status().documents == 0
        with store.session() as session:
            assert [m.rows for m in cache_status(session)] == [2]
        server.respond = None
        server.requests.clear()
        store.upsert(documents)
        sent = [text for request in server.requests for text in request["input"]]
        assert sorted(sent) == ["rovers on mars", "sourdough bread"]
        assert store.status().documents == 4


def test_the_summary_says_where_each_vector_came_from(session: Session) -> None:
    embedder = CountingEmbedder(64)
    repository = _repository(session, embedder)
    first = repository.add([DocumentInput("one", TEXT)])
    assert (first.chunks, first.embedded, first.cached, first.given) == (3, 3, 0, 0)
    second = repository.add(
        [
            DocumentInput("two", TEXT),  # the same three texts: all cached
            DocumentInput("three", "Its own words here.", vectors=[[1.0] + [0.0] * 63]),
        ]
    )
    assert (second.chunks, second.embedded, second.cached, second.given) == (4, 0, 3, 1)


def test_the_embedded_text_includes_the_title(session: Session) -> None:
    embedder = CountingEmbedder(64)
    _repository(session, embedder).upsert([DocumentInput("doc", TEXT, "Parts")])
    assert embedder.texts[0] == "Parts\n\nFirst part of the text."
    assert len(embedder.texts) == 3
    embedder.texts.clear()
    # Metadata alone embeds nothing; a new title re-embeds every chunk, from the cache if seen.
    _repository(session, embedder).upsert([DocumentInput("doc", TEXT, "Parts", {"a": 1})])
    assert embedder.texts == []
    summary = _repository(session, embedder).upsert([DocumentInput("doc", TEXT, "Pieces")])
    assert summary.updated == 1 and summary.embedded == 3
    assert embedder.texts[0] == "Pieces\n\nFirst part of the text."
    embedder.texts.clear()
    summary = _repository(session, embedder).upsert([DocumentInput("doc", TEXT, "Parts")])
    assert summary.embedded == 0 and summary.cached == 3
