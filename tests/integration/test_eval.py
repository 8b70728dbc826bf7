"""``pgsearch eval`` on a tiny hand-made BEIR dataset whose answers are known."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import URL

from pgsearch import HashingEmbedder, SourceError, create_engine
from pgsearch.cli import main
from pgsearch.evaluation import evaluate


def _dataset(root: Path, qrels: str) -> Path:
    root.mkdir()
    corpus = [
        {"_id": "bees", "title": "Bees", "text": "Honeybees pollinate crops and make honey."},
        {"_id": "bread", "title": "Bread", "text": "Sourdough rises with wild yeast."},
        {"_id": "mars", "title": "Rovers", "text": "Robotic rovers drill rocks on Mars."},
        {"_id": "db", "title": "Postgres", "text": "MVCC keeps old row versions."},
    ]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    queries = [
        {"_id": "q1", "text": "which insects make honey"},
        {"_id": "q2", "text": "sourdough and mars rocks"},
    ]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + qrels)
    return root


def test_metrics_of_a_dataset_with_known_answers(
    make_database: Callable[[], URL], tmp_path: Path
) -> None:
    # q1: one relevant document, which BM25 ranks first (the only chunk with "honey").
    # q2: two relevant documents, "mars" and "db"; "db" shares no word with the query, so bm25
    # finds only "mars" (and "bread", not relevant, which it ranks by BM25).
    dataset = _dataset(tmp_path / "tiny", "q1\tbees\t1\r\nq2\tmars\t1\r\nq2\tdb\t1\r\n")
    server = create_engine(make_database())
    result = evaluate(server, HashingEmbedder(16), dataset, modes=["bm25"], k=10)
    assert (result.queries, result.documents, result.unknown_judged) == (2, 4, 0)
    assert not result.reused_store
    (bm25,) = result.modes
    # "sourdough", "mars" and "rocks" each occur in one document of four: equal idf; "mars" has
    # two matching terms (mars, rock), "bread" one, so mars ranks first.
    ideal_q2 = 1 + 1 / math.log2(3)
    assert bm25.ndcg == pytest.approx((1.0 + 1 / ideal_q2) / 2)
    assert bm25.mrr == pytest.approx(1.0)
    assert bm25.recall == pytest.approx((1.0 + 0.5) / 2)
    assert bm25.p50_ms > 0

    again = evaluate(server, HashingEmbedder(16), dataset, modes=["text", "vector"], k=10)
    assert again.reused_store and again.documents == 4
    assert [m.mode for m in again.modes] == ["text", "vector"]
    server.dispose()


def test_bad_datasets_are_refused_clearly(
    make_database: Callable[[], URL], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path / "tiny", "q1\tbees\t1\r\nq1\tnowhere\t1\r\n")
    server = create_engine(make_database())
    with pytest.raises(SourceError, match="judgements for train"):
        evaluate(server, HashingEmbedder(16), dataset, split="test")
    result = evaluate(server, HashingEmbedder(16), dataset, modes=["bm25"])
    assert result.unknown_judged == 1
    server.dispose()

    url = make_database().render_as_string(hide_password=False)
    base = ["--database-url", url, "--embedder", "hashing:16"]
    assert main([*base, "eval", str(dataset), "--modes", "bm25,text", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["mode"] for m in report["modes"]] == ["bm25", "text"]
    assert main([*base, "eval", str(tmp_path / "missing")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert main([*base, "eval", str(dataset), "--modes", "fuzzy"]) == 1
    assert "unknown search mode 'fuzzy'" in capsys.readouterr().err
