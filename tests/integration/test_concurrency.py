"""Two writers on one document: the second waits for the first and then writes whole."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import URL, Engine, create_engine, text
from sqlalchemy.orm import Session

from pgsearch import (
    DocumentExistsError,
    DocumentInput,
    DocumentRepository,
    HashingEmbedder,
    StoreOptions,
)
from pgsearch.migrations import upgrade


@pytest.fixture
def committed_engine(make_database: Callable[[], URL]) -> Iterator[Engine]:
    """A store of its own: these tests commit, so they stay out of the shared database."""
    engine = create_engine(make_database())
    upgrade(engine, StoreOptions(dim=64, model="hashing-64"))
    yield engine
    engine.dispose()


def _race(
    engine: Engine, first: Callable[[Session], object], second: Callable[[Session], object]
) -> list[BaseException]:
    """Run ``first`` uncommitted, start ``second`` in a thread, then commit ``first``."""
    errors: list[BaseException] = []
    started = threading.Event()

    def run_second() -> None:
        try:
            with Session(engine) as session, session.begin():
                started.set()
                second(session)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    with Session(engine) as session, session.begin():
        first(session)
        thread = threading.Thread(target=run_second)
        thread.start()
        started.wait(10)
        # Give the second writer time to reach the row lock held by this transaction.
        thread.join(0.5)
    thread.join(30)
    assert not thread.is_alive()
    return errors


def test_concurrent_upserts_of_a_new_document(committed_engine: Engine) -> None:
    embedder = HashingEmbedder(64)
    one = DocumentInput("x", "First version of the text.", "one")
    two = DocumentInput("x", "Second version, written by the other transaction.", "two")
    errors = _race(
        committed_engine,
        lambda s: DocumentRepository(s, embedder).upsert(one),
        lambda s: DocumentRepository(s, embedder).upsert(two),
    )
    assert errors == []
    with committed_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.title, c.content FROM pgsearch.documents d"
                " JOIN pgsearch.chunks c ON c.document_id = d.id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("two", two.content)]


def test_concurrent_add_of_the_same_id_is_refused_and_writes_nothing(
    committed_engine: Engine,
) -> None:
    embedder = HashingEmbedder(64)
    refused: list[Exception] = []

    def add_and_commit_anyway(session: Session) -> None:
        # "w" sorts before "x": its row is written before the conflict on "x" shows up.
        try:
            DocumentRepository(session, embedder).add(
                [DocumentInput("w", "also theirs"), DocumentInput("x", "theirs")]
            )
        except DocumentExistsError as exc:
            refused.append(exc)  # a caller that carries on and commits its transaction

    errors = _race(
        committed_engine,
        lambda s: DocumentRepository(s, embedder).add(DocumentInput("x", "mine")),
        add_and_commit_anyway,
    )
    assert errors == [] and len(refused) == 1
    with committed_engine.connect() as conn:
        assert conn.execute(text("SELECT external_id FROM pgsearch.documents")).scalars().all() == [
            "x"
        ]
        assert conn.execute(text("SELECT content FROM pgsearch.chunks")).scalars().all() == ["mine"]
