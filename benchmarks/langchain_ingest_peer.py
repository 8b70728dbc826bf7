"""The ingest benchmark's data, and LangChain's PGVector loading it, for benchmarks/ingest.py.

Two data sets, read or made one row at a time so that no loader holds more than a batch:

* ``debian``: the 63,663 Debian package descriptions of ../shared/data/debian-packages with
  their precomputed all-MiniLM-L6-v2 vectors (float16 on disk, read by seeking, as float32);
  the text is ``title + ". " + text``, as the vectors were computed;
* ``generated``: chunk ``i`` has a 384-d random unit vector and a text of 90 to 110 words from
  a fixed vocabulary of 5,000 made-up words, both from ``numpy.random.default_rng([SEED, block])``
  for its block of 1,000 rows, so any range of rows is the same data whoever reads it; its
  metadata is ``{"group": i % 50}``.

Every row is ``(id, title, content, metadata, vector)``. This file is here, not in ingest.py,
because it also runs in LangChain's own virtualenv (langchain-postgres, psycopg, numpy; never
pgsearch's):

    <data-dir>/lc-venv/bin/python benchmarks/langchain_ingest_peer.py SPEC.json

SPEC (written by ingest.py): {"url": the SQLAlchemy URL of a fresh database, "dataset":
"debian" or "generated", "rows": how many, "batch": rows per add_embeddings call, "m",
"ef_construction"}. Creates the collection, then the HNSW index on the embedding (cosine, the
given m and ef_construction: PGVector makes none), then times ``add_embeddings(texts,
embeddings, metadatas, ids)`` per batch (the vectors as lists of floats, as its signature
asks; making them is not timed). Prints one JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import gzip
import json
import resource
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEBIAN = DATA / "debian-packages"
DEBIAN_VECTORS = DEBIAN / "embeddings" / "all-MiniLM-L6-v2"
DIM = 384
SEED = 20261123
BLOCK = 1000
GROUPS = 50
VOCABULARY = 5000

Row = tuple[str, str, str, dict[str, Any], np.ndarray]


def debian_size() -> int:
    return len(json.loads((DEBIAN_VECTORS / "corpus_ids.json").read_text()))


def debian_rows(start: int, stop: int) -> Iterator[Row]:
    """Rows ``start..stop`` of the Debian set, streamed from the gzipped JSONL and the .npy."""
    ids = json.loads((DEBIAN_VECTORS / "corpus_ids.json").read_text())
    with (
        gzip.open(DEBIAN / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines,
        (DEBIAN_VECTORS / "corpus.f16.npy").open("rb") as matrix,
    ):
        major, _ = np.lib.format.read_magic(matrix)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(matrix)
        if fortran or shape != (len(ids), DIM):
            raise SystemExit(f"unexpected vector file: shape {shape}, fortran order {fortran}")
        offset = matrix.tell()
        block: np.ndarray = np.empty((0, DIM), np.float32)
        first = 0
        for row, line in enumerate(lines):
            if row >= stop:
                break
            if row < start:
                continue
            if row - first >= len(block):
                first, count = row, min(BLOCK, stop - row)
                matrix.seek(offset + row * DIM * dtype.itemsize)
                raw = np.fromfile(matrix, dtype=dtype, count=count * DIM)
                block = raw.reshape(count, DIM).astype(np.float32)
            doc = json.loads(line)
            if doc["_id"] != ids[row]:
                raise SystemExit(f"row {row}: corpus id {doc['_id']!r} != vector id {ids[row]!r}")
            content = (doc["title"] + ". " + doc["text"]).strip()
            yield doc["_id"], doc["title"], content, doc.get("metadata", {}), block[row - first]


def _vocabulary() -> list[str]:
    rng = np.random.default_rng(SEED)
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        parts = rng.integers(0, len(syllables), size=int(rng.integers(2, 5)))
        words["".join(syllables[p] for p in parts)] = None
    return list(words)


def generated_rows(start: int, stop: int) -> Iterator[Row]:
    """Rows ``start..stop`` of the generated set (see the module docstring)."""
    vocabulary = _vocabulary()
    for block in range(start // BLOCK, (stop + BLOCK - 1) // BLOCK):
        rng = np.random.default_rng([SEED, block])
        vectors = rng.standard_normal((BLOCK, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        lengths = rng.integers(90, 111, size=BLOCK)
        words = rng.integers(0, VOCABULARY, size=(BLOCK, 110))
        for k in range(BLOCK):
            i = block * BLOCK + k
            if start <= i < stop:
                text = " ".join(vocabulary[w] for w in words[k, : lengths[k]]) + "."
                yield (
                    f"gen-{i:08d}",
                    f"generated chunk {i}",
                    text,
                    {"group": i % GROUPS},
                    vectors[k],
                )


def rows(dataset: str, start: int, stop: int) -> Iterator[Row]:
    return debian_rows(start, stop) if dataset == "debian" else generated_rows(start, stop)


def unit_vectors(
    dataset: str, total: int, held: list[int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rows ``0..total`` split in two: the corpus's external ids and unit vectors, and the
    unit vectors of the ``held`` rows (queries, in the order of ``held``)."""
    index = {row: i for i, row in enumerate(held)}
    ids: list[str] = []
    matrix = np.empty((total - len(held), DIM), np.float32)
    queries = np.empty((len(held), DIM), np.float32)
    for row, (external_id, _title, _content, _metadata, vector) in enumerate(
        rows(dataset, 0, total)
    ):
        if row in index:
            queries[index[row]] = vector
        else:
            matrix[len(ids)] = vector
            ids.append(external_id)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return ids, matrix, queries


def batches(dataset: str, start: int, stop: int, size: int) -> Iterator[list[Row]]:
    """Rows ``start..stop`` in lists of ``size``."""
    batch: list[Row] = []
    for row in rows(dataset, start, stop):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import psycopg
    from langchain_core.embeddings import Embeddings
    from langchain_postgres import PGVector

    class Refuse(Embeddings):
        """The vectors are given: no model may run."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise RuntimeError("the benchmark gives every vector: nothing may be embedded")

        def embed_query(self, text: str) -> list[float]:
            raise RuntimeError("the benchmark gives every vector: nothing may be embedded")

    spec = json.loads(Path(sys.argv[1]).read_text())
    started = time.perf_counter()
    store = PGVector(
        embeddings=Refuse(),
        collection_name="ingest_bench",
        connection=spec["url"],
        embedding_length=DIM,
        use_jsonb=True,
    )
    plain_url = spec["url"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(
            "CREATE INDEX langchain_bench_hnsw ON langchain_pg_embedding"
            " USING hnsw (embedding vector_cosine_ops)"
            f" WITH (m = {int(spec['m'])}, ef_construction = {int(spec['ef_construction'])})"
        )
    rss_start = peak_rss_mib()
    seconds, loaded = 0.0, 0
    for batch in batches(spec["dataset"], 0, spec["rows"], spec["batch"]):
        ids = [r[0] for r in batch]
        texts = [r[2] for r in batch]
        metadatas = [r[3] for r in batch]
        embeddings = [r[4].tolist() for r in batch]
        start = time.perf_counter()
        store.add_embeddings(texts, embeddings, metadatas, ids)
        seconds += time.perf_counter() - start
        loaded += len(batch)
        if loaded % 10_000 < spec["batch"]:
            print(f"[langchain] {loaded} rows, {loaded / seconds:,.0f} rows/s", file=sys.stderr)
    with psycopg.connect(plain_url) as conn:
        stored = conn.execute("SELECT count(*) FROM langchain_pg_embedding").fetchone()
    if stored is None or stored[0] != spec["rows"]:
        raise SystemExit(f"langchain_pg_embedding holds {stored}, expected {spec['rows']}")
    result = {
        "version": version("langchain-postgres"),
        "rows": loaded,
        "seconds": seconds,
        "rss_start": rss_start,
        "rss_peak": peak_rss_mib(),
        "wall": time.perf_counter() - started,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
