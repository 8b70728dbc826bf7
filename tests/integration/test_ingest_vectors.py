"""`pgsearch ingest --embeddings DIR` and BEIR dataset directories, on a real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import URL, create_engine

from pgsearch import HashingEmbedder, Store
from pgsearch.cli import main

DIM = 64


def _dataset(root: Path, count: int = 5) -> tuple[Path, np.ndarray]:
    root.mkdir(parents=True)
    docs = [
        {"_id": f"d{i}", "title": f"Title {i}", "text": f"text of document {i}"}
        for i in range(count)
    ]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a query"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    folder = root / "embeddings"
    folder.mkdir()
    np.save(folder / "corpus.npy", vectors)
    (folder / "corpus_ids.json").write_text(json.dumps([d["_id"] for d in docs]))
    return folder, vectors


@pytest.fixture
def cli(make_database: Callable[[], URL]) -> Callable[..., int]:
    database = make_database()
    url = database.set(drivername="postgresql").render_as_string(hide_password=False)
    base = ["--database-url", url, "--embedder", f"hashing:{DIM}"]
    assert main([*base, "migrate"]) == 0

    def run(*args: str) -> int:
        return main([*base, *args])

    run.url = database  # type: ignore[attr-defined]
    return run


def test_a_beir_directory_ingests_its_corpus_with_its_vectors(
    cli: Callable[..., int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, vectors = _dataset(tmp_path / "beir")
    capsys.readouterr()
    assert cli("ingest", str(tmp_path / "beir"), "--embeddings", str(folder), "--no-progress") == 0
    assert "ingested 5 documents" in capsys.readouterr().out
    assert cli("status", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["chunks"]) == (5, 5)  # no query became a document
    with Store(create_engine(cli.url), HashingEmbedder(DIM)) as store:  # type: ignore[attr-defined]
        for i in (1, 3):
            best = store.search(query_vector=vectors[i], k=1, exact=True)[0]
            assert best.external_id == f"d{i}" and best.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda f: (f / "corpus_ids.json").write_text('["d0", "d1"]'), "5 rows for 2 ids"),
        (
            lambda f: (f / "corpus_ids.json").write_text('["d0","d1","d2","d3","zz"]'),
            "no vector for document 'd4'",
        ),
        (lambda f: np.save(f / "corpus.npy", np.zeros((5, DIM), dtype=np.int32)), "2-D float"),
        (lambda f: np.save(f / "corpus.npy", np.zeros(5, dtype=np.float32)), "2-D float"),
        (lambda f: (f / "corpus.npy").unlink(), "needs corpus.npy"),
        (lambda f: np.save(f / "corpus.npy", np.ones((5, 8), dtype=np.float32)), "8 dimensions"),
    ],
    ids=["count", "missing-id", "dtype", "shape", "no-matrix", "dimension"],
)
def test_bad_vector_folders_write_nothing(
    cli: Callable[..., int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], object],
    message: str,
) -> None:
    folder, _ = _dataset(tmp_path / "beir")
    damage(folder)
    capsys.readouterr()
    corpus = str(tmp_path / "beir" / "corpus.jsonl")
    assert cli("ingest", corpus, "--embeddings", str(folder), "--no-progress") == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert cli("status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 0
