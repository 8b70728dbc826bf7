"""Alembic environment of this repository: the same one the pgsearch wheel ships."""

from logging.config import fileConfig

from alembic import context
from pgsearch.migrations.environment import run_migrations

if context.config.config_file_name is not None:
    # Keep loggers configured before (pgsearch's own, when run from Python) working.
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

run_migrations()
