"""`pgsearch search --probes, --max-probes, --binary-oversample` on an IVFFlat bit index."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL

from pgsearch import SearchRequest, Store
from pgsearch.cli import main

LISTS = 4


def test_ivfflat_and_binary_knobs_reach_the_search(
    make_database: Callable[[], URL],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = make_database().set(drivername="postgresql").render_as_string(hide_password=False)
    base = ["--database-url", url, "--embedder", "hashing:32"]
    corpus = tmp_path / "c.jsonl"
    words = ["honey", "bees", "wax", "hive", "pollen", "queen", "drone", "comb"]
    corpus.write_text(
        "".join(
            json.dumps({"_id": str(i), "text": f"{words[i % 8]} {words[i * 3 % 8]} note {i}"})
            + "\n"
            for i in range(40)
        )
    )
    assert main([*base, "migrate"]) == 0
    assert main([*base, "ingest", str(corpus), "--no-progress"]) == 0
    rebuild = [
        "index",
        "rebuild",
        "--method",
        "ivfflat",
        "--storage",
        "bit",
        "--old-index-grace",
        "0",
    ]
    assert main([*base, *rebuild, "--lists", str(LISTS), "--apply"]) == 0
    capsys.readouterr()

    requests: list[SearchRequest] = []
    run = Store.run

    def spy(self: Store, request: SearchRequest, *args: Any, **kwargs: Any) -> Any:
        requests.append(request)
        return run(self, request, *args, **kwargs)

    monkeypatch.setattr(Store, "run", spy)
    knobs = ["--probes", "2", "--max-probes", "3", "--binary-oversample", "5"]
    assert (
        main([*base, "search", "honey bees", "--mode", "vector", "-k", "3", *knobs, "--json"]) == 0
    )
    assert len(json.loads(capsys.readouterr().out)) == 3
    [request] = requests
    assert (request.probes, request.max_probes, request.binary_oversample) == (2, 3, 5)

    for flags, message in (
        (["--probes", "0"], "probes=0 is out of pgvector's range: use 1 to 32768"),
        # The store's index has 4 lists: the option reached the IVFFlat settings.
        (["--probes", "5"], f"probes=5 is more than the IVFFlat index's {LISTS} lists"),
        (["--max-probes", "40000"], "max_probes=40000 is out of pgvector's range"),
        (["--binary-oversample", "0"], "binary_oversample=0 is out of range: use 1 to 100"),
    ):
        assert main([*base, "search", "honey", "--mode", "vector", *flags]) == 1, flags
        assert message in capsys.readouterr().err, flags
