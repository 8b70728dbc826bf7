"""``pgsearch eval``: retrieval quality and latency of each search mode on a BEIR dataset.

A BEIR dataset directory holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
The corpus goes into a database of its own on the same server (``pgsearch_eval_<hash>``, the
hash of the corpus file, the model and the vectors), reused while they are unchanged. Each
document is stored with its ``title`` and ``text``; vectors given with ``--embeddings`` were
computed from; pgsearch searches the title with the text (weighted in text mode). Every
judged query is
searched in every mode as a user would, for its top ``k`` documents (``group_by="document"``):
nDCG@k, MRR@k and the latency come from that search; recall@100 from a second one for 100.
The metrics come from ``pytrec_eval`` (trec_eval's own code).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy import URL, Engine, text

from pgsearch.chunking import ChunkingOptions
from pgsearch.database import autocommit_connection, create_engine
from pgsearch.exceptions import ConfigurationError, SourceError
from pgsearch.ingest import DocumentInput
from pgsearch.types import SearchMode

__all__ = ["EvalResult", "ModeScores", "evaluate", "read_qrels", "read_queries"]

RECALL_DEPTH = 100
_BATCH = 500


@dataclass(frozen=True)
class ModeScores:
    """One mode's figures, averaged over the judged queries."""

    mode: str
    ndcg: float
    recall: float
    mrr: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class EvalResult:
    """What ``pgsearch eval`` prints."""

    dataset: str
    split: str
    queries: int
    documents: int
    k: int
    reused_store: bool
    unknown_judged: int
    modes: list[ModeScores]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**vars(self), "modes": [vars(m) for m in self.modes]}


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError as exc:
                        raise SourceError(f"{path}:{number}: not JSON ({exc})") from None
                    if not isinstance(record, dict) or "_id" not in record:
                        raise SourceError(f'{path}:{number}: expected an object with "_id"')
                    yield record
    except FileNotFoundError:
        raise SourceError(f"{path} does not exist: is this a BEIR dataset directory?") from None
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 ({exc.reason})") from None


def read_queries(dataset: Path) -> dict[str, str]:
    """Query id -> text, from ``queries.jsonl``."""
    return {str(q["_id"]): str(q.get("text", "")) for q in _jsonl(dataset / "queries.jsonl")}


def read_qrels(dataset: Path, split: str) -> dict[str, dict[str, int]]:
    """Query id -> {document id: relevance}, from ``qrels/<split>.tsv`` (header line first)."""
    path = dataset / "qrels" / f"{split}.tsv"
    if not path.is_file():
        have = sorted(p.stem for p in (dataset / "qrels").glob("*.tsv"))
        raise SourceError(
            f"{path} does not exist: this dataset has judgements for "
            f"{', '.join(have) or 'no split'}; pick one with --split"
        )
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.strip().split("\t")
        if number == 1 and not fields[-1].lstrip("-").isdigit():
            continue  # the header
        if len(fields) != 3 or not fields[2].lstrip("-").isdigit():
            raise SourceError(f"{path}:{number}: expected query-id, corpus-id, score")
        qrels.setdefault(fields[0], {})[fields[1]] = int(fields[2])
    return qrels


def _corpus(dataset: Path) -> Iterator[DocumentInput]:
    for record in _jsonl(dataset / "corpus.jsonl"):
        title = str(record.get("title") or "").strip() or None
        text = str(record.get("text") or "").strip()
        # pgsearch searches (and embeds) the title with the text; a document of only a title
        # is stored as its text.
        yield DocumentInput(str(record["_id"]), text or title or "", None if not text else title)


def _fingerprint(dataset: Path, model: str, embeddings: Path | None) -> str:
    digest = hashlib.sha256(model.encode())
    for path in [dataset / "corpus.jsonl"] + (
        sorted(p for p in embeddings.iterdir() if p.name.startswith("corpus")) if embeddings else []
    ):
        with path.open("rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _database(server: Engine, name: str) -> tuple[URL, bool]:
    """The eval database's URL, created if missing; whether it existed."""
    with autocommit_connection(server) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone():
            return server.url.set(database=name), True
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigurationError(
                f"pgsearch eval needs a database of its own ({name}) and this role may not "
                "create one: grant it CREATEDB, or use the embedded server"
            ) from None
    return server.url.set(database=name), False


def _query_vectors(embeddings: Path | None) -> dict[str, np.ndarray[Any, Any]]:
    if embeddings is None or not (embeddings / "queries.npy").is_file():
        return {}
    ids = json.loads((embeddings / "query_ids.json").read_text())
    matrix = np.load(embeddings / "queries.npy")
    if matrix.ndim != 2 or len(ids) != len(matrix):
        raise SourceError(f"{embeddings}: queries.npy rows do not match query_ids.json")
    return {str(i): row for i, row in zip(ids, matrix, strict=True)}


def evaluate(
    server: Engine,
    embedder: Any,
    dataset: Path,
    *,
    split: str = "train",
    modes: Sequence[str] = ("vector", "text", "bm25", "hybrid"),
    embeddings: Path | None = None,
    k: int = 10,
) -> EvalResult:
    """Ingest ``dataset`` into its own store (or reuse it) and score each mode on ``split``.

    Raises:
        SourceError: A missing or malformed file, a split without judgements.
        InvalidSearchError: An unknown mode.
    """
    import pytrec_eval

    from pgsearch.store import Store
    from pgsearch.vector_files import VectorFolder, with_vectors

    if not dataset.is_dir():
        raise SourceError(
            f"{dataset} is not a directory: give a BEIR dataset directory "
            "(corpus.jsonl, queries.jsonl, qrels/<split>.tsv)"
        )
    parsed = [SearchMode.parse(mode) for mode in modes]
    qrels = read_qrels(dataset, split)
    texts = read_queries(dataset)
    missing = sorted(set(qrels) - set(texts))
    if missing:
        raise SourceError(f"qrels/{split}.tsv judges queries not in queries.jsonl: {missing[:5]}")
    folder = VectorFolder(embeddings) if embeddings else None
    name = "pgsearch_eval_" + _fingerprint(dataset, embedder.name, embeddings)
    url, reused = _database(server, name)
    engine = create_engine(url)
    store = Store(engine, embedder, chunking=ChunkingOptions(max_chars=1_000_000, overlap=0))
    try:
        store.migrate(dim=embedder.dimension)
        stored = store.status().documents
        if not reused or stored == 0:
            documents = _corpus(dataset)
            source = iter(with_vectors(documents, folder) if folder else documents)
            with store.bulk_load():
                while batch := list(islice(source, _BATCH)):
                    store.upsert(batch)
            stored = store.status().documents
        with store.session() as session:
            known = {
                row[0]
                for row in session.execute(
                    text(
                        "SELECT external_id FROM pgsearch.documents WHERE external_id = ANY(:ids)"
                    ),
                    {"ids": sorted({d for judged in qrels.values() for d in judged})},
                )
            }
        unknown = sum(d not in known for judged in qrels.values() for d in judged)
        vectors = _query_vectors(embeddings)
        depth = max(k, RECALL_DEPTH)
        scored = []
        for mode in parsed:
            run: dict[str, dict[str, float]] = {}
            top: dict[str, dict[str, float]] = {}
            times = []
            for query_id in qrels:
                uses_vectors = mode in (SearchMode.VECTOR, SearchMode.HYBRID)
                vector = vectors.get(query_id) if uses_vectors else None
                for size, ranking in ((k, top), (depth, run)):
                    began = time.perf_counter()
                    hits = store.search(
                        texts[query_id], size, mode, group_by="document", query_vector=vector
                    )
                    if size == k:
                        times.append((time.perf_counter() - began) * 1000)
                    # trec_eval ranks by score: give it the order pgsearch returned.
                    ranking[query_id] = {h.external_id: float(size - i) for i, h in enumerate(hits)}
            at_k = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", "recip_rank"})
            deep = pytrec_eval.RelevanceEvaluator(qrels, {f"recall.{RECALL_DEPTH}"})
            head, full = at_k.evaluate(top), deep.evaluate(run)

            def mean(table: dict[str, dict[str, float]], measure: str) -> float:
                return statistics.fmean(table.get(q, {}).get(measure, 0.0) for q in qrels)

            scored.append(
                ModeScores(
                    mode=mode.value,
                    ndcg=mean(head, f"ndcg_cut_{k}"),
                    recall=mean(full, f"recall_{RECALL_DEPTH}"),
                    mrr=mean(head, "recip_rank"),
                    p50_ms=statistics.median(times),
                    p95_ms=float(np.percentile(times, 95)),
                )
            )
    finally:
        store.close()
    return EvalResult(
        dataset=dataset.name,
        split=split,
        queries=len(qrels),
        documents=stored,
        k=k,
        reused_store=reused,
        unknown_judged=unknown,
        modes=scored,
    )
