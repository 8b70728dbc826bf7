"""The command line: in-process on the test server, and as a user runs it on the embedded one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import URL

from pgsearch.cli import main


def _run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSEARCH_")}
    env.update(PGSEARCH_DATA_DIR=str(data_dir), PGSEARCH_EMBEDDER="hashing:64")
    return subprocess.run(
        [sys.executable, "-m", "pgsearch.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_embedded_store_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bees.md").write_text("# Bees\n\nHoneybees pollinate crops and make honey.\n")
    (docs / "db.txt").write_text("PostgreSQL keeps old row versions until VACUUM.\n")

    migrated = _run("migrate", data_dir=data_dir)
    assert migrated.returncode == 0, migrated.stderr
    assert "hashing-64, 64 dims, cosine" in migrated.stdout
    ingested = _run("ingest", str(docs), "--no-progress", data_dir=data_dir)
    assert ingested.returncode == 0, ingested.stderr
    assert "2 new" in ingested.stdout
    # Each command was its own process: the server stopped after each and starts again here.
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()

    searched = _run("search", "honey", "--mode", "text", "--json", data_dir=data_dir)
    assert searched.returncode == 0, searched.stderr
    results = json.loads(searched.stdout)
    assert [r["title"] for r in results] == ["Bees"]
    assert results[0]["external_id"] == str((docs / "bees.md").resolve())

    status = _run("status", "--json", data_dir=data_dir)
    report = json.loads(status.stdout)
    assert (report["documents"], report["chunks"], report["pgvector_version"]) == (2, 2, "0.8.6")
    assert report["server_version"].startswith("18")


def _url(make_database: Callable[[], URL]) -> str:
    return make_database().set(drivername="postgresql").render_as_string(hide_password=False)


def test_cli_round_trip_and_errors(
    make_database: Callable[[], URL], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(make_database)
    base = ["--database-url", url, "--embedder", "hashing:32"]

    assert main([*base, "search", "anything", "--mode", "text"]) == 1
    assert "pgsearch migrate" in capsys.readouterr().err

    assert main([*base, "migrate"]) == 0
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        '{"_id": "1", "title": "Bees", "text": "Honeybees make honey."}\n'
        '{"_id": "2", "title": "Empty", "text": "   "}\n'
    )
    assert main([*base, "ingest", str(corpus), "--no-progress"]) == 1
    assert "document '2' has no text" in capsys.readouterr().err
    assert main([*base, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 0  # nothing was written

    corpus.write_text('{"_id": "1", "title": "Bees", "text": "Honeybees make honey."}\n')
    assert main([*base, "ingest", str(corpus), "--no-progress"]) == 0
    capsys.readouterr()
    for mode in ("vector", "text", "hybrid"):
        assert main([*base, "search", "honey", "--mode", mode, "-k", "3"]) == 0
        assert "Bees  [1#0]" in capsys.readouterr().out

    for extra in (
        ["--mode", "bm25", "--k1", "0.9", "--b", "0.4"],
        ["--fusion", "rrf", "--rrf-k", "10"],
        ["--alpha", "0.2", "--title-weight", "3", "--variant", "honey bees"],
        ["--diversity", "0.5", "--text-match", "all"],
        ["--max-postings", "1"],
        ["--max-postings", "none"],
    ):
        assert main([*base, "search", "honey", "-k", "3", *extra]) == 0, extra
        assert "Bees  [1#0]" in capsys.readouterr().out
    assert main([*base, "search", "honey", "--alpha", "2"]) == 1
    assert "alpha must be a number from 0 to 1" in capsys.readouterr().err
    assert main([*base, "search", "honey", "--max-postings", "0"]) == 1
    assert "max_postings=0 is out of range" in capsys.readouterr().err
    assert main([*base, "search", "honey", "--mode", "fuzzy"]) == 1
    assert "unknown search mode 'fuzzy'" in capsys.readouterr().err
    assert main([*base, "ingest", str(tmp_path / "missing.txt")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["--database-url", url, "--embedder", "hashing:16", "search", "x"]) == 1
    assert "32-dimension vectors" in capsys.readouterr().err

    assert main([*base, "search", "honey", "--mode", "vector", "--ef-search", "0"]) == 1
    assert "ef_search=0 is out of pgvector's range" in capsys.readouterr().err
    assert (
        main([*base, "ingest", str(corpus), "--chunk-size", "100", "--chunk-overlap", "100"]) == 1
    )
    assert "chunk overlap 100 must be" in capsys.readouterr().err

    assert main([*base, "downgrade", "base"]) == 0
    assert main([*base, "status"]) == 0
    assert "run `pgsearch migrate`" in capsys.readouterr().out


def test_unreachable_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    assert main(["--database-url", "postgresql://nobody@127.0.0.1:1/none", "status"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect" in err and "--database-url" in err and "Traceback" not in err
