"""Settings from explicit arguments or ``PGSEARCH_*`` environment variables.

An explicit argument always wins over the environment, and the environment over defaults.

``PGSEARCH_DATABASE_URL``
    A libpq or SQLAlchemy URL (``postgresql://user@host/db``). Unset: the embedded server.
``PGSEARCH_DATA_DIR``
    Where the embedded server keeps its cluster (default: the per-user data directory).
``PGSEARCH_EMBEDDER``
    The embedder spec, ``provider:model`` (default ``sentence-transformers:all-MiniLM-L6-v2``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["DEFAULT_EMBEDDER", "Settings"]

DEFAULT_EMBEDDER = "sentence-transformers:all-MiniLM-L6-v2"


def _default_data_dir() -> Path:
    return platformdirs.user_data_path("pgsearch")


@dataclass(frozen=True)
class Settings:
    """Resolved pgsearch settings.

    Attributes:
        database_url: Server to use; ``None`` selects the embedded server.
        data_dir: Directory of the embedded server's data (its cluster is ``data_dir/pgdata``).
        embedder: Embedder spec, for example ``sentence-transformers:all-MiniLM-L6-v2``.
    """

    database_url: str | None
    data_dir: Path
    embedder: str

    @classmethod
    def from_env(
        cls,
        *,
        database_url: str | None = None,
        data_dir: str | Path | None = None,
        embedder: str | None = None,
    ) -> Settings:
        """Build settings: explicit arguments, then ``PGSEARCH_*`` variables, then defaults."""
        url = database_url or os.environ.get("PGSEARCH_DATABASE_URL") or None
        directory = data_dir or os.environ.get("PGSEARCH_DATA_DIR") or _default_data_dir()
        spec = embedder or os.environ.get("PGSEARCH_EMBEDDER") or DEFAULT_EMBEDDER
        return cls(database_url=url, data_dir=Path(directory).expanduser(), embedder=spec)
