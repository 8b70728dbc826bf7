"""Alembic revisions of the pgsearch schema, shipped in the wheel (branch label ``pgsearch``).

Applications with their own Alembic setup add ``pgsearch:migrations/versions`` to their
``version_locations``. Importing this package registers the vector index operations
(``op.create_vector_index``, ``op.drop_vector_index``, ``op.rebuild_vector_index``; see
:mod:`pgsearch.migrations.operations`). Everyone else uses :func:`upgrade` / :func:`downgrade`
(``pgsearch migrate`` / ``pgsearch downgrade``).
"""

from __future__ import annotations

from alembic.config import Config
from sqlalchemy import Engine

from alembic import command
from pgsearch.index_catalog import forget_search_index
from pgsearch.migrations import operations as operations  # registers op.create_vector_index
from pgsearch.migrations.environment import VERSION_TABLE
from pgsearch.migrations.options import ATTRIBUTE, StoreOptions
from pgsearch.store_config import forget_store_settings

__all__ = ["VERSION_TABLE", "StoreOptions", "alembic_config", "downgrade", "upgrade"]


def alembic_config() -> Config:
    """An Alembic config whose scripts are the revisions inside the installed package."""
    config = Config()
    config.set_main_option("script_location", "pgsearch:migrations")
    return config


def upgrade(engine: Engine, options: StoreOptions | None = None, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` in one transaction.

    Args:
        engine: Engine of the target database.
        options: Parameters of a new store; ignored once the store exists.
        revision: Target revision (default ``head``).
    """
    config = alembic_config()
    config.attributes[ATTRIBUTE] = options or StoreOptions()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    forget_store_settings(engine)
    forget_search_index(engine)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the database behind ``engine`` to ``revision`` (``base`` removes pgsearch)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    forget_store_settings(engine)
    forget_search_index(engine)
