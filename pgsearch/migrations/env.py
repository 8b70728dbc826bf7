"""Alembic environment for the revisions shipped in the pgsearch wheel."""

from pgsearch.migrations.environment import run_migrations

run_migrations()
