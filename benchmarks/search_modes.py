"""Quality and latency of each search mode on the shared real data sets.

    python benchmarks/search_modes.py scifact     # nDCG@10 on SciFact's train judgements
    python benchmarks/search_modes.py debian      # latency on 63,663 Debian package descriptions

The Debian run also times hybrid search on five long questions of common words (bounded by
max_postings, and exact) and text search with a 0.5 % and a 7 % section filter (routed by the
planner's estimate, and forced to rank every chunk holding a word).

Documents go through pgsearch's own write path carrying their precomputed all-MiniLM-L6-v2
vectors from ../shared/data (``DocumentInput.vectors``: one chunk per document, no model runs);
query vectors are looked up by query text. Each data set
gets its own embedded store under --data-dir (default /tmp/pgsearch-bench), reused across runs.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pgsearch import ChunkingOptions, DocumentInput, SearchRepository, Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ONE_CHUNK = ChunkingOptions(max_chars=1_000_000, overlap=0)


class PrecomputedEmbedder:
    """Answers queries with stored vectors for known texts (computed offline); documents carry
    their own vectors, so the write path never calls ``embed_documents``."""

    name = MODEL
    dimension = 384

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors[text].astype(np.float32)


def ingest(store: Store, documents: list[DocumentInput], batch: int = 1000) -> None:
    start = time.perf_counter()
    embedded = 0
    for i in range(0, len(documents), batch):
        embedded += store.upsert(documents[i : i + batch]).chunks
    elapsed = time.perf_counter() - start
    print(
        f"upserted {len(documents)} documents ({embedded} chunks written) in {elapsed:.1f} s: "
        f"{len(documents) / elapsed:,.0f} docs/s"
    )
    start = time.perf_counter()
    store.optimize()  # merge GIN pending lists and ANALYZE, as `pgsearch ingest` does
    print(f"optimize: {time.perf_counter() - start:.1f} s")


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


MODES = [
    ("vector", {}),
    ("text", {}),
    ("bm25", {}),
    ("text", {"text_match": "all"}),
    ("hybrid", {}),
    ("hybrid", {"fusion": "rrf"}),
    ("hybrid", {"text_match": "all"}),
]


def run_modes(store: Store, queries: list[str], judge: dict[str, dict[str, int]] | None) -> None:
    with store.session() as session:
        repo = SearchRepository(session, store.embedder)
        for mode, options in MODES:
            label = mode + "".join(f" {key}={value}" for key, value in options.items())
            times, scores = [], []
            for query in queries:
                start = time.perf_counter()
                hits = repo.search(query, k=10, mode=mode, **options)  # type: ignore[arg-type]
                times.append((time.perf_counter() - start) * 1000)
                if judge is not None:
                    scores.append(ndcg_at_10([h.external_id for h in hits], judge[query]))
            quality = f"nDCG@10 {statistics.mean(scores):.3f}  " if scores else ""
            p95 = float(np.percentile(times, 95))
            print(
                f"{label:26s} {quality}p50 {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms"
                f"  ({len(queries)} queries)"
            )


# Long questions made of common words: the worst case of exact BM25 on the Debian set. Their
# query vectors are documents' own (the vector leg's cost does not depend on the text).
LONG_QUESTIONS = [
    "what is the best free software library for developing applications with files and data"
    " on linux systems",
    "how do I set up a web server with a database and a programming language on my system",
    "a tool to manage files and packages on the command line for developers and users",
    "which python library helps with data files and network programming in free software",
    "development files for the library that provides support for images, fonts and text rendering",
]


def timed(label: str, times: list[float]) -> None:
    p95 = float(np.percentile(times, 95))
    print(
        f"{label:52s} p50 {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms"
        f"  max {max(times):6.1f} ms  ({len(times)} searches)"
    )


def run_debian_extras(store: Store, documents: list[DocumentInput], queries: list[str]) -> None:
    """Hybrid on long common-word questions, bounded (default) and exact; text search with a
    selective and a broader section filter, each routed as by default and forced to rank
    every chunk holding a word (exact_threshold=0)."""
    with store.session() as session:
        repo = SearchRepository(session, store.embedder)
        vectors = [np.asarray(d.vectors[0], dtype=np.float32) for d in documents[:5]]  # type: ignore[index]
        for label, bound in (("default max_postings", {}), ("exact, max_postings=None", None)):
            times = []
            for _ in range(5):
                for question, vector in zip(LONG_QUESTIONS, vectors, strict=True):
                    options: dict[str, Any] = {"query_vector": vector}
                    if bound is None:
                        options["max_postings"] = None
                    start = time.perf_counter()
                    repo.search(question, k=10, mode="hybrid", **options)
                    times.append((time.perf_counter() - start) * 1000)
            timed(f"hybrid, long questions, {label}", times)
        sections = Counter(d.metadata.get("section") for d in documents)
        for section in ("editors", "python"):
            share = 100 * sections[section] / len(documents)
            for label, threshold in (("routed", 10_000), ("ranked then filtered", 0)):
                times = []
                for query in queries[:100]:
                    start = time.perf_counter()
                    repo.search(
                        query,
                        k=10,
                        mode="text",
                        filter={"section": section},
                        exact_threshold=threshold,
                    )
                    times.append((time.perf_counter() - start) * 1000)
                timed(f"text, section {section} ({share:.1f} %), {label}", times)


def load_corpus(
    lines: Iterable[str], vectors: Path, matrix: str, separator: str, embedder: PrecomputedEmbedder
) -> list[DocumentInput]:
    """Documents as the vectors were computed (title + separator + text), vectors registered."""
    ids = json.loads((vectors / "corpus_ids.json").read_text())
    documents = []
    for line, doc_id, vector in zip(lines, ids, np.load(vectors / matrix), strict=True):
        doc = json.loads(line)
        # The title is stored apart: pgsearch searches it with the text (the vectors were
        # computed from title + separator + text).
        content = doc["text"].strip() or doc["title"]
        embedder.vectors[content] = vector
        documents.append(
            DocumentInput(doc_id, content, doc["title"], doc.get("metadata", {}), vectors=[vector])
        )
    return documents


def scifact(data_dir: Path) -> None:
    root = DATA / "scifact"
    vectors = root / "embeddings" / "all-MiniLM-L6-v2"
    embedder = PrecomputedEmbedder()
    with (root / "corpus.jsonl").open() as lines:
        documents = load_corpus(lines, vectors, "corpus.npy", " ", embedder)
    texts = {q["_id"]: q["text"] for q in map(json.loads, (root / "queries.jsonl").open())}
    query_ids = json.loads((vectors / "query_ids.json").read_text())
    for query_id, vector in zip(query_ids, np.load(vectors / "queries.npy"), strict=True):
        embedder.vectors[texts[query_id]] = vector
    judge: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        judge.setdefault(texts[query_id], {})[doc_id] = int(score)

    with Store.open(embedder=embedder, data_dir=data_dir / "scifact", chunking=ONE_CHUNK) as store:
        store.migrate()
        ingest(store, documents)
        run_modes(store, list(judge), judge)


def debian(data_dir: Path, sample: int) -> None:
    root = DATA / "debian-packages"
    vectors = root / "embeddings" / "all-MiniLM-L6-v2"
    embedder = PrecomputedEmbedder()
    with gzip.open(root / "corpus.jsonl.gz", "rt") as lines:
        documents = load_corpus(lines, vectors, "corpus.f16.npy", ". ", embedder)
    # Queries: package short descriptions, with the vector of their own package.
    queries = []
    for doc in random.Random(0).sample(documents, sample):
        embedder.vectors.setdefault(doc.title or "", embedder.vectors[doc.content])
        queries.append(doc.title or "")
    with Store.open(embedder=embedder, data_dir=data_dir / "debian", chunking=ONE_CHUNK) as store:
        store.migrate()
        ingest(store, documents)
        run_modes(store, queries, None)
        run_debian_extras(store, documents, queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["scifact", "debian"])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/pgsearch-bench"))
    parser.add_argument("--queries", type=int, default=200, help="Debian queries to time")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.dataset == "scifact":
        scifact(args.data_dir)
    else:
        debian(args.data_dir, args.queries)


if __name__ == "__main__":
    main()
