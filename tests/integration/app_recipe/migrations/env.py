"""The application's env.py: its own models, pgsearch's revisions beside them."""

import sys
from pathlib import Path

from sqlalchemy import create_engine, pool

import pgsearch.migrations  # noqa: F401  (registers op.create_vector_index and its siblings)
from alembic import context
from pgsearch.migrations.autogenerate import application_options

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models import metadata

engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Concurrent index builds commit what came before them: one transaction per revision.
        transaction_per_migration=True,
        **application_options(metadata),
    )
    with context.begin_transaction():
        context.run_migrations()
