"""Filtered vector search on Debian package descriptions: pgsearch against raw SQL and LangChain.

    .venv/bin/python benchmarks/filtered_search.py [--data-dir /tmp/pgsearch-bench] [--queries 200]

200 documents (random.Random(0)) are held back: their precomputed all-MiniLM-L6-v2 vectors are
the queries. The other 63,463 go once through pgsearch's write path (Store.upsert, batches of
2000, one chunk per document, then Store.optimize) into an embedded store under
--data-dir/debian-filtered, reused on later runs. For each section filter, from libs (about
10 % of the chunks) to about 0.1 %, and for no filter, with k=10:

* ground truth: the exact top 10 by cosine distance among the chunks the filter selects (the raw
  exact statement's answers); in recall@10 a row as near as the 10th counts (identical texts tie);
* raw SQL through psycopg (autocommit, prepared, the numpy vector bound in binary): an exact
  scan, HNSW with hnsw.iterative_scan = relaxed_order, HNSW with iterative scans off;
* pgsearch: Store.search and SearchRepository.search (one session), and the path each ran;
* langchain-postgres PGVector (no filter, and fonts) on the same server, in a virtualenv of its
  own (--data-dir/lc-venv, made on first use), through benchmarks/langchain_peer.py.

Each query set runs once untimed (warm-up), then once timed. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_modes import DATA, ONE_CHUNK, PrecomputedEmbedder, ingest, load_corpus

from pgsearch import SearchRepository, Store

HELD_OUT = 200
SECTIONS = ["libs", "python", "devel", "net", "java", "gnu-r", "fonts", "kernel", "comm", "gnustep"]
PEER_CASES = [None, "fonts"]
LC_PIN = "langchain-postgres==0.0.19"
ROOT = DATA / "debian-packages"
VECTORS = ROOT / "embeddings" / "all-MiniLM-L6-v2"
# Raw statements: %(q)b binds the numpy vector in pgvector's binary format, %(f)s the filter.
EXACT = (
    "SELECT id FROM (SELECT id, embedding <=> %(q)b AS d FROM pgsearch.chunks"
    " WHERE metadata @> %(f)s::jsonb OFFSET 0) s ORDER BY d, id LIMIT 10"
)
EXACT_ALL = (
    "SELECT id FROM (SELECT id, embedding <=> %(q)b AS d FROM pgsearch.chunks OFFSET 0) s"
    " ORDER BY d, id LIMIT 10"
)
HNSW = (
    "SELECT id FROM pgsearch.chunks WHERE metadata @> %(f)s::jsonb"
    " ORDER BY embedding <=> %(q)b LIMIT 10"
)
HNSW_ALL = "SELECT id FROM pgsearch.chunks ORDER BY embedding <=> %(q)b LIMIT 10"
RAW = {"SQL exact": (EXACT, EXACT_ALL), "SQL HNSW relaxed": (HNSW, HNSW_ALL)}
RAW["SQL HNSW off"] = RAW["SQL HNSW relaxed"]
GENERIC = "SELECT coalesce(sum(generic_plans), 0) FROM pg_prepared_statements"
VERSIONS = "SELECT version(), extversion FROM pg_extension WHERE extname = 'vector'"
SECTION_COUNTS = "SELECT metadata->>'section', count(*) FROM pgsearch.chunks GROUP BY 1"
EXTERNAL_IDS = (
    "SELECT c.id, d.external_id FROM pgsearch.chunks c JOIN pgsearch.documents d"
    " ON d.id = c.document_id"
)


@dataclass
class Timing:
    """One query set's answers and latencies."""

    ids: list[list[Any]] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)
    note: str = ""
    error: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    def cell(self, truth: Truth) -> str:
        if self.error:
            return f"error: {self.error}"
        rows = statistics.mean(len(i) for i in self.ids)
        p95 = float(np.percentile(self.ms, 95))
        return cell(rows, truth.recall(self.ids), self.p50, p95, self.note)


def cell(rows: float, rate: float, p50: float, p95: float, note: str = "") -> str:
    return f"{rows:.1f} / {rate:.3f} / {p50:.2f} / {p95:.2f}" + (f" ({note})" if note else "")


@dataclass
class Truth:
    """The exact top 10 of each query. A row as near as the farthest of them counts as found:
    the data holds identical descriptions, whose ties any exact order may break either way."""

    queries: np.ndarray
    ids: list[list[int]]
    unit: dict[int, np.ndarray]  # chunk id -> its vector, normalised

    def recall(self, found: list[list[int]]) -> float:
        scores = []
        for q, rows, top in zip(self.queries, found, self.ids, strict=True):
            floor = min(float(self.unit[c] @ q) for c in top) - 1e-6
            hits = sum(1 for c in rows if c in top or float(self.unit[c] @ q) >= floor)
            scores.append(min(hits, len(top)) / len(top))
        return statistics.mean(scores)


def measure(search: Callable[[np.ndarray], tuple[list[Any], str]], queries: np.ndarray) -> Timing:
    """Run the query set untimed, then timed; an error is reported, not raised."""
    timing = Timing()
    try:
        for q in queries:
            search(q)
        for q in queries:
            start = time.perf_counter()
            ids, path = search(q)
            timing.ms.append((time.perf_counter() - start) * 1000)
            timing.ids.append(ids)
            timing.paths[path] += 1
    except Exception as exc:
        traceback.print_exc()
        timing.error = f"{type(exc).__name__}: {exc}"[:120]
    return timing


def plan_of(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any] | None) -> str:
    """The index of the planner's plan: custom for ``params``, generic for None."""
    if params is None:  # EXPLAIN (GENERIC_PLAN): $n placeholders, the simple query protocol
        sql = "EXPLAIN (GENERIC_PLAN, FORMAT JSON) " + sql.replace("%(q)b", "$1")
        cursor = psycopg.ClientCursor(conn).execute(sql.replace("%(f)s", "$2").encode())
        plan = json.dumps(cursor.fetchone())
    else:
        explain = "EXPLAIN (FORMAT JSON) " + sql
        plan = json.dumps(conn.execute(explain, params, prepare=False).fetchone())
    return "hnsw" if "ix_chunks_embedding_hnsw" in plan else "gin" if "Bitmap" in plan else "seq"


def load(data_dir: Path) -> tuple[Store, np.ndarray, list[int], dict[str, np.ndarray]]:
    """Open (and fill once) the store; the held-out vectors, their row numbers, the stored
    documents' unit vectors by external id."""
    embedder = PrecomputedEmbedder()
    with gzip.open(ROOT / "corpus.jsonl.gz", "rt") as lines:
        documents = load_corpus(lines, VECTORS, "corpus.f16.npy", ". ", embedder)
    held = random.Random(0).sample(range(len(documents)), HELD_OUT)
    queries = np.stack([embedder.vectors[documents[i].content] for i in held]).astype(np.float32)
    skip = set(held)
    corpus = [doc for i, doc in enumerate(documents) if i not in skip]
    store = Store.open(embedder=embedder, data_dir=data_dir / "debian-filtered", chunking=ONE_CHUNK)
    store.migrate()
    if (stored := store.status().documents) == len(corpus):
        print(f"store reused: {stored} documents already loaded")
    else:
        print(f"store holds {stored} documents, loading {len(corpus)}")
        ingest(store, corpus, batch=2000)
    matrix = np.stack([embedder.vectors[doc.content] for doc in corpus]).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = dict(zip((doc.external_id for doc in corpus), matrix, strict=True))
    return store, queries, held, vectors


def langchain(store: Store, data_dir: Path, held: list[int], count: int) -> dict[str, Any] | None:
    """Run benchmarks/langchain_peer.py in its own virtualenv (made once); None if impossible."""
    python = data_dir / "lc-venv" / "bin" / "python"
    check = [python, "-c", "import langchain_postgres"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        subprocess.run(["python3", "-m", "venv", str(python.parents[1])])
        for pin in (LC_PIN, "langchain-postgres"):
            pip = [str(python), "-m", "pip", "install", "-q", pin, "psycopg[binary]", "numpy"]
            print("installing:", " ".join(pip[1:]), flush=True)
            if python.exists() and subprocess.run(pip).returncode == 0:
                break
        else:
            print("langchain-postgres could not be installed: no LangChain comparison")
            return None
    url = store.engine.url.render_as_string(hide_password=False)
    print(f"LangChain peer on {url}", flush=True)
    corpus, vectors = str(ROOT / "corpus.jsonl.gz"), str(VECTORS / "corpus.f16.npy")
    filters = [None if s is None else {"section": s} for s in PEER_CASES]
    job = dict(url=url, corpus=corpus, vectors=vectors, held_out=held, queries=count)
    spec = data_dir / "langchain-spec.json"
    spec.write_text(json.dumps({**job, "filters": filters}))
    helper = Path(__file__).with_name("langchain_peer.py")
    done = subprocess.run([python, helper, spec], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"the LangChain helper failed (exit {done.returncode}): no LangChain comparison")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def time_case(
    store: Store, conns: dict[str, Any], section: str | None, queries: np.ndarray, unit: Any
) -> tuple[Truth, dict[str, Timing]]:
    """The ground truth and every path's timing for one filter (None: no filter)."""
    print(f"timing {section or 'no filter'} ...", flush=True)
    flt = json.dumps({"section": section}) if section else None
    truth = Truth(queries, [], unit)
    timings: dict[str, Timing] = {}
    for name, (filtered, unfiltered) in RAW.items():
        sql, conn = (filtered if section else unfiltered), conns[name]

        def raw(q: np.ndarray, sql: str = sql, conn: Any = conn) -> tuple[list[Any], str]:
            return [r[0] for r in conn.execute(sql, {"q": q, "f": flt}, prepare=True)], ""

        if name == "SQL exact":  # the ground truth: the exact statement's answers
            truth.ids = [raw(q)[0] for q in queries]
        generic = conn.execute(GENERIC, prepare=False).fetchone()[0]
        timings[name] = timing = measure(raw, queries)
        generic = conn.execute(GENERIC, prepare=False).fetchone()[0] - generic
        timing.note = plan_of(conn, sql, {"q": queries[0], "f": flt})
        if generic and (other := plan_of(conn, sql, None)) != timing.note:
            timing.note += f"; generic {other} {generic}/{2 * len(queries)}"
    options: dict[str, Any] = {"filter": {"section": section}} if section else {}

    def via_store(q: np.ndarray) -> tuple[list[Any], str]:
        hits = store.search(query_vector=q, k=10, **options)
        return [h.chunk_id for h in hits], hits.path

    timings["Store.search"] = measure(via_store, queries)
    with store.session() as session:
        repository = SearchRepository(session, store.embedder)

        def via_repository(q: np.ndarray) -> tuple[list[Any], str]:
            hits = repository.search(query_vector=q, k=10, **options)
            return [h.chunk_id for h in hits], hits.path

        timings["SearchRepository.search"] = measure(via_repository, queries)
    for timing in (timings["Store.search"], timings["SearchRepository.search"]):
        timing.note = ", ".join(f"{path} {n}" for path, n in sorted(timing.paths.items()))
    return truth, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/pgsearch-bench"))
    parser.add_argument("--queries", type=int, default=HELD_OUT, help=f"at most {HELD_OUT}")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store, queries, held, vectors = load(args.data_dir)
    queries = queries[: args.queries]
    with store:
        url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conns = {name: psycopg.connect(url, autocommit=True) for name in RAW}
        for conn in conns.values():
            register_vector(conn)
        conns["SQL HNSW relaxed"].execute("SET hnsw.iterative_scan = relaxed_order")
        conns["SQL HNSW off"].execute("SET hnsw.iterative_scan = off")
        info = conns["SQL exact"]
        version, pgvector = info.execute(VERSIONS).fetchone()  # type: ignore[misc]
        counts: dict[str, int] = dict(info.execute(SECTION_COUNTS).fetchall())
        external = dict(info.execute(EXTERNAL_IDS).fetchall())
        unit = {chunk: vectors[external_id] for chunk, external_id in external.items()}
        cases = {s: time_case(store, conns, s, queries, unit) for s in [None, *SECTIONS]}
        peer = langchain(store, args.data_dir, held, len(queries))
    elapsed = time.perf_counter() - started

    total = sum(counts.values())
    cpus = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line]
    cpu = cpus[0].split(":", 1)[1].strip() if cpus else platform.processor()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"""
## Filtered vector search, k=10, {len(queries)} held-out query vectors

* machine: {cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}
* server: {version}; pgvector {pgvector}
* data: {total} chunks, one per Debian package description; HNSW (m 16, ef_construction 64),
  ef_search 40; GIN jsonb_path_ops on metadata
* command: .venv/bin/python benchmarks/filtered_search.py --data-dir {args.data_dir} \\
  --queries {len(queries)} (this run: {elapsed:.0f} s)
* cell: mean rows returned / recall@10 (against the exact top 10; ties count as found) / p50 ms /
  p95 ms. Raw SQL (psycopg, prepared, autocommit): the index of the planner's plan (hnsw; gin =
  GIN bitmap scan + sort; seq), and 'generic X n/m' when n of its m runs (warm-up included) took
  a generic plan that picks another index. pgsearch: the path its queries took.
* best raw: the fastest raw SQL path with recall@10 >= 0.98. pgsearch / best raw: p50 of
  Store.search / best raw p50, then SearchRepository.search / best raw p50.
""")
    ours = ["Store.search", "SearchRepository.search"]
    rows = []
    for section, (truth, timings) in cases.items():
        good = [n for n in RAW if not timings[n].error and truth.recall(timings[n].ids) >= 0.98]
        best = min(good, key=lambda n: timings[n].p50, default=None)
        share = 100 * (counts.get(section, 0) if section else total) / total
        cells = [timings[n].cell(truth) for n in [*RAW, *ours]]
        ok = best is not None and not any(timings[n].error for n in ours)
        ratio = " / ".join(f"{timings[n].p50 / timings[best].p50:.2f}x" for n in ours if ok)
        name, best = section or "(none)", best or "none >= 0.98"
        rows.append([name, f"{share:.2f}", *cells[:3], best, *cells[3:], ratio or "-"])
    table(["filter", "% chunks", *RAW, "best raw", *ours, "pgsearch / best raw"], rows)
    if peer is None:
        return
    print(f"\n### langchain-postgres {peer['version']} PGVector on the same server and data\n")
    print(f"""Cells as above. As shipped, PGVector creates no index on the embedding; the HNSW
index (m 16, ef_construction 64) was added by the helper ({peer["index_s"]:.0f} s to build).
Store / LangChain: Store.search p50 / LangChain p50.
""")
    rows, chunk = [], {external_id: c for c, external_id in external.items()}
    for section, plain, hnsw in zip(PEER_CASES, peer["no_index"], peer["hnsw"], strict=True):
        truth, timings = cases[section]
        cells = [section or "(none)", timings["Store.search"].cell(truth)]
        for run in (plain, hnsw):
            rate = truth.recall([[chunk[e] for e in ids] for ids in run["ids"]])
            cells.append(cell(run["rows"], rate, run["p50"], run["p95"]))
            cells.append(f"{timings['Store.search'].p50 / run['p50']:.2f}x")
        rows.append(cells)
    header = "filter|pgsearch Store.search|LangChain, no index (as shipped)|Store / LangChain"
    table([*header.split("|"), "LangChain + HNSW index", "Store / LangChain + HNSW"], rows)


if __name__ == "__main__":
    main()
