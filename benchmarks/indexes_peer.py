"""LangChain's PGVector and FAISS on the same vectors and queries, for benchmarks/indexes.py.

Runs in a virtualenv of its own (langchain-postgres, faiss-cpu, psycopg, numpy; never
pgsearch's):

    <data-dir>/lc-venv/bin/python benchmarks/indexes_peer.py SPEC.json

SPEC (written by indexes.py): {"url": SQLAlchemy URL of the server, "dataset": "debian" or
"generated", "total": rows of the data set read, "held_out": row numbers left out of the corpus
(their vectors are the queries, in this order), "collection": the PGVector collection, "m",
"ef_construction", "ef_search", "maintenance_work_mem", "langchain": bool, "faiss": bool}.
The rows are those of benchmarks/langchain_ingest_peer.py (the Debian set, or the generated one).

* langchain-postgres: the corpus is loaded once into ``collection`` with ``add_embeddings``
  (reused while its row count is right); ``similarity_search_with_score_by_vector(vector,
  k=10)`` is timed for each query as langchain-postgres ships (no index on the embedding), then
  after adding an HNSW index (cosine, m, ef_construction; pgvector's ef_search 40).
* FAISS: ``IndexFlatIP`` and ``IndexHNSWFlat`` (M = m, efConstruction = ef_construction,
  efSearch = ef_search, inner product) over the L2-normalised vectors, in memory; built with
  every core, searched one query at a time on one thread.

Each query set runs once untimed, then once timed. Answers are external ids. Prints one JSON
object on stdout, progress on stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from langchain_ingest_peer import DIM, rows, unit_vectors

INDEX = "langchain_indexes_hnsw"
BATCH = 2000


def log(message: str) -> None:
    print(f"[peer] {message}", file=sys.stderr, flush=True)


def timed(search: Callable[[np.ndarray], list[str]], queries: np.ndarray) -> dict[str, Any]:
    """Run the queries untimed, then timed: p50, p95 (ms) and the answers."""
    for q in queries:
        search(q)
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        ids = search(q)
        times.append((time.perf_counter() - start) * 1000)
        found.append(ids)
    return {"p50": statistics.median(times), "p95": float(np.percentile(times, 95)), "ids": found}


def corpus_rows(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], np.ndarray]]:
    held_out = set(spec["held_out"])
    for row, (external_id, _title, content, metadata, vector) in enumerate(
        rows(spec["dataset"], 0, spec["total"])
    ):
        if row not in held_out:
            yield external_id, content, metadata, vector


def read_vectors(spec: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The corpus's external ids and unit vectors, and the unit query vectors."""
    return unit_vectors(spec["dataset"], spec["total"], list(spec["held_out"]))


def langchain(spec: dict[str, Any], queries: np.ndarray, count: int) -> dict[str, Any]:
    import psycopg
    from langchain_peer import COUNT, Precomputed
    from langchain_postgres import PGVector

    store = PGVector(
        embeddings=Precomputed({}),  # every vector is given: no text is embedded
        collection_name=spec["collection"],
        connection=spec["url"],
        embedding_length=DIM,
        use_jsonb=True,
    )
    plain_url = spec["url"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {INDEX}")  # the first timings are as shipped
        loaded = conn.execute(COUNT, (spec["collection"],)).fetchone()[0]  # type: ignore[index]
    result: dict[str, Any] = {"version": version("langchain-postgres"), "load_s": None}
    if loaded != count:
        log(f"loading {count} rows into collection {spec['collection']} (it holds {loaded})")
        store.delete_collection()
        store.create_collection()
        seconds, batch = 0.0, []
        for row in corpus_rows(spec):
            batch.append(row)
            if len(batch) == BATCH:
                seconds += add(store, batch)
                batch = []
        if batch:
            seconds += add(store, batch)
        result["load_s"] = seconds
        log(f"add_embeddings: {count} rows in {seconds:.1f} s")
        with psycopg.connect(plain_url, autocommit=True) as conn:
            conn.execute("ANALYZE langchain_pg_embedding")
    else:
        log(f"reusing collection {spec['collection']} ({loaded} rows)")
    result["rows"] = count

    def search(q: np.ndarray) -> list[str]:
        found = store.similarity_search_with_score_by_vector(q.tolist(), k=10)
        return [doc.id for doc, _score in found]

    log("timing similarity_search_with_score_by_vector without an index")
    result["no_index"] = timed(search, queries)
    log("building HNSW on langchain_pg_embedding")
    with psycopg.connect(plain_url, autocommit=True) as conn:
        start = time.perf_counter()
        memory = spec["maintenance_work_mem"]
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (memory,))
        conn.execute(
            f"CREATE INDEX {INDEX} ON langchain_pg_embedding USING hnsw"
            f" (embedding vector_cosine_ops)"
            f" WITH (m = {int(spec['m'])}, ef_construction = {int(spec['ef_construction'])})"
        )
        conn.execute("ANALYZE langchain_pg_embedding")
        result["index_s"] = time.perf_counter() - start
    log(f"HNSW built in {result['index_s']:.1f} s; timing with it")
    result["hnsw"] = timed(search, queries)
    return result


def add(store: Any, batch: list[tuple[str, str, dict[str, Any], np.ndarray]]) -> float:
    texts = [r[1] for r in batch]
    vectors = [r[3].tolist() for r in batch]  # lists of floats, as the signature asks (untimed)
    metadatas = [r[2] for r in batch]
    ids = [r[0] for r in batch]
    start = time.perf_counter()
    store.add_embeddings(texts, vectors, metadatas, ids)
    return time.perf_counter() - start


def faiss_indexes(
    spec: dict[str, Any], ids: list[str], matrix: np.ndarray, queries: np.ndarray
) -> dict[str, Any]:
    import faiss

    result: dict[str, Any] = {"version": faiss.__version__, "rows": len(ids)}
    labels = np.asarray(ids, dtype=object)
    threads = os.cpu_count() or 1
    faiss.omp_set_num_threads(threads)
    flat = faiss.IndexFlatIP(DIM)
    start = time.perf_counter()
    flat.add(matrix)
    result["flat_build_s"] = time.perf_counter() - start
    hnsw = faiss.IndexHNSWFlat(DIM, int(spec["m"]), faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = int(spec["ef_construction"])
    start = time.perf_counter()
    hnsw.add(matrix)
    result["hnsw_build_s"] = time.perf_counter() - start
    log(f"FAISS HNSW built in {result['hnsw_build_s']:.1f} s on {threads} threads")
    hnsw.hnsw.efSearch = int(spec["ef_search"])
    faiss.omp_set_num_threads(1)

    def searcher(index: Any) -> Callable[[np.ndarray], list[str]]:
        def search(q: np.ndarray) -> list[str]:
            _, found = index.search(q[None, :], 10)
            return list(labels[found[0][found[0] >= 0]])

        return search

    result["flat"] = timed(searcher(flat), queries)
    result["hnsw"] = timed(searcher(hnsw), queries)
    return result


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    ids, matrix, queries = read_vectors(spec)
    log(f"{len(ids)} corpus rows, {len(queries)} queries")
    result: dict[str, Any] = {}
    for name in ("langchain", "faiss"):
        if not spec[name]:
            continue
        try:
            if name == "langchain":
                result[name] = langchain(spec, queries, len(ids))
            else:
                result[name] = faiss_indexes(spec, ids, matrix, queries)
        except Exception as exc:  # reported, not raised: the other peer still runs
            traceback.print_exc()
            result[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
