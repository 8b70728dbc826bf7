"""Ingest throughput with your own vectors: pgsearch's write path against raw COPY and LangChain.

    .venv/bin/python benchmarks/ingest.py [--data-dir /tmp/pgsearch-ingest-bench] \
        [--generated 100000]

One embedded server (started through pgsearch in --data-dir, held by this process for the whole
run) and one fresh database per measured case, dropped afterwards. Data (see
benchmarks/langchain_ingest_peer.py, which defines it): the 63,663 Debian package descriptions
with their precomputed all-MiniLM-L6-v2 vectors, and N generated chunks (random unit vectors,
texts of about 100 words). One chunk per document; batches of 1,000 rows everywhere.

Cases, each in a child process of its own so that its peak RSS is its own:

* pgsearch first load: ``store.migrate(dim=384)``, then, inside ``Store.bulk_load()`` (what
  ``pgsearch ingest`` does for a first load: the HNSW and GIN indexes dropped, then built after
  the data with maintenance_work_mem = 1GB or --maintenance-work-mem, then ANALYZE),
  ``Store.upsert`` of ``DocumentInput(id, text, title, metadata, vectors=[vector])`` batches,
  with an embedder named
  sentence-transformers/all-MiniLM-L6-v2 that refuses to embed; timed whole, builds included;
* pgsearch incremental: the same, the first half loaded untimed (as a first load), the second
  half timed, into the live indexes;
* raw COPY with the same indexes: psycopg binary COPY (pgvector registered), one COPY statement
  per batch, into a table with pgsearch.chunks' columns and its HNSW (cosine, m 16,
  ef_construction 64), GIN tsv and GIN jsonb_path_ops metadata indexes; each half timed;
* raw COPY, then index: the same COPY into the table without indexes, then the three indexes
  built with maintenance_work_mem = 1GB; then, timed apart, the core of what pgsearch's BM25
  adds, built set-based (a postings table from ``unnest(tsv)`` and its B-tree; not the title
  frequencies, ledgers and trigram vocabulary pgsearch also keeps): a closer baseline;
* langchain-postgres 0.0.19 ``PGVector.add_embeddings``, in a virtualenv of its own
  (--data-dir/lc-venv, made on first use), with an HNSW index (same m, ef_construction) created
  before the load.

Only the write calls are timed (upsert, COPY and commit, add_embeddings, CREATE INDEX): reading
or generating the data and building the call's arguments are not. Prints one markdown table;
reports the targets, asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy import URL, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from langchain_ingest_peer import DIM, batches, debian_size, peak_rss_mib

from pgsearch import DocumentInput, IndexBuildSettings, Store, create_engine
from pgsearch.database import start_embedded

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LC_PIN = "langchain-postgres==0.0.19"
M, EF_CONSTRUCTION = 16, 64
MAINTENANCE_WORK_MEM = "1GB"
CASES = ["pgsearch first", "pgsearch incremental", "raw indexed", "raw then index"]
RAW_TABLE = f"""
CREATE TABLE chunks (
    id bigserial,
    document_id bigint,
    position int,
    content text,
    content_hash text,
    metadata jsonb,
    embedding vector({DIM}) STORAGE PLAIN,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
)
"""
RAW_INDEXES = {
    "hnsw": "CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)"
    f" WITH (m = {M}, ef_construction = {EF_CONSTRUCTION})",
    "gin tsv": "CREATE INDEX chunks_tsv ON chunks USING gin (tsv)",
    "gin metadata": "CREATE INDEX chunks_metadata ON chunks USING gin (metadata jsonb_path_ops)",
}
# The core of what pgsearch's BM25 adds to the raw table, built set-based after the load: a
# posting per (lexeme, chunk) with the lexeme's frequency and the chunk's length, under a
# B-tree. pgsearch also keeps title frequencies, the frequency and totals ledgers and the
# trigram vocabulary: this baseline does less than pgsearch, not more.
RAW_POSTINGS = [
    "CREATE TABLE postings AS SELECT u.lexeme, c.id AS chunk_id,"
    " cardinality(u.positions) AS frequency,"
    " sum(cardinality(u.positions)) OVER (PARTITION BY c.id) AS chunk_tokens"
    " FROM chunks AS c, unnest(c.tsv) AS u",
    "CREATE INDEX postings_lexeme ON postings (lexeme, chunk_id) INCLUDE (frequency, chunk_tokens)",
]
RAW_COPY = (
    "COPY chunks (document_id, position, content, content_hash, metadata, embedding)"
    " FROM STDIN (FORMAT BINARY)"
)
RAW_TYPES = ["int8", "int4", "text", "text", "jsonb", "vector"]


def log(message: str) -> None:
    print(f"[ingest] {message}", file=sys.stderr, flush=True)


class RefusingEmbedder:
    """The store's model by name; every vector is given, so embedding is a bug."""

    name = MODEL
    dimension = DIM

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError(f"embed_documents called for {len(texts)} texts: vectors are given")

    def embed_query(self, text: str) -> np.ndarray:
        raise AssertionError("embed_query called: vectors are given")


# --- the child processes ------------------------------------------------------------------------


def pgsearch_load(store: Store, dataset: str, start: int, stop: int, batch: int) -> float:
    """Upsert rows ``start..stop``; return the seconds spent in ``Store.upsert``."""
    seconds = 0.0
    for rows in batches(dataset, start, stop, batch):
        documents = [
            DocumentInput(i, content, title, metadata, vectors=[vector])
            for i, title, content, metadata, vector in rows
        ]
        begin = time.perf_counter()
        summary = store.upsert(documents)
        seconds += time.perf_counter() - begin
        if summary.inserted != len(rows) or summary.chunks != len(rows):
            raise SystemExit(f"upsert of {len(rows)} rows at {start}: {summary}")
    return seconds


def raw_load(
    conn: psycopg.Connection[Any], dataset: str, start: int, stop: int, batch: int
) -> float:
    """COPY rows ``start..stop`` in one transaction, one COPY per batch; return its seconds."""
    seconds = 0.0
    with conn.cursor() as cursor:
        for rows in batches(dataset, start, stop, batch):
            prepared = [
                (
                    start + k + 1,
                    0,
                    content,
                    hashlib.sha256(content.encode()).hexdigest(),
                    metadata,
                    v,
                )
                for k, (_, _, content, metadata, v) in enumerate(rows)
            ]
            start += len(rows)
            begin = time.perf_counter()
            with cursor.copy(RAW_COPY) as copy:
                copy.set_types(RAW_TYPES)
                for row in prepared:
                    copy.write_row(row)
            seconds += time.perf_counter() - begin
    begin = time.perf_counter()
    conn.commit()
    return seconds + time.perf_counter() - begin


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case against its fresh database; return its figures."""
    from pgvector.psycopg import register_vector

    case, dataset, n, batch = spec["case"], spec["dataset"], spec["rows"], spec["batch"]
    half = n // 2
    result: dict[str, Any] = {}
    if case.startswith("pgsearch"):
        build = IndexBuildSettings(spec.get("maintenance_work_mem", MAINTENANCE_WORK_MEM))
        store = Store(create_engine(spec["url"]), RefusingEmbedder())  # type: ignore[arg-type]
        with store:
            store.migrate(dim=DIM)
            result["rss_start"] = peak_rss_mib()
            if case == "pgsearch first":
                # What `pgsearch ingest` does for a first load: the indexes built after the
                # data. Timed whole: the upserts, the index builds and the ANALYZE after them.
                begin = time.perf_counter()
                with store.bulk_load(build) as deferred:
                    pgsearch_load(store, dataset, 0, n, batch)
                result["seconds"] = time.perf_counter() - begin
                result["deferred"] = deferred
                result["rows"] = n
            else:
                with store.bulk_load(build):  # the first half is a first load, untimed
                    result["first_half"] = pgsearch_load(store, dataset, 0, half, batch)
                result["rss_half"] = peak_rss_mib()
                result["seconds"] = pgsearch_load(store, dataset, half, n, batch)
                result["rows"] = n - half
            result["rss_peak"] = peak_rss_mib()
            begin = time.perf_counter()
            store.optimize()
            result["optimize"] = time.perf_counter() - begin
            with store.session() as session:
                stored = session.execute(text("SELECT count(*) FROM pgsearch.chunks")).scalar()
    else:
        with psycopg.connect(spec["url"].replace("+psycopg", "")) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.commit()
            register_vector(conn)
            conn.execute(RAW_TABLE)
            if case == "raw indexed":
                for statement in RAW_INDEXES.values():
                    conn.execute(statement)
            conn.commit()
            result["rss_start"] = peak_rss_mib()
            if case == "raw indexed":
                result["first_half"] = raw_load(conn, dataset, 0, half, batch)
                result["seconds"] = raw_load(conn, dataset, half, n, batch)
                result["rows"] = n - half
            else:
                result["seconds"] = raw_load(conn, dataset, 0, n, batch)
                result["rows"] = n
                memory = spec.get("maintenance_work_mem", MAINTENANCE_WORK_MEM)
                conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(memory)))
                result["index"] = {}
                for name, statement in RAW_INDEXES.items():
                    begin = time.perf_counter()
                    conn.execute(statement)
                    conn.commit()
                    result["index"][name] = time.perf_counter() - begin
                begin = time.perf_counter()
                for statement in RAW_POSTINGS:
                    conn.execute(statement)
                conn.commit()
                result["postings"] = time.perf_counter() - begin
            result["rss_peak"] = peak_rss_mib()
            stored = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[index]
    result["total_rows"] = stored
    if stored != n:
        raise SystemExit(f"{case}: the table holds {stored} rows, expected {n}")
    return result


# --- the parent ---------------------------------------------------------------------------------


def run_case(admin: psycopg.Connection[Any], base: URL, spec: dict[str, Any], job: Path) -> Any:
    """Run ``spec`` in a fresh database by a child process; drop the database afterwards."""
    name = f"ingest_{spec['dataset']}_{spec['case'].replace(' ', '_')}"
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.execute("CHECKPOINT")  # no dirty pages of an earlier case written on this one's time
    url = base.set(database=name).render_as_string(hide_password=False)
    job.write_text(json.dumps({**spec, "url": url}))
    log(f"{spec['dataset']}: {spec['case']} ({spec['rows']} rows) ...")
    try:
        if spec["case"] == "langchain":
            command = [
                str(spec["python"]),
                str(Path(__file__).with_name("langchain_ingest_peer.py")),
            ]
        else:
            command = [sys.executable, __file__, "--worker"]
        done = subprocess.run([*command, str(job)], stdout=subprocess.PIPE, text=True)
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    if done.returncode != 0:
        log(f"{spec['case']} failed (exit {done.returncode}); see the output above")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = result["seconds"]
    log(f"  {result['rows']} rows in {seconds:.1f} s: {result['rows'] / seconds:,.0f} rows/s")
    return result


def langchain_python(data_dir: Path) -> Path | None:
    """The python of --data-dir/lc-venv with langchain-postgres 0.0.19 (made once), or None."""
    python = data_dir / "lc-venv" / "bin" / "python"
    check = [python, "-c", "import langchain_postgres"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(python.parents[1])], check=False)
    pip = [str(python), "-m", "pip", "install", "-q", LC_PIN, "psycopg[binary]", "numpy"]
    log("installing: " + " ".join(pip[3:]))
    if python.exists() and subprocess.run(pip, stdout=sys.stderr).returncode == 0:
        return python
    return None


def git_state() -> str:
    """The commit this ran at, and whether pgsearch/ or benchmarks/ differed from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "pgsearch", "benchmarks"],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    except OSError:
        head = ""
    if not head:
        return "commit unknown (not a git checkout)"
    return f"commit {head}" + (
        f", {len(changed)} files under pgsearch/ or benchmarks/ differ" if changed else ""
    )


def loads(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{a:.2f}" for a in averages)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def rate(result: dict[str, Any] | None) -> float | None:
    return None if result is None else result["rows"] / result["seconds"]


def ratio(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def raw_overall(got: dict[str, Any], postings: bool = False) -> dict[str, Any] | None:
    """Raw COPY then index, as one figure: COPY plus every index build (with ``postings``,
    plus the BM25 postings table and its B-tree: closer to what pgsearch builds)."""
    then_index = got.get("raw then index")
    if then_index is None:
        return None
    build = sum(then_index["index"].values()) + (then_index["postings"] if postings else 0.0)
    return {"rows": then_index["rows"], "seconds": then_index["seconds"] + build}


def table_rows(dataset: str, got: dict[str, Any], python: Path | None) -> list[list[str]]:
    first, incremental = got.get("pgsearch first"), got.get("pgsearch incremental")
    indexed, then_index = got.get("raw indexed"), got.get("raw then index")
    lc, overall = got.get("langchain"), raw_overall(got)
    rows: list[list[str]] = []

    def line(
        case: str,
        result: dict[str, Any] | None,
        raw: dict[str, Any] | None = None,
        peer: bool = False,
        memory: dict[str, Any] | None = None,
    ) -> None:
        if result is None:
            rows.append([dataset, case, "-", "-", "failed", "-", "-", "-"])
            return
        mine = rate(result)
        rss = "" if memory is None else f"{memory['rss_start']:.0f} -> {memory['rss_peak']:.0f}"
        against_raw = ratio(mine, rate(raw)) if raw is not None else ""
        against_lc = ratio(mine, rate(lc)) if peer else ""
        figures = [f"{result['rows']:,}", f"{result['seconds']:.1f}", f"{mine:,.0f}"]
        rows.append([dataset, case, *figures, against_raw, against_lc, rss])

    # A case absent from ``got`` was not asked for (--cases); one that is None failed.
    if "pgsearch first" in got:
        line("pgsearch first load", first, overall, True, first)
        if "raw then index" in got:
            postings = raw_overall(got, postings=True)
            line("pgsearch first load vs raw + BM25 postings", first, postings)
    if "pgsearch incremental" in got:
        line("pgsearch incremental (2nd half)", incremental, indexed, True, incremental)
    if "raw indexed" in got:
        whole = None
        if indexed is not None:
            seconds = indexed["first_half"] + indexed["seconds"]
            whole = {"rows": indexed["total_rows"], "seconds": seconds}
        line("raw COPY with the same indexes (all)", whole, memory=indexed)
        line("raw COPY with the same indexes (2nd half)", indexed)
    if "raw then index" not in got:
        pass
    elif then_index is not None:
        line("raw COPY, no index", then_index, memory=then_index)
        builds = ", ".join(f"{k} {v:.1f} s" for k, v in then_index["index"].items())
        line(f"raw COPY then index ({builds})", overall)
        bm25 = f"raw COPY then index + BM25 postings ({then_index['postings']:.1f} s)"
        line(bm25, raw_overall(got, postings=True))
    else:
        line("raw COPY then index", None)
    if python is not None:
        line(f"langchain-postgres {LC_PIN.split('==')[1]} add_embeddings", lc, memory=lc)
    return rows


def targets(dataset: str, got: dict[str, Any]) -> None:
    first, incremental = rate(got.get("pgsearch first")), rate(got.get("pgsearch incremental"))
    overall, indexed, lc = (
        rate(raw_overall(got)),
        rate(got.get("raw indexed")),
        rate(got.get("langchain")),
    )
    checks = [
        ("first load >= 0.85x raw COPY then index", first, overall, 0.85),
        (
            "first load >= 0.85x raw COPY then index + BM25 postings (closer baseline)",
            first,
            rate(raw_overall(got, postings=True)),
            0.85,
        ),
        ("incremental >= 0.85x raw COPY with the same indexes", incremental, indexed, 0.85),
        ("first load >= 4x langchain-postgres", first, lc, 4.0),
        ("incremental >= 4x langchain-postgres", incremental, lc, 4.0),
    ]
    for label, ours, theirs, target in checks:
        if ours is None and theirs is None:
            continue  # neither side was asked for
        if ours is None or not theirs:
            verdict = "not measured"
        else:
            verdict = f"{ours / theirs:.2f}x, {'met' if ours / theirs >= target else 'NOT met'}"
        print(f"* {dataset}: {label}: {verdict}")
    for case in ("pgsearch first", "pgsearch incremental"):
        if (r := got.get(case)) is not None:
            print(f"* {dataset}: {case}: then Store.optimize() {r['optimize']:.1f} s (not counted)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/pgsearch-ingest-bench"))
    parser.add_argument("--generated", type=int, default=100_000, help="generated chunks (N)")
    parser.add_argument("--debian-rows", type=int, help="load only the first rows (smoke tests)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-langchain", action="store_true")
    parser.add_argument(
        "--cases",
        help=f"comma-separated subset of: {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--datasets", default="debian,generated", help="comma-separated: debian, generated"
    )
    parser.add_argument(
        "--maintenance-work-mem",
        default=MAINTENANCE_WORK_MEM,
        help=f"for every index build after a load (default {MAINTENANCE_WORK_MEM}; an HNSW graph"
        " of 1,000,000 384-d rows needs about 2GB to build in memory)",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker.read_text()))))
        return

    command = " ".join(
        [".venv/bin/python", "benchmarks/ingest.py", *map(shlex.quote, sys.argv[1:])]
    )
    started, load_before = time.perf_counter(), os.getloadavg()
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    base = start_embedded(data_dir)  # holds the server until this process exits
    admin = psycopg.connect(
        base.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    )
    server = admin.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    pgvector = admin.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()[0]  # type: ignore[index]
    settings = dict(
        admin.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN"
            " ('shared_buffers', 'max_wal_size', 'synchronous_commit', 'fsync',"
            " 'max_parallel_maintenance_workers', 'maintenance_work_mem')"
        ).fetchall()
    )
    python = None if args.no_langchain else langchain_python(data_dir)
    lc_version = None
    if python is None and not args.no_langchain:
        log("langchain-postgres could not be installed: no LangChain comparison")

    cases = CASES if args.cases is None else [c.strip() for c in args.cases.split(",")]
    if unknown := set(cases) - set(CASES):
        parser.error(f"unknown cases {sorted(unknown)}: choose from {CASES}")
    sizes = {
        "debian": min(args.debian_rows or debian_size(), debian_size()),
        "generated": args.generated,
    }
    chosen = [d.strip() for d in args.datasets.split(",")]
    if unknown := set(chosen) - set(sizes):
        parser.error(f"unknown datasets {sorted(unknown)}: choose debian, generated")
    datasets = {name: sizes[name] for name in chosen}
    results: dict[str, dict[str, Any]] = {}
    job = data_dir / "case.json"
    for dataset, n in datasets.items():
        results[dataset] = {}
        for case in cases + (["langchain"] if python else []):
            spec = {"case": case, "dataset": dataset, "rows": n, "batch": args.batch}
            spec |= {"m": M, "ef_construction": EF_CONSTRUCTION, "python": str(python)}
            spec["maintenance_work_mem"] = args.maintenance_work_mem
            results[dataset][case] = run_case(admin, base, spec, job)
            if case == "langchain" and results[dataset][case]:
                lc_version = results[dataset][case]["version"]
    (data_dir / "results.json").write_text(json.dumps(results, indent=1))
    admin.close()
    elapsed = time.perf_counter() - started

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    shown = ", ".join(f"{k} {v}" for k, v in sorted(settings.items()))
    print(f"""
## Ingest throughput with your own vectors (one chunk per document)

* machine: {cpu_name()}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()};
  load average (1, 5, 15 min) {loads(load_before)} at the start, {loads(os.getloadavg())} at the end
* server: PostgreSQL {server} (embedded), pgvector {pgvector}; {shown}
* clients: Python {platform.python_version()}, psycopg {version("psycopg")}, SQLAlchemy \
{version("sqlalchemy")}, langchain-postgres {lc_version or "not run"}
* data: debian = {sizes["debian"]:,} Debian package descriptions with their all-MiniLM-L6-v2
  vectors; generated = N = {sizes["generated"]:,} random unit vectors (384-d) with texts of
  about 100 words (the issue asks for 1,000,000; this run's N is {sizes["generated"]:,});
  run here: {", ".join(datasets)}; cases {", ".join(cases)}
* command: {command} (this run: {elapsed / 60:.1f} min wall); {git_state()}
* batches of {args.batch:,} rows; seconds = time in the write calls only (upsert; COPY + commit;
  add_embeddings; CREATE INDEX), not reading or generating the data. Indexes everywhere: HNSW
  (cosine, m {M}, ef_construction {EF_CONSTRUCTION}), GIN tsv, GIN jsonb_path_ops metadata;
  pgsearch also writes its documents table (B-tree on external_id, GIN on metadata).
* incremental: into a store (table) already holding the first half; rows = the second half.
* vs raw: first load / raw COPY then index (overall), and / the same plus BM25 postings
  (pgsearch's store holds them: a closer baseline); incremental / raw COPY with the same
  indexes, second half. vs LangChain: pgsearch / add_embeddings into an HNSW-indexed collection.
* peak RSS: ru_maxrss of the loading process (a child of its own per case), before the first
  batch -> after the last.
""")
    header = ["dataset", "case", "rows", "seconds", "rows/s", "vs raw", "vs LangChain"]
    header.append("peak RSS MiB")
    rows = [row for dataset, got in results.items() for row in table_rows(dataset, got, python)]
    table(header, rows)
    print("\nTargets (reported, not asserted):")
    for dataset, got in results.items():
        targets(dataset, got)
    peaks = {
        d: got["pgsearch first"]["rss_peak"]
        for d, got in results.items()
        if got.get("pgsearch first")
    }
    if len(peaks) == 2:
        flat = max(peaks.values()) <= 1.2 * min(peaks.values())
        shown = ", ".join(f"{d} {peaks[d]:.0f} MiB for {datasets[d]:,} rows" for d in peaks)
        print(f"* peak RSS of the pgsearch first load: {shown}: flat within 20 %: {flat}")


if __name__ == "__main__":
    main()
