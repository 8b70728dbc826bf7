"""Vector index variants on pgsearch.chunks: build, size, recall and latency, against raw SQL,
LangChain's PGVector and FAISS.

    .venv/bin/python benchmarks/indexes.py [--data-dir /tmp/pgsearch-bench] [--json PATH]
    .venv/bin/python benchmarks/indexes.py --generated 1000000 [--json PATH]

Data. Debian (default): the 63,663 package descriptions with their all-MiniLM-L6-v2 vectors;
200 rows (random.Random(0), as benchmarks/filtered_search.py) are held out and their vectors
are the queries. ``--generated N``: N generated chunks of benchmarks/langchain_ingest_peer.py
(random 384-d unit vectors), the next 200 generated rows being the queries. The corpus goes once
through pgsearch's write path (Store.upsert in batches of 2,000, one chunk per document, inside
Store.bulk_load on an empty store) into an embedded store under --data-dir (debian-indexes/ or
generated-N/), reused on later runs. One server for the whole run.

Index variants, each built on pgsearch.chunks by pgsearch's Alembic operation
``op.rebuild_vector_index("ix_chunks_embedding_hnsw", ...)`` (concurrently, maintenance_work_mem
--maintenance-work-mem) and measured in turn: HNSW vector, HNSW halfvec, HNSW bit (binary
quantization, exact re-rank), IVFFlat vector, IVFFlat bit; HNSW with m 16, ef_construction 64;
IVFFlat with lists=None (pgvector's rule: rows / 1000 up to 1M rows). HNSW vector is built last,
so the store ends with the index pgsearch's migration makes. For each: build seconds (the whole
operation: concurrent build, then swap), pg_relation_size, and for each knob (hnsw.ef_search
20, 40, 100, 200; ivfflat.probes 1, sqrt(lists), 2 sqrt(lists), 4 sqrt(lists)), k = 10:

* ground truth: the exact top 10 by cosine (raw SQL with an OFFSET 0 fence, no index), once;
  in recall@10 a row as near as the 10th counts (identical texts tie), as filtered_search.py;
* raw SQL through psycopg (autocommit, prepared, the vector bound in binary, the knob SET on
  the session), returning the rows Store.search returns, with the same shape of statement: an
  inner query ordered by the index's expression, LIMIT 10, returning id, the exact distance
  ``embedding <=> $1``, document_id, position, content and metadata; pgsearch.documents joined
  for external_id and title; ``1 - distance`` as the score (cosine); ordered by distance, id.
  The index's expression: ``embedding <=> $1``; ``embedding::halfvec(384) <=>
  $1::halfvec(384)``; for bit the nearest N = 200 (20 x k) by
  ``binary_quantize(embedding)::bit(384) <~> binary_quantize($1)`` with hnsw.ef_search =
  max(ef_search, N), re-ranked exactly to 10, then the same join. This is the baseline of the
  1.3x target. The same scan returning ids only is timed too, as a reference (what fetching
  and decoding the rows costs), not as the baseline;
* pgsearch: ``Store.search(query_vector=v, mode="vector", k=10, ef_search=...)``, plus
  ``probes=`` (IVFFlat) and ``binary_oversample=20`` (bit) when this pgsearch's SearchRequest
  takes them (without them IVFFlat scans at pgvector's default probes = 1). The plan of its
  statement is checked with EXPLAIN: when it does not use the variant's index (a seq scan,
  exact and slow), only the first knob is timed.

Peers, on the same queries (benchmarks/indexes_peer.py, in a virtualenv of its own,
--data-dir/lc-venv, made on first use): langchain-postgres
``similarity_search_with_score_by_vector`` on the same server, as shipped (no index) and with
an HNSW index (m 16, ef_construction 64, ef_search 40); FAISS ``IndexFlatIP`` and
``IndexHNSWFlat`` (M 16, efConstruction 64, efSearch 40) in memory, one query at a time on one
thread. Compared with pgsearch on HNSW vector at ef_search 40 (its default).

Each timed pass follows an untimed warm-up pass of the same queries. Prints two tables and the
targets (pgsearch p50 <= 1.3x raw SQL and <= 0.33x langchain-postgres; binary + re-rank
recall@10 >= 0.95 at < 1/10 of the HNSW vector index's size); --json writes every figure with
the server's version and settings. Asserts nothing.

Runtime on 2 cores: Debian about 5 minutes on the first run (the pgsearch and LangChain loads
take about 1 of them, the five builds about 40 s), 3 after. --generated 1000000
--no-langchain --maintenance-work-mem 4GB: 75 minutes, measured (the pgsearch first load 25,
the five builds 29, the exact ground truth about a second a query, FAISS's HNSW build 6); add
about 45 for LangChain's load, index build and unindexed pass. With the default 1GB the HNSW
builds take far longer: a graph of 1M 384-d vectors needs about 2GB to build in memory.
Generated vectors are uniformly random: recall is near 0 for every approximate index there
(FAISS's too); that run measures builds, sizes and latency, the Debian set recall.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from alembic.migration import MigrationContext
from alembic.operations import Operations
from pgvector.psycopg import register_vector
from psycopg import sql
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filtered_search import EXACT_ALL, EXTERNAL_IDS, LC_PIN, VERSIONS, Timing, Truth, measure
from ingest import RefusingEmbedder, cpu_name, git_state, loads, table
from langchain_ingest_peer import DIM, debian_size, rows, unit_vectors
from search_modes import ONE_CHUNK

import pgsearch.migrations  # noqa: F401  (registers op.rebuild_vector_index)
from pgsearch import DocumentInput, IndexBuildSettings, SearchRequest, Store

HELD_OUT = 200
K = 10
CANDIDATES = 20 * K  # bit: Hamming candidates re-ranked (raw); pgsearch's binary_oversample 20
INDEX = "ix_chunks_embedding_hnsw"
M, EF_CONSTRUCTION = 16, 64
EF_SEARCH = (20, 40, 100, 200)
PGSEARCH_EF = 40  # pgsearch's default ef_search, compared with the peers
BATCH = 2000
SETTINGS = (
    "shared_buffers",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "work_mem",
    "jit",
    "effective_cache_size",
)

# The raw statements order by the index's own expression, so that the planner can use it. The
# timed ones return the rows Store.search returns, as its statement does: the nearest 10 with
# their chunk columns in an inner query, then documents joined for external_id and title, and
# 1 - the cosine distance as the score. The ids-only ones are the index scan alone: a reference.
NEAREST_VECTOR = sql.SQL(
    "SELECT id, embedding <=> %(q)b AS distance, document_id, position, content, metadata"
    " FROM pgsearch.chunks ORDER BY embedding <=> %(q)b LIMIT {k}"
).format(k=sql.Literal(K))
NEAREST_HALFVEC = sql.SQL(
    "SELECT id, embedding <=> %(q)b AS distance, document_id, position, content, metadata"
    " FROM pgsearch.chunks"
    " ORDER BY embedding::halfvec({dim}) <=> %(q)b::halfvec({dim}) LIMIT {k}"
).format(dim=sql.Literal(DIM), k=sql.Literal(K))
NEAREST_BIT = sql.SQL(
    "SELECT id, embedding <=> %(q)b AS distance, document_id, position, content, metadata"
    " FROM (SELECT id, embedding, document_id, position, content, metadata"
    " FROM pgsearch.chunks"
    " ORDER BY binary_quantize(embedding)::bit({dim}) <~> binary_quantize(%(q)b)"
    " LIMIT {candidates}) AS candidates ORDER BY distance, id LIMIT {k}"
).format(dim=sql.Literal(DIM), candidates=sql.Literal(CANDIDATES), k=sql.Literal(K))
ROWS = sql.SQL(
    "SELECT nearest.id AS chunk_id, nearest.document_id, documents.external_id,"
    " documents.title, nearest.position, nearest.content, nearest.metadata,"
    " 1 - nearest.distance AS score"
    " FROM ({nearest}) AS nearest"
    " JOIN pgsearch.documents AS documents ON documents.id = nearest.document_id"
    " ORDER BY nearest.distance, nearest.id"
)
IDS_VECTOR = sql.SQL(
    "SELECT id FROM pgsearch.chunks ORDER BY embedding <=> %(q)b LIMIT {k}"
).format(k=sql.Literal(K))
IDS_HALFVEC = sql.SQL(
    "SELECT id FROM pgsearch.chunks"
    " ORDER BY embedding::halfvec({dim}) <=> %(q)b::halfvec({dim}) LIMIT {k}"
).format(dim=sql.Literal(DIM), k=sql.Literal(K))
IDS_BIT = sql.SQL(
    "SELECT id FROM (SELECT id, embedding FROM pgsearch.chunks"
    " ORDER BY binary_quantize(embedding)::bit({dim}) <~> binary_quantize(%(q)b)"
    " LIMIT {candidates}) AS candidates ORDER BY embedding <=> %(q)b, id LIMIT {k}"
).format(dim=sql.Literal(DIM), candidates=sql.Literal(CANDIDATES), k=sql.Literal(K))
INDEX_SIZE = (
    "SELECT pg_relation_size(%s::regclass), reloptions FROM pg_class WHERE oid = %s::regclass"
)
COUNT = "SELECT (SELECT count(*) FROM pgsearch.documents), (SELECT count(*) FROM pgsearch.chunks)"


@dataclass(frozen=True)
class Variant:
    name: str
    method: str  # hnsw | ivfflat
    storage: str  # vector | halfvec | bit

    @property
    def raw_sql(self) -> sql.Composed:
        """The timed raw statement: the rows and order Store.search returns."""
        nearest = {"vector": NEAREST_VECTOR, "halfvec": NEAREST_HALFVEC, "bit": NEAREST_BIT}
        return ROWS.format(nearest=nearest[self.storage])

    @property
    def ids_sql(self) -> sql.Composed:
        """The index scan alone, ids only: a reference for what the rows cost."""
        return {"vector": IDS_VECTOR, "halfvec": IDS_HALFVEC, "bit": IDS_BIT}[self.storage]


VARIANTS = [
    Variant("HNSW vector", "hnsw", "vector"),
    Variant("HNSW halfvec", "hnsw", "halfvec"),
    Variant("HNSW bit + re-rank", "hnsw", "bit"),
    Variant("IVFFlat vector", "ivfflat", "vector"),
    Variant("IVFFlat bit + re-rank", "ivfflat", "bit"),
]
BUILD_ORDER = [*VARIANTS[1:], VARIANTS[0]]  # the store ends with its migration's index


@dataclass
class Knob:
    """One knob value of a variant: raw SQL's (the same rows; ids only) and pgsearch's timings."""

    setting: str
    value: int
    raw: Timing
    raw_ids: Timing
    pgsearch: Timing | None  # None: not timed (pgsearch scans the table; see the first knob)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    variant: Variant
    build_s: float = 0.0
    size: int = 0
    lists: int | None = None
    raw_sql: str = ""
    raw_ids_sql: str = ""
    raw_plan: str = ""
    pgsearch_plan: str = ""
    note: str = ""
    knobs: list[Knob] = field(default_factory=list)
    error: str = ""


def log(message: str) -> None:
    print(f"[indexes] {message}", file=sys.stderr, flush=True)


# --- data ----------------------------------------------------------------------------------------


@dataclass
class Data:
    dataset: str
    total: int  # rows read from the data set: corpus + held out
    held: list[int]  # row numbers of the queries, in query order
    external_ids: list[str]  # the corpus's, in row order
    matrix: np.ndarray  # the corpus's unit vectors
    queries: np.ndarray  # unit query vectors


def read_data(dataset: str, total: int, held: list[int]) -> Data:
    external_ids, matrix, queries = unit_vectors(dataset, total, held)
    return Data(dataset, total, held, external_ids, matrix, queries)


def documents(data: Data) -> Iterator[list[DocumentInput]]:
    held, batch = set(data.held), []
    for row, (external_id, title, content, metadata, vector) in enumerate(
        rows(data.dataset, 0, data.total)
    ):
        if row in held:
            continue
        batch.append(
            DocumentInput(external_id, content, title, metadata, vectors=[vector.tolist()])
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(store: Store, data: Data, memory: str) -> None:
    """Load the corpus through pgsearch's write path unless the store already holds it."""
    wanted = len(data.external_ids)
    stored = store.status().documents
    if stored == wanted:
        log(f"store reused: {stored} documents already loaded")
        return
    log(f"store holds {stored} documents, loading {wanted}")
    start = time.perf_counter()
    if stored == 0:
        # A first load: indexes built after the rows (with --maintenance-work-mem), then optimize.
        with store.bulk_load(IndexBuildSettings(maintenance_work_mem=memory)):
            for batch in documents(data):
                store.upsert(batch)
    else:
        for batch in documents(data):
            store.upsert(batch)
        store.optimize(IndexBuildSettings(maintenance_work_mem=memory))
    log(f"loaded {wanted} documents in {time.perf_counter() - start:.1f} s")


# --- indexes -------------------------------------------------------------------------------------


def rebuild(store: Store, variant: Variant, memory: str) -> float:
    """Rebuild the store's vector index as ``variant`` with pgsearch's Alembic operation."""
    hnsw = variant.method == "hnsw"
    start = time.perf_counter()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        with context.begin_transaction():
            operations: Any = Operations(context)  # the operation is registered at run time
            operations.rebuild_vector_index(
                INDEX,
                "chunks",
                "embedding",
                schema="pgsearch",
                method=variant.method,
                storage=variant.storage,
                m=M if hnsw else None,
                ef_construction=EF_CONSTRUCTION if hnsw else None,
                lists=None,
                maintenance_work_mem=memory,
                old_index_grace=0,  # one process: no other searches to move over
            )
    seconds = time.perf_counter() - start
    forget_index_cache(store)
    return seconds


def forget_index_cache(store: Store) -> None:
    """Drop what this process remembers about the store's vector index."""
    from pgsearch.index_catalog import forget_search_index

    forget_search_index(store.engine)


def knob_values(variant: Variant, lists: int | None) -> list[int]:
    if variant.method == "hnsw":
        return list(EF_SEARCH)
    assert lists is not None
    root = max(1, round(math.sqrt(lists)))
    return sorted({min(p, lists) for p in (1, root, 2 * root, 4 * root)})


def raw_plan(conn: psycopg.Connection[Any], statement: sql.Composed, q: np.ndarray) -> str:
    explain = sql.SQL("EXPLAIN (FORMAT JSON) {}").format(statement)
    plan = json.dumps(conn.execute(explain, {"q": q}).fetchone())
    return "index" if INDEX in plan else "seq scan"


class StatementLog:
    """The SQL statements (and parameters) pgsearch's engine runs while listening."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: list[tuple[str, Any]] = []

    def _record(self, conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        self.seen.append((statement, params))

    def __enter__(self) -> StatementLog:
        event.listen(self.store.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.store.engine, "before_cursor_execute", self._record)


def pgsearch_plan(store: Store, q: np.ndarray, options: dict[str, Any]) -> str:
    """Whether pgsearch's vector statement for ``q`` uses the index (EXPLAIN of what it ran)."""
    with StatementLog(store) as statements:
        store.search(query_vector=q, mode="vector", k=K, **options)
    vector = [(s, p) for s, p in statements.seen if "chunks" in s and "ORDER BY" in s.upper()]
    if not vector:
        return "unknown (no statement seen)"
    statement, params = vector[-1]
    try:
        with store.engine.connect() as conn:
            register_vector(conn.connection.driver_connection)  # pgsearch's binary vectors  # type: ignore[arg-type]
            plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar()
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"
    return "index" if INDEX in json.dumps(plan) else "seq scan"


def accepted_options() -> set[str]:
    return {f.name for f in fields(SearchRequest) if f.init}


def pgsearch_options(variant: Variant, value: int, accepted: set[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if variant.method == "hnsw":
        options["ef_search"] = value
    elif "probes" in accepted:
        options["probes"] = value
    if variant.storage == "bit" and "binary_oversample" in accepted:
        options["binary_oversample"] = CANDIDATES // K
    return options


def connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


def measure_variant(
    store: Store,
    url: str,
    variant: Variant,
    data: Data,
    memory: str,
    accepted: set[str],
) -> Result:
    result = Result(variant)
    log(f"building {variant.name} ...")
    result.build_s = rebuild(store, variant, memory)
    qualified = f"pgsearch.{INDEX}"
    with connect(url) as conn:
        size, options = conn.execute(INDEX_SIZE, (qualified, qualified)).fetchone()  # type: ignore[misc]
        result.raw_sql = variant.raw_sql.as_string(conn)
        result.raw_ids_sql = variant.ids_sql.as_string(conn)
    result.size = size
    for option in options or []:
        if option.startswith("lists="):
            result.lists = int(option.split("=", 1)[1])
    log(f"  built in {result.build_s:.1f} s, {size / 2**20:.1f} MB, options {options}")
    queries = data.queries
    if variant.method == "ivfflat" and "probes" not in accepted:
        result.note = "this pgsearch takes no probes: it ran at pgvector's default probes (1)"
    if variant.storage == "bit" and "binary_oversample" not in accepted:
        result.note = "this pgsearch takes no binary_oversample"
    setting = "hnsw.ef_search" if variant.method == "hnsw" else "ivfflat.probes"
    for i, value in enumerate(knob_values(variant, result.lists)):
        knob = value
        if variant.storage == "bit" and variant.method == "hnsw":
            knob = max(value, CANDIDATES)  # the scan must yield the candidates it is asked for
        # A connection per knob: its prepared statement is planned with this knob set.
        with connect(url) as conn:
            conn.execute("SELECT set_config(%s, %s, false)", (setting, str(knob)))
            raw_plan_now = raw_plan(conn, variant.raw_sql, queries[0])
            ids_plan = raw_plan(conn, variant.ids_sql, queries[0])

            def raw(
                q: np.ndarray,
                conn: psycopg.Connection[Any] = conn,
                statement: sql.Composed = variant.raw_sql,
            ) -> tuple[list[Any], str]:
                # Every row is fetched and decoded (metadata as a dict), as Store.search does.
                return [r[0] for r in conn.execute(statement, {"q": q}, prepare=True)], ""

            raw_timing = measure(raw, queries)
            ids_timing = measure(partial(raw, statement=variant.ids_sql), queries)
        raw_timing.note, ids_timing.note = raw_plan_now, ids_plan
        options = pgsearch_options(variant, value, accepted)
        plan = pgsearch_plan(store, queries[0], options)
        if i == 0:
            result.raw_plan, result.pgsearch_plan = raw_plan_now, plan
        ours: Timing | None = None
        if i == 0 or result.pgsearch_plan != "seq scan":

            def via_store(
                q: np.ndarray, options: dict[str, Any] = options
            ) -> tuple[list[Any], str]:
                hits = store.search(query_vector=q, mode="vector", k=K, **options)
                return [h.chunk_id for h in hits], hits.path

            ours = measure(via_store, queries)
            ours.note = plan
        result.knobs.append(Knob(setting, value, raw_timing, ids_timing, ours, options))
        log(
            f"  {setting} {value}: raw p50 {raw_timing.p50:.2f} ms ({raw_plan_now}),"
            f" ids only {ids_timing.p50:.2f} ms ({ids_plan})"
            + (f", pgsearch p50 {ours.p50:.2f} ms ({plan})" if ours and not ours.error else "")
        )
    return result


# --- peers ---------------------------------------------------------------------------------------


def peer_python(data_dir: Path) -> Path | None:
    """--data-dir/lc-venv/bin/python with langchain-postgres and faiss-cpu (made once)."""
    python = data_dir / "lc-venv" / "bin" / "python"
    check = [str(python), "-c", "import langchain_postgres, faiss"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(python.parents[1])], check=False)
    for pin in (LC_PIN, "langchain-postgres"):
        pip = [str(python), "-m", "pip", "install", "-q", pin, "faiss-cpu", "psycopg[binary]"]
        log("installing: " + " ".join(pip[3:]))
        if python.exists() and subprocess.run([*pip, "numpy"], stdout=sys.stderr).returncode == 0:
            return python
    return None


def peers(
    store: Store, data: Data, data_dir: Path, memory: str, langchain: bool, faiss: bool
) -> dict[str, Any]:
    if not (langchain or faiss):
        return {}
    python = peer_python(data_dir)
    if python is None:
        log("the peers' virtualenv could not be made: no LangChain or FAISS comparison")
        return {}
    url = store.engine.url.render_as_string(hide_password=False)
    spec = {
        "url": url,
        "dataset": data.dataset,
        "total": data.total,
        "held_out": data.held,
        "collection": f"indexes_{data.dataset}_{len(data.external_ids)}",
        "m": M,
        "ef_construction": EF_CONSTRUCTION,
        "ef_search": PGSEARCH_EF,
        "maintenance_work_mem": memory,
        "langchain": langchain,
        "faiss": faiss,
    }
    path = data_dir / "indexes-peer-spec.json"
    path.write_text(json.dumps(spec))
    helper = Path(__file__).with_name("indexes_peer.py")
    log("running the peers (LangChain, FAISS) in their own virtualenv")
    done = subprocess.run([python, helper, path], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        log(f"the peer helper failed (exit {done.returncode}): no peer comparison")
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- output --------------------------------------------------------------------------------------


def figures(timing: Timing | None, truth: Truth) -> dict[str, Any] | None:
    if timing is None:
        return None
    if timing.error:
        return {"error": timing.error}
    return {
        "p50_ms": timing.p50,
        "p95_ms": float(np.percentile(timing.ms, 95)),
        "recall_at_10": truth.recall(timing.ids),
        "mean_rows": statistics.mean(len(i) for i in timing.ids),
        "paths": dict(timing.paths),
        "plan": timing.note,
    }


def peer_figures(run: dict[str, Any], truth: Truth, chunk: dict[str, int]) -> dict[str, Any]:
    found = [[chunk[e] for e in ids] for ids in run["ids"]]
    return {"p50_ms": run["p50"], "p95_ms": run["p95"], "recall_at_10": truth.recall(found)}


def ms(f: dict[str, Any] | None) -> str:
    if f is None:
        return "-"
    if "error" in f:
        return "error"
    return f"{f['p50_ms']:.2f} / {f['p95_ms']:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/pgsearch-bench"))
    parser.add_argument("--generated", type=int, help="N generated 384-d rows instead of Debian")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--maintenance-work-mem", default="1GB", help="for the index builds")
    parser.add_argument("--no-langchain", action="store_true")
    parser.add_argument("--no-faiss", action="store_true")
    args = parser.parse_args()
    command = " ".join(
        [".venv/bin/python", "benchmarks/indexes.py", *map(shlex.quote, sys.argv[1:])]
    )
    started, load_before = time.perf_counter(), os.getloadavg()
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.generated:
        dataset, total = "generated", args.generated + HELD_OUT
        held = list(range(args.generated, total))
        store_dir = data_dir / f"generated-{args.generated}"
    else:
        dataset, total = "debian", debian_size()
        held = random.Random(0).sample(range(total), HELD_OUT)
        store_dir = data_dir / "debian-indexes"
    log(f"reading the {dataset} data set ({total} rows)")
    data = read_data(dataset, total, held)
    accepted = accepted_options()
    store = Store.open(embedder=RefusingEmbedder(), data_dir=store_dir, chunking=ONE_CHUNK)
    with store:
        store.migrate()
        fill(store, data, args.maintenance_work_mem)
        url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(url, autocommit=True)
        register_vector(conn)
        server, pgvector = conn.execute(VERSIONS).fetchone()  # type: ignore[misc]
        short_server = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name = ANY(%s)",
                (list(SETTINGS),),
            ).fetchall()
        )
        counted = conn.execute(COUNT).fetchone()
        assert counted is not None
        row_counts = {"documents": counted[0], "chunks": counted[1]}
        external: dict[int, str] = dict(conn.execute(EXTERNAL_IDS).fetchall())
        chunk = {external_id: c for c, external_id in external.items()}
        position = {external_id: i for i, external_id in enumerate(data.external_ids)}
        unit = {c: data.matrix[position[e]] for c, e in external.items()}
        log("exact ground truth ...")

        def exact(q: np.ndarray) -> tuple[list[Any], str]:
            return [r[0] for r in conn.execute(EXACT_ALL, {"q": q}, prepare=True)], ""

        exact_timing = measure(exact, data.queries)
        truth = Truth(data.queries, exact_timing.ids, unit)
        results: dict[str, Result] = {}
        for variant in BUILD_ORDER:
            try:
                results[variant.name] = measure_variant(
                    store, url, variant, data, args.maintenance_work_mem, accepted
                )
            except Exception as exc:
                traceback.print_exc()
                results[variant.name] = Result(variant, error=f"{type(exc).__name__}: {exc}")
        pgsearch_hnsw = results[VARIANTS[0].name]
        peer = peers(
            store,
            data,
            data_dir,
            args.maintenance_work_mem,
            not args.no_langchain,
            not args.no_faiss,
        )
        conn.close()
    elapsed = time.perf_counter() - started

    # --- figures
    reference = results[VARIANTS[0].name].size or None
    out_variants: list[dict[str, Any]] = []
    for variant in VARIANTS:
        r = results[variant.name]
        knobs: list[dict[str, Any]] = []
        for kn in r.knobs:
            raw_f, ours_f = figures(kn.raw, truth), figures(kn.pgsearch, truth)
            knobs.append(
                {
                    "setting": kn.setting,
                    "value": kn.value,
                    "pgsearch_options": kn.options,
                    "raw": raw_f,
                    "raw_ids_only": figures(kn.raw_ids, truth),
                    "pgsearch": ours_f,
                    "pgsearch_over_raw": (
                        ours_f["p50_ms"] / raw_f["p50_ms"]
                        if ours_f and raw_f and "error" not in ours_f and "error" not in raw_f
                        else None
                    ),
                }
            )
        out_variants.append(
            {
                "name": variant.name,
                "method": variant.method,
                "storage": variant.storage,
                "m": M if variant.method == "hnsw" else None,
                "ef_construction": EF_CONSTRUCTION if variant.method == "hnsw" else None,
                "lists": r.lists,
                "build_s": r.build_s,
                "size_bytes": r.size,
                "size_vs_hnsw_vector": r.size / reference if reference else None,
                "raw_sql": r.raw_sql,
                "raw_ids_sql": r.raw_ids_sql,
                "raw_plan": r.raw_plan,
                "pgsearch_plan": r.pgsearch_plan,
                "note": r.note,
                "error": r.error,
                "knobs": knobs,
            }
        )
    ours_ref = next(
        (kn for kn in pgsearch_hnsw.knobs if kn.value == PGSEARCH_EF and kn.pgsearch), None
    )
    ours_ref_f = figures(ours_ref.pgsearch, truth) if ours_ref else None
    peer_out: dict[str, Any] = {}
    lc, fa = peer.get("langchain"), peer.get("faiss")
    if lc and "error" not in lc:
        peer_out["langchain"] = {
            "version": lc["version"],
            "load_s": lc["load_s"],
            "rows": lc["rows"],
            "index_s": lc["index_s"],
            "no_index": peer_figures(lc["no_index"], truth, chunk),
            "hnsw": peer_figures(lc["hnsw"], truth, chunk),
        }
    elif lc:
        peer_out["langchain"] = lc
    if fa and "error" not in fa:
        peer_out["faiss"] = {
            "version": fa["version"],
            "rows": fa["rows"],
            "hnsw_build_s": fa["hnsw_build_s"],
            "flat": peer_figures(fa["flat"], truth, chunk),
            "hnsw": peer_figures(fa["hnsw"], truth, chunk),
        }
    elif fa:
        peer_out["faiss"] = fa

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    shown = ", ".join(f"{k} {v}" for k, v in sorted(settings.items()))
    exact_f = figures(exact_timing, truth)
    print(f"""
## Vector index variants, k = {K}, {len(data.queries)} held-out query vectors

* machine: {cpu_name()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()};
  load average {loads(load_before)} at the start, {loads(os.getloadavg())} at the end
* server: PostgreSQL {short_server} (embedded, one server for the run), pgvector {pgvector}; {shown}
* clients: Python {platform.python_version()}, psycopg {version("psycopg")}, pgsearch at \
{git_state()}; SearchRequest takes probes: {"probes" in accepted}, binary_oversample: \
{"binary_oversample" in accepted}
* data: {dataset}, {row_counts["chunks"]:,} chunks in {row_counts["documents"]:,} documents \
(one chunk each); exact scan p50 {ms(exact_f)} ms
* command: {command} (this run: {elapsed / 60:.1f} min)
* built by op.rebuild_vector_index (concurrently, maintenance_work_mem \
{args.maintenance_work_mem}); HNSW m {M}, ef_construction {EF_CONSTRUCTION}; IVFFlat lists by \
pgvector's rule; bit = binary_quantize HNSW/IVFFlat, the nearest {CANDIDATES} by Hamming \
re-ranked exactly (raw: hnsw.ef_search = max(ef_search, {CANDIDATES}); pgsearch: \
binary_oversample {CANDIDATES // K} where taken)
* cells: p50 / p95 ms; recall@10 against the exact top 10 (ties at the 10th count); raw SQL:
  psycopg, prepared, binary vector, returning the rows Store.search returns (chunk id,
  document id, external_id, title, position, content, metadata, 1 - distance as score: the
  nearest {K} in an inner query ordered by the index's expression, pgsearch.documents joined);
  raw ids p50: the index scan alone returning ids, a reference for what the rows cost, not the
  baseline; pgsearch: Store.search(query_vector=v, mode="vector", k=10, ...); plan = what
  EXPLAIN shows for each (index / seq scan). Target: pgsearch p50 <= 1.3x raw (the same rows).
""")
    rows_out, notes = [], []
    for v in out_variants:
        if v["error"]:
            rows_out.append([v["name"], "error", *["" for _ in range(11)]])
            notes.append(f"* {v['name']}: {v['error']}")
            continue
        first = True
        for kn in v["knobs"]:
            raw_f, ids_f, ours_f = kn["raw"], kn["raw_ids_only"], kn["pgsearch"]
            short = "ef_search" if kn["setting"].startswith("hnsw") else "probes"
            rec = f"{raw_f['recall_at_10']:.3f}" if raw_f and "error" not in raw_f else "-"
            ours_rec = f"{ours_f['recall_at_10']:.3f}" if ours_f and "error" not in ours_f else "-"
            over = kn["pgsearch_over_raw"]
            verdict = "-" if over is None else f"{over:.2f}x " + ("ok" if over <= 1.3 else "MISSED")
            rows_out.append(
                [
                    v["name"] if first else "",
                    f"{short} {kn['value']}",
                    f"{v['build_s']:.1f}" if first else "",
                    f"{v['size_bytes'] / 2**20:.1f}" if first else "",
                    (
                        f"{v['size_vs_hnsw_vector']:.3f}"
                        if first and v["size_vs_hnsw_vector"]
                        else ""
                    ),
                    rec,
                    ms(raw_f),
                    f"{ids_f['p50_ms']:.2f}" if ids_f and "error" not in ids_f else "-",
                    raw_f.get("plan", "") if raw_f else "",
                    ours_rec,
                    ms(ours_f) if ours_f else "not timed (seq scan)",
                    ours_f.get("plan", "") if ours_f else "",
                    verdict,
                ]
            )
            first = False
        if v["note"]:
            notes.append(f"* {v['name']}: {v['note']}")
    table(
        [
            "variant",
            "knob",
            "build s",
            "size MB",
            "vs HNSW vector",
            "raw recall@10",
            "raw p50 / p95",
            "raw ids p50",
            "raw plan",
            "pgsearch recall@10",
            "pgsearch p50 / p95",
            "pgsearch plan",
            "pgsearch / raw",
        ],
        rows_out,
    )
    if notes:
        print("\n" + "\n".join(notes))

    print(f"""
### Peers on the same queries and server (pgsearch: HNSW vector, ef_search {PGSEARCH_EF})

* langchain-postgres: PGVector.similarity_search_with_score_by_vector(v, k=10), as shipped (no
  index on the embedding) and with an HNSW index (m {M}, ef_construction {EF_CONSTRUCTION},
  ef_search 40); FAISS IndexFlatIP and IndexHNSWFlat (M {M}, efConstruction {EF_CONSTRUCTION},
  efSearch {PGSEARCH_EF}) over the unit vectors, one query at a time, one thread.
* cells: p50 / p95 ms, recall@10. Target: pgsearch p50 <= 0.33x langchain-postgres.
""")
    ours_p50 = ours_ref_f["p50_ms"] if ours_ref_f and "error" not in ours_ref_f else None
    peer_rows = []
    if ours_ref_f and ours_p50 is not None:
        peer_rows.append(
            ["pgsearch Store.search", ms(ours_ref_f), f"{ours_ref_f['recall_at_10']:.3f}", ""]
        )
    lc_out, fa_out = peer_out.get("langchain"), peer_out.get("faiss")
    if lc_out and "error" not in lc_out:
        for key, label in (("no_index", "no index (as shipped)"), ("hnsw", "+ HNSW index")):
            f = lc_out[key]
            over = ratio(ours_p50, f["p50_ms"])
            ok = (
                "" if ours_p50 is None else (" ok" if ours_p50 / f["p50_ms"] <= 0.33 else " MISSED")
            )
            peer_rows.append(
                [
                    f"langchain-postgres {lc_out['version']}, {label}",
                    ms(f),
                    f"{f['recall_at_10']:.3f}",
                    over + ok,
                ]
            )
    elif lc_out:
        peer_rows.append(["langchain-postgres", "error: " + lc_out["error"][:80], "", ""])
    if fa_out and "error" not in fa_out:
        for key, label in (("flat", "IndexFlatIP"), ("hnsw", "IndexHNSWFlat")):
            f = fa_out[key]
            peer_rows.append(
                [
                    f"FAISS {fa_out['version']} {label}",
                    ms(f),
                    f"{f['recall_at_10']:.3f}",
                    ratio(ours_p50, f["p50_ms"]),
                ]
            )
    elif fa_out:
        peer_rows.append(["FAISS", "error: " + fa_out["error"][:80], "", ""])
    table(["search", "p50 / p95 ms", "recall@10", "pgsearch / this"], peer_rows)
    if lc_out and "error" not in lc_out:
        load = "reused" if lc_out["load_s"] is None else f"{lc_out['load_s']:.0f} s"
        print(
            f"\nLangChain: {lc_out['rows']:,} rows (load {load}), HNSW index built in "
            f"{lc_out['index_s']:.1f} s."
        )
    if fa_out and "error" not in fa_out:
        print(
            f"FAISS: {fa_out['rows']:,} rows, IndexHNSWFlat built in "
            f"{fa_out['hnsw_build_s']:.1f} s."
        )

    print("\n### Targets (reported, not asserted)\n")
    targets: dict[str, Any] = {}
    overs = [
        (v["name"], kn["value"], kn["pgsearch_over_raw"])
        for v in out_variants
        for kn in v["knobs"]
        if kn["pgsearch_over_raw"] is not None
        and not v["note"]  # pgsearch could not be given the same knob
        and kn["raw"].get("plan") == kn["pgsearch"].get("plan") == "index"
    ]
    worst = max(overs, key=lambda o: o[2], default=None)
    targets["pgsearch_over_raw_max"] = worst[2] if worst else None
    if worst:
        print(
            f"* pgsearch p50 <= 1.3x raw SQL (the same rows): worst {worst[2]:.2f}x"
            f" ({worst[0]}, knob {worst[1]}) over the rows where both used the index with the"
            " same knob: " + ("met" if worst[2] <= 1.3 else "MISSED")
        )
    if lc_out and "error" not in lc_out and ours_p50 is not None:
        for key in ("hnsw", "no_index"):
            share = ours_p50 / lc_out[key]["p50_ms"]
            targets[f"pgsearch_over_langchain_{key}"] = share
            print(
                f"* pgsearch p50 <= 0.33x langchain-postgres ({key.replace('_', ' ')}): "
                f"{share:.2f}x: " + ("met" if share <= 0.33 else "MISSED")
            )
    for v in out_variants:
        if v["storage"] != "bit" or v["error"] or not v["size_vs_hnsw_vector"]:
            continue
        good = [
            kn
            for kn in v["knobs"]
            if kn["raw"] and "error" not in kn["raw"] and kn["raw"]["recall_at_10"] >= 0.95
        ]
        best = max((kn["raw"]["recall_at_10"] for kn in v["knobs"] if kn["raw"]), default=0.0)
        small = v["size_vs_hnsw_vector"] < 0.1
        met = bool(good) and small
        targets[f"binary_{v['method']}"] = {
            "best_raw_recall": best,
            "size_vs_hnsw_vector": v["size_vs_hnsw_vector"],
            "met": met,
        }
        first_good = f", first at {good[0]['setting']} {good[0]['value']}" if good else ""
        print(
            f"* {v['name']}: recall@10 >= 0.95 at < 1/10 of HNSW vector's size: best raw recall "
            f"{best:.3f}{first_good}, size {v['size_vs_hnsw_vector']:.3f}x: "
            + ("met" if met else "MISSED")
        )

    if args.json:
        out = {
            "command": command,
            "git": git_state(),
            "elapsed_s": elapsed,
            "machine": {
                "cpu": cpu_name(),
                "cores": os.cpu_count(),
                "memory_gib": memory,
                "platform": platform.platform(),
                "load_before": load_before,
                "load_after": os.getloadavg(),
            },
            "server_version": server,
            "pgvector_version": pgvector,
            "settings": settings,
            "dataset": dataset,
            "rows": {
                **row_counts,
                "queries": len(data.queries),
                "langchain": (lc_out or {}).get("rows"),
                "faiss": (fa_out or {}).get("rows"),
            },
            "k": K,
            "bit_candidates": CANDIDATES,
            "maintenance_work_mem_for_builds": args.maintenance_work_mem,
            "search_request_takes": {
                "probes": "probes" in accepted,
                "binary_oversample": "binary_oversample" in accepted,
            },
            "exact": exact_f,
            "variants": out_variants,
            "pgsearch_reference": ours_ref_f,
            "peers": peer_out,
            "targets": targets,
        }
        args.json.write_text(json.dumps(out, indent=1, default=str))
        print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
