"""Defects of the write path found by hostile input (issue 12): each is refused, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL
from sqlalchemy.orm import Session

from pgsearch import (
    DocumentInput,
    DocumentRepository,
    EmbeddingMismatchError,
    HashingEmbedder,
    InvalidDocumentError,
    SearchRepository,
)
from pgsearch.cli import main
from pgsearch.embedders.base import Vectors
from tests.integration.helpers import row_counts


def test_an_over_long_id_stops_the_cli_ingest_before_any_write(
    make_database: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url: URL = make_database()
    base = ["--database-url", url.render_as_string(hide_password=False), "--embedder", "hashing:64"]
    assert main([*base, "migrate"]) == 0
    lines = [json.dumps({"id": f"doc-{i}", "text": f"document number {i}"}) for i in range(100)]
    lines.append(json.dumps({"id": "x" * 3000, "text": "a document with a very long id"}))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main([*base, "ingest", str(corpus), "--batch-size", "10", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "id is 3,000 bytes" in err and "Traceback" not in err
    assert main([*base, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 0


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "bad,message",
    [
        (DocumentInput("deep", "text", metadata=_nested(900)), "nested"),
        (DocumentInput("keys", "text", metadata={1: "a", "1": "b"}), "keys must be strings"),
        (DocumentInput("zw", "\u200b\u200b \u200b"), "has no text"),
        (DocumentInput("bom", "\ufeff\u2060"), "has no text"),
        (DocumentInput("x" * 3000, "text"), "bytes"),
    ],
    ids=["deep-metadata", "colliding-keys", "zero-width", "format-only", "long-id"],
)
def test_hostile_documents_write_nothing(
    session: Session, embedder: HashingEmbedder, bad: DocumentInput, message: str
) -> None:
    good = DocumentInput("good", "a good document")
    with pytest.raises(InvalidDocumentError, match=message):
        DocumentRepository(session, embedder).upsert([good, bad])
    assert row_counts(session) == (0, 0)


class ZeroEmbedder(HashingEmbedder):
    def embed_documents(self, texts: Any) -> Vectors:
        return np.zeros((len(texts), 64), dtype=np.float32)


def test_all_zero_vectors_are_refused_in_a_cosine_store(
    session: Session, embedder: HashingEmbedder
) -> None:
    with pytest.raises(EmbeddingMismatchError, match="all-zero"):
        DocumentRepository(session, ZeroEmbedder(64)).add([DocumentInput("a", "some text")])
    assert row_counts(session) == (0, 0)
    DocumentRepository(session, embedder).add([DocumentInput("a", "some text")])
    with pytest.raises(EmbeddingMismatchError, match="all-zero"):
        SearchRepository(session).search(query_vector=np.zeros(64))


def test_a_document_over_the_size_limit_writes_nothing(
    session: Session, embedder: HashingEmbedder
) -> None:
    repository = DocumentRepository(session, embedder, max_document_chars=100)
    with pytest.raises(InvalidDocumentError, match="more than the limit of 100"):
        repository.add([DocumentInput("ok", "short"), DocumentInput("big", "word " * 30)])
    assert row_counts(session) == (0, 0)
    DocumentRepository(session, embedder).add([DocumentInput("big", "word " * 30)])  # default
    assert row_counts(session) == (1, 1)


def test_the_cli_size_limit(make_database: Any, tmp_path: Path, capsys: Any) -> None:
    url: URL = make_database()
    base = ["--database-url", url.render_as_string(hide_password=False), "--embedder", "hashing:64"]
    assert main([*base, "migrate"]) == 0
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "big", "text": "word " * 30}) + "\n")
    capsys.readouterr()
    assert main([*base, "ingest", str(corpus), "--max-document-chars", "100", "--no-progress"]) == 1
    assert "more than the limit of 100" in capsys.readouterr().err


def test_a_large_call_is_consumed_in_batches_and_stays_whole(
    session: Session, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgsearch import repository

    produced = 0
    seen_at_first_write: list[int] = []
    write = repository.write_documents

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen_at_first_write.append(produced)
        return write(*args, **kwargs)

    def documents(count: int, bad_at: int | None = None) -> Any:
        nonlocal produced
        for i in range(count):
            produced += 1
            yield DocumentInput(f"doc-{i}", " " if i == bad_at else f"text number {i}")

    monkeypatch.setattr(repository, "write_documents", counting)
    n = repository.WRITE_BATCH * 2 + 10
    # A bad document in the last batch: the earlier batches, already written, are rolled back.
    with pytest.raises(InvalidDocumentError, match="has no text"):
        DocumentRepository(session, embedder).add(documents(n, bad_at=n - 1))
    assert seen_at_first_write[0] == repository.WRITE_BATCH  # never the whole input at once
    assert row_counts(session) == (0, 0)
    produced = 0
    summary = DocumentRepository(session, embedder).add(documents(n))
    assert (summary.inserted, row_counts(session)) == (n, (n, n))
