"""Parameters of a new store, chosen once, when the store is first migrated.

``pgsearch migrate`` passes them in ``Config.attributes["pgsearch_options"]``; the plain Alembic
command line passes them as ``-x dim=768 -x distance=l2 -x text_config=simple -x model=NAME``
(and ``-x m=``, ``-x ef_construction=``, ``-x storage=halfvec``).
What neither gives comes from the configured embedder (``PGSEARCH_EMBEDDER``) and the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pgsearch.exceptions import ConfigurationError
from pgsearch.types import Distance
from pgsearch.vector_index import (
    DEFAULT_DISTANCE,
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    MAX_DIMENSIONS,
    Storage,
)

__all__ = ["ATTRIBUTE", "MAX_COLUMN_DIMENSIONS", "StoreOptions", "options_from_context"]

ATTRIBUTE = "pgsearch_options"
# pgvector's `vector` type holds at most 16,000 dimensions; what its indexes take depends on
# the index's storage (pgsearch.vector_index.MAX_DIMENSIONS).
MAX_COLUMN_DIMENSIONS = 16_000
_TEXT_CONFIG = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


@dataclass(frozen=True)
class StoreOptions:
    """Choices baked into the schema of a new store.

    Attributes:
        dim: Embedding dimension of the ``chunks.embedding vector(dim)`` column.
        model: Name of the embedding model that fills the store.
        distance: Distance of the HNSW operator class and of vector search.
        text_config: Text-search configuration of the generated ``tsv`` column.
        m: HNSW ``m`` (links per node).
        ef_construction: HNSW ``ef_construction`` (candidate list size while building).
        storage: What the store's first HNSW index holds: ``vector`` (up to 2,000 dimensions),
            ``halfvec`` (half precision, up to 4,000: e.g. text-embedding-3-large's 3,072) or
            ``bit`` (binary quantization, re-ranked exactly). Retune later with
            ``op.rebuild_vector_index`` or ``pgsearch index rebuild``.
    """

    dim: int = 384
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    distance: Distance = field(default=DEFAULT_DISTANCE)
    text_config: str = "english"
    m: int = DEFAULT_M
    ef_construction: int = DEFAULT_EF_CONSTRUCTION
    storage: Storage = "vector"

    def __post_init__(self) -> None:
        object.__setattr__(self, "distance", Distance.parse(self.distance))
        if self.storage not in MAX_DIMENSIONS:
            raise ConfigurationError(
                f"unknown index storage {self.storage!r}: use vector, halfvec or bit"
            )
        most = min(MAX_DIMENSIONS[self.storage], MAX_COLUMN_DIMENSIONS)
        if not 1 <= self.dim <= most:
            wider = [s for s, limit in MAX_DIMENSIONS.items() if limit >= self.dim]
            hint = f" (storage={wider[0]} indexes {self.dim})" if wider and self.dim > 0 else ""
            raise ConfigurationError(
                f"embedding dimension {self.dim} is out of range: pgvector indexes 1 to "
                f"{most:,} dimensions with storage={self.storage}{hint}"
            )
        if not self.model.strip():
            raise ConfigurationError("the embedding model name is empty")
        if not _TEXT_CONFIG.fullmatch(self.text_config):
            raise ConfigurationError(
                f"text search configuration {self.text_config!r} is not a valid name: "
                "pick a configuration listed in pg_ts_config, for example english or simple"
            )
        if not 2 <= self.m <= 100:
            raise ConfigurationError(f"HNSW m={self.m} is out of pgvector's range 2..100")
        if not 2 * self.m <= self.ef_construction <= 1000:
            raise ConfigurationError(
                f"HNSW ef_construction={self.ef_construction} must be between 2*m "
                f"({2 * self.m}) and 1000"
            )


def _int_option(values: dict[str, str], name: str) -> dict[str, Any]:
    if name not in values:
        return {}
    try:
        return {name: int(values[name])}
    except ValueError:
        raise ConfigurationError(f"-x {name}={values[name]!r} is not an integer") from None


def options_from_context(context: Any) -> StoreOptions:
    """Store options for the running migration (``context`` is ``alembic.context``)."""
    given = context.config.attributes.get(ATTRIBUTE)
    if isinstance(given, StoreOptions):
        return given
    from pgsearch.config import Settings
    from pgsearch.embedders import describe_embedder

    x_args: dict[str, str] = context.get_x_argument(as_dictionary=True)
    unknown = set(x_args) - {
        "url",
        "dim",
        "model",
        "distance",
        "text_config",
        "m",
        "ef_construction",
        "storage",
    }
    if unknown:
        raise ConfigurationError(f"unknown -x options: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    if "dim" not in x_args or "model" not in x_args:
        model, dim = describe_embedder(Settings.from_env().embedder)
        values.update(model=model, dim=dim)
    for name in ("dim", "m", "ef_construction"):
        values.update(_int_option(x_args, name))
    for name in ("model", "distance", "text_config", "storage"):
        if name in x_args:
            values[name] = x_args[name]
    return StoreOptions(**values)
