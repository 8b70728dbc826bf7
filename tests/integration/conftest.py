"""A migrated store shared by the integration tests, and per-test rolled-back sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import URL, Engine, create_engine
from sqlalchemy.orm import Session

from pgsearch import DocumentInput, HashingEmbedder, StoreOptions
from pgsearch.migrations import upgrade

DIM = 64


@pytest.fixture(scope="session")
def embedder() -> HashingEmbedder:
    return HashingEmbedder(DIM)


@pytest.fixture(scope="session")
def engine(make_database: Callable[[], URL], embedder: HashingEmbedder) -> Iterator[Engine]:
    """Engine of a database migrated once for the hashing embedder."""
    engine = create_engine(make_database())
    upgrade(engine, StoreOptions(dim=DIM, model=embedder.name))
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session joined to an outer transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            yield session
        transaction.rollback()


@pytest.fixture
def corpus() -> list[DocumentInput]:
    return [
        DocumentInput(
            "bees",
            "Honeybees pollinate crops and make honey in wax comb.",
            "Bees",
            {"topic": "nature"},
        ),
        DocumentInput(
            "postgres",
            "PostgreSQL uses MVCC so readers never block writers.",
            "Postgres",
            {"topic": "databases"},
        ),
        DocumentInput(
            "bread",
            "Sourdough bread rises with a starter of wild yeast.",
            "Bread",
            {"topic": "cooking"},
        ),
        DocumentInput(
            "index",
            "A B-tree index keeps keys sorted for fast range scans.",
            "Indexes",
            {"topic": "databases"},
        ),
        DocumentInput(
            "rovers",
            "Robotic rovers explore Mars and drill rock samples.",
            "Rovers",
            {"topic": "astronomy"},
        ),
    ]
