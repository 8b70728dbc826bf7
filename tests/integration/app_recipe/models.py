"""The application's own models: a table of items with embeddings, and their HNSW index."""

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import BigInteger, Column, Index, MetaData, Table, Text

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("embedding", VECTOR(8), nullable=False),
    Index(
        "ix_items_embedding",
        "embedding",
        postgresql_using="hnsw",
        postgresql_with={"m": 8, "ef_construction": 32},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    ),
)
