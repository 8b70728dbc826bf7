import json
import os
from pathlib import Path

import pytest

from pgsearch.exceptions import SourceError
from pgsearch.samples import SAMPLE_CORPUS
from pgsearch.sources import iter_documents


def test_directory_of_text_and_markdown(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("plain text")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("intro\n# The Title\nbody")
    (tmp_path / "ignored.csv").write_text("x,y")
    docs = list(iter_documents([tmp_path]))
    assert [d.external_id for d in docs] == [
        str((tmp_path / "a.txt").resolve()),
        str((tmp_path / "sub" / "b.md").resolve()),
    ]
    assert docs[1].title == "The Title"
    assert docs[0].title == "a"


def test_jsonl_accepts_beir_ids(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    lines = [
        {"_id": 7, "title": "T", "text": "body"},
        {"id": "x", "text": "more", "metadata": {"k": 1}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    docs = list(iter_documents([path]))
    assert [(d.external_id, d.title, d.metadata) for d in docs] == [
        ("7", "T", {}),
        ("x", None, {"k": 1}),
    ]


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "JSON object"),
        ('{"text": "no id"}', '"id"'),
        ('{"id": "a"}', '"text"'),
        ('{"id": "a", "text": "t", "metadata": [1]}', '"metadata"'),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(SourceError, match=rf"bad.jsonl:2: .*{message}"):
        list(iter_documents([path]))


def test_missing_unsupported_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(iter_documents([tmp_path / "nope.txt"]))
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(SourceError, match="unsupported file type"):
        list(iter_documents([tmp_path / "x.pdf"]))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SourceError, match="not UTF-8"):
        list(iter_documents([tmp_path / "latin1.txt"]))


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    if os.geteuid() == 0:
        # root reads any file whatever its mode; /proc/self/mem refuses a plain read (EIO).
        path.symlink_to("/proc/self/mem")
    else:
        path.write_text("hidden")
        path.chmod(0)
    with pytest.raises(SourceError, match="cannot read"):
        list(iter_documents([path]))


def test_sample_corpus_is_valid() -> None:
    docs = list(iter_documents([SAMPLE_CORPUS]))
    assert len(docs) >= 30
    assert len({d.external_id for d in docs}) == len(docs)
    assert len({d.metadata["topic"] for d in docs}) >= 10
