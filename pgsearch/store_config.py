"""Reading the store's recorded configuration and refusing embedders that do not match it."""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from pgsearch.embedders.base import Embedder
from pgsearch.exceptions import EmbeddingMismatchError, NotMigratedError, translate_errors
from pgsearch.types import Distance

__all__ = [
    "StoreSettings",
    "cached_store_settings",
    "check_embedder",
    "forget_store_settings",
    "load_store_settings",
]


@dataclass(frozen=True)
class StoreSettings:
    """What the store was migrated with (the ``pgsearch.store_config`` row)."""

    embedding_model: str
    embedding_dim: int
    distance: Distance
    text_config: str


def load_store_settings(session: Session | Connection) -> StoreSettings:
    """Read the store configuration.

    Raises:
        NotMigratedError: The database has no pgsearch schema.
    """
    with translate_errors():
        # to_regclass keeps an unmigrated database from aborting the caller's transaction.
        exists = session.execute(text("SELECT to_regclass('pgsearch.store_config')")).scalar()
        if exists is None:
            raise NotMigratedError("table pgsearch.store_config is missing")
        row = session.execute(
            text(
                "SELECT embedding_model, embedding_dim, distance, text_config"
                " FROM pgsearch.store_config"
            )
        ).one_or_none()
    if row is None:
        raise NotMigratedError("pgsearch.store_config is empty")
    return StoreSettings(
        embedding_model=row.embedding_model,
        embedding_dim=row.embedding_dim,
        distance=Distance.parse(row.distance),
        text_config=row.text_config,
    )


# The configuration row is written once, when a store is first migrated: searches read it
# once per engine instead of twice per call. Migrating through pgsearch clears the entry.
_CACHE: WeakKeyDictionary[Engine, StoreSettings] = WeakKeyDictionary()


def cached_store_settings(connection: Connection) -> StoreSettings:
    """The store configuration of ``connection``'s engine, read on first use.

    Raises:
        NotMigratedError: The database has no pgsearch schema.
    """
    settings = _CACHE.get(connection.engine)
    if settings is None:
        settings = _CACHE[connection.engine] = load_store_settings(connection)
    return settings


def forget_store_settings(engine: Engine) -> None:
    """Drop the cached configuration of ``engine`` (after a migration changed it)."""
    _CACHE.pop(engine, None)


def check_embedder(settings: StoreSettings, embedder: Embedder) -> None:
    """Refuse an embedder whose model or dimension differs from the store's.

    Raises:
        EmbeddingMismatchError: With what to do about it.
    """
    if embedder.dimension != settings.embedding_dim:
        raise EmbeddingMismatchError(
            f"embedder {embedder.name} makes {embedder.dimension}-dimension vectors, but this "
            f"store holds {settings.embedding_dim}-dimension vectors of "
            f"{settings.embedding_model}: use that model (PGSEARCH_EMBEDDER), or run "
            f"`pgsearch migrate --dim {embedder.dimension}` on a new database and re-ingest"
        )
    if embedder.name != settings.embedding_model:
        raise EmbeddingMismatchError(
            f"embedder {embedder.name} is not the model this store was built with "
            f"({settings.embedding_model}); vectors of different models are not comparable: "
            "use that model (PGSEARCH_EMBEDDER), or migrate a new database and re-ingest"
        )
