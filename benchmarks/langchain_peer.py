"""LangChain's PGVector on the same data and server, for benchmarks/filtered_search.py.

Runs in a virtualenv of its own (langchain-postgres, psycopg, numpy; never pgsearch's):

    <data-dir>/lc-venv/bin/python benchmarks/langchain_peer.py SPEC.json

SPEC (written by filtered_search.py): {"url": SQLAlchemy URL of the server, "corpus": the gzipped
JSONL, "vectors": the float16 .npy, "held_out": row numbers left out, "queries": how many
of them (the first) are timed, "filters": [null,
{"section": "fonts"}, ...]}. Loads the other rows once into the collection ``debian_filtered``
with ``add_embeddings`` (reused while its row count is right), then times
``similarity_search_by_vector(vector, k=10, filter=...)`` for each held-out vector: first as
langchain-postgres ships (no index on the embedding), then after adding an HNSW index (m 16,
ef_construction 64, as pgsearch's). Each query set runs once untimed first. Prints one JSON
object on stdout, progress on stderr.
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from langchain_core.embeddings import Embeddings
from langchain_postgres import PGVector

COLLECTION = "debian_filtered"
INDEX = "langchain_bench_hnsw"
COUNT = (
    "SELECT count(*) FROM langchain_pg_embedding e JOIN langchain_pg_collection c"
    " ON c.uuid = e.collection_id WHERE c.name = %s"
)


class Precomputed(Embeddings):
    """Returns the stored vector of a known text: no model runs."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def log(message: str) -> None:
    print(f"[langchain] {message}", file=sys.stderr, flush=True)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    held_out = set(spec["held_out"])
    matrix = np.load(spec["vectors"]).astype(np.float32)
    texts, ids, metadatas, vectors, queries = [], [], [], [], []
    with gzip.open(spec["corpus"], "rt") as lines:
        for row, line in enumerate(lines):
            if row in held_out:
                continue
            doc = json.loads(line)
            texts.append((doc["title"] + ". " + doc["text"]).strip())
            ids.append(doc["_id"])
            metadatas.append(doc.get("metadata", {}))
            vectors.append(matrix[row].tolist())
    queries = [matrix[row].tolist() for row in spec["held_out"][: spec["queries"]]]

    plain_url = spec["url"].replace("postgresql+psycopg://", "postgresql://", 1)
    store = PGVector(
        embeddings=Precomputed(dict(zip(texts, vectors, strict=True))),
        collection_name=COLLECTION,
        connection=spec["url"],
        embedding_length=len(vectors[0]),
        use_jsonb=True,
    )
    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {INDEX}")  # the first timings are as shipped
        loaded = conn.execute(COUNT, (COLLECTION,)).fetchone()[0]  # type: ignore[index]
    load_s = None
    if loaded != len(texts):
        store.delete_collection()
        store.create_collection()
        start = time.perf_counter()
        for i in range(0, len(texts), 2000):
            sl = slice(i, i + 2000)
            store.add_embeddings(texts[sl], vectors[sl], metadatas[sl], ids[sl])
        load_s = time.perf_counter() - start
        log(f"add_embeddings: {len(texts)} rows in {load_s:.1f} s")
        with psycopg.connect(plain_url, autocommit=True) as conn:
            conn.execute("ANALYZE langchain_pg_embedding")
    else:
        log(f"reusing collection {COLLECTION} ({loaded} rows)")

    def measure(flt: dict[str, Any] | None) -> dict[str, Any]:
        for q in queries:  # warm-up
            store.similarity_search_by_vector(q, k=10, filter=flt)
        times, found = [], []
        for q in queries:
            start = time.perf_counter()
            docs = store.similarity_search_by_vector(q, k=10, filter=flt)
            times.append((time.perf_counter() - start) * 1000)
            found.append([d.id for d in docs])
        return {
            "filter": flt,
            "p50": statistics.median(times),
            "p95": float(np.percentile(times, 95)),
            "rows": statistics.mean(len(f) for f in found),
            "ids": found,
        }

    result: dict[str, Any] = {"version": version("langchain-postgres"), "load_s": load_s}
    result["no_index"] = [measure(flt) for flt in spec["filters"]]
    log("timed without an index; building HNSW")
    with psycopg.connect(plain_url, autocommit=True) as conn:
        start = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            f"CREATE INDEX {INDEX} ON langchain_pg_embedding"
            " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("ANALYZE langchain_pg_embedding")
        result["index_s"] = time.perf_counter() - start
    result["hnsw"] = [measure(flt) for flt in spec["filters"]]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
