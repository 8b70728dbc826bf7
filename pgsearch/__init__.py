"""pgsearch: PostgreSQL as a vector, full-text and hybrid search store."""

from pgsearch.bulk_load import IndexBuildSettings
from pgsearch.chunking import ChunkingOptions, TextChunk, chunk_text
from pgsearch.config import Settings
from pgsearch.database import create_engine
from pgsearch.embedders import Embedder, HashingEmbedder, load_embedder
from pgsearch.exceptions import (
    ConfigurationError,
    ConnectionFailedError,
    DatabaseError,
    DocumentExistsError,
    EmbedderError,
    EmbeddingMismatchError,
    ExtensionMissingError,
    InvalidDocumentError,
    InvalidFilterError,
    InvalidIndexError,
    InvalidSearchError,
    LimitExceededError,
    NotMigratedError,
    PgSearchError,
    QueryCanceledError,
    ServerShutdownError,
    SourceError,
    StoreNotFoundError,
)
from pgsearch.fusion import reciprocal_rank_fusion
from pgsearch.ingest import DocumentInput, IngestSummary
from pgsearch.migrations import StoreOptions
from pgsearch.models import Chunk, Document
from pgsearch.repository import DocumentRepository, SearchRepository
from pgsearch.search import SearchRequest, SearchResult, SearchResults
from pgsearch.store import Store, StoreStatus
from pgsearch.types import Distance, SearchMode
from pgsearch.vector_index import VectorIndex

__all__ = [
    "Chunk",
    "ChunkingOptions",
    "ConfigurationError",
    "ConnectionFailedError",
    "DatabaseError",
    "Distance",
    "Document",
    "DocumentExistsError",
    "DocumentInput",
    "DocumentRepository",
    "Embedder",
    "EmbedderError",
    "EmbeddingMismatchError",
    "ExtensionMissingError",
    "HashingEmbedder",
    "IndexBuildSettings",
    "IngestSummary",
    "InvalidDocumentError",
    "InvalidFilterError",
    "InvalidIndexError",
    "InvalidSearchError",
    "LimitExceededError",
    "NotMigratedError",
    "PgSearchError",
    "QueryCanceledError",
    "SearchMode",
    "SearchRepository",
    "SearchRequest",
    "SearchResult",
    "SearchResults",
    "ServerShutdownError",
    "Settings",
    "SourceError",
    "Store",
    "StoreNotFoundError",
    "StoreOptions",
    "StoreStatus",
    "TextChunk",
    "VectorIndex",
    "chunk_text",
    "create_engine",
    "load_embedder",
    "reciprocal_rank_fusion",
]

__version__ = "0.1.0"
