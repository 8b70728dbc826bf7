"""The Alembic environment shared by ``pgsearch migrate`` and the repository's ``alembic/``.

A connection handed in through ``config.attributes["connection"]`` is used as is (the caller owns
its transaction). Otherwise the database is the one pgsearch itself would use: the ``-x url=`` or
``sqlalchemy.url`` option, else ``PGSEARCH_DATABASE_URL``, else the embedded server.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from pgsearch.exceptions import ConfigurationError
from pgsearch.models import Base

__all__ = ["VERSION_TABLE", "run_migrations"]

# pgsearch keeps its own version table so that it never collides with an application's
# `alembic_version`; an application that includes the `pgsearch` branch may use its own.
VERSION_TABLE = "pgsearch_alembic_version"


def _configure_and_run(context: Any, connection: Connection) -> None:
    from pgsearch.migrations.autogenerate import pgsearch_options

    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        **pgsearch_options(),
    )
    with context.begin_transaction():
        context.run_migrations()
        if not context.get_context().get_current_heads():
            # At base pgsearch has nothing left in the database: take the version table too,
            # so that `downgrade base` leaves the database as it was before pgsearch.
            connection.execute(text(f'DROP TABLE IF EXISTS "{VERSION_TABLE}"'))


def run_migrations() -> None:
    """Entry point for an Alembic ``env.py``."""
    from alembic import context
    from pgsearch.database import create_engine

    if context.is_offline_mode():
        raise ConfigurationError(
            "pgsearch migrations inspect the server (pgvector, text search configurations) "
            "and cannot run in offline --sql mode"
        )
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(context, connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url or None)
    try:
        with engine.connect() as conn:
            _configure_and_run(context, conn)
            conn.commit()
    finally:
        engine.dispose()
