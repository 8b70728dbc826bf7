"""Sentence-transformers models on ONNX Runtime: the same vectors without importing torch.

A query costs a few milliseconds and the process a few hundred megabytes less than with torch,
and ``pgsearch search`` starts in about a second instead of ten: the embedding path needs only
``onnxruntime``, ``tokenizers`` (the model's own ``tokenizer.json``) and numpy.

The model's transformer is exported once with ``torch.onnx.export`` (this step imports torch,
sentence-transformers and ``onnx``) into the user's cache directory,
``<user cache>/pgsearch/onnx/<model>-<fingerprint of the model files>``. The export is checked
against sentence-transformers on a set of probe texts before it is kept, so a model whose
pipeline this module cannot reproduce is refused rather than silently embedded differently.

The pipeline is read from the model's own files (``modules.json``,
``sentence_bert_config.json``, the ``Pooling`` module's ``config.json``): tokenisation truncated
to the model's ``max_seq_length``, the transformer, the configured pooling over the attention
mask, then L2 normalisation. Supported modules are ``Transformer``, ``Pooling`` (``cls``,
``max``, ``mean``, ``mean_sqrt_len_tokens``) and ``Normalize``; anything else raises
:class:`OnnxUnavailableError` and the caller falls back to sentence-transformers on torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pgsearch.embedders.base import Vectors

__all__ = [
    "EXPORT_FORMAT",
    "OnnxSentenceEncoder",
    "OnnxUnavailableError",
    "SentencePipeline",
    "default_cache_root",
    "export_model",
    "export_path",
    "l2_normalize",
    "model_fingerprint",
    "pool",
    "read_pipeline",
]

logger = logging.getLogger(__name__)

# Part of every export's directory name: bump it when the exported graph or manifest changes,
# so older exports are ignored (and pruned by the next export) instead of misread.
EXPORT_FORMAT = 1
MANIFEST = "pgsearch-onnx.json"
MODEL_FILE = "model.onnx"
# Weights live beside the graph: onnxruntime memory-maps them instead of copying them out of
# the protobuf, which halves the resident memory and the session start-up time.
WEIGHTS_FILE = "model.onnx.data"
SUPPORTED_POOLING = ("cls", "max", "mean", "mean_sqrt_len_tokens")
# Order in which sentence-transformers concatenates the legacy ``pooling_mode_*`` flags.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Texts the export is checked on: truncation, unicode, padding in a batch, nearly empty input.
_PROBES = (
    "A kitten sleeps on the sofa.",
    "Honeybees pollinate crops; без них урожай меньше. 東京の蜂 🐝 naïve café",
    " ".join(["Long documents are truncated to the model's maximum sequence length."] * 60),
    "?!",
    "",
)
_PROBE_MIN_COSINE = 0.9999


class OnnxUnavailableError(Exception):
    """The ONNX path cannot serve this model; the message says why (callers fall back)."""


IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class SentencePipeline:
    """What a sentence-transformers model does around its transformer, read from its files.

    Attributes:
        transformer_dir: Directory of the transformer module (its weights and tokenizer).
        max_seq_length: Tokens kept per text, special tokens included.
        do_lower_case: Whether sentence-transformers lower-cases the text first.
        pooling: Pooling modes, concatenated in this order.
        word_dimension: Width of the transformer's token embeddings.
        normalize: Whether the model ends with a ``Normalize`` module.
    """

    transformer_dir: Path
    max_seq_length: int
    do_lower_case: bool
    pooling: tuple[str, ...]
    word_dimension: int
    normalize: bool

    @property
    def dimension(self) -> int:
        """Length of the sentence embedding."""
        return self.word_dimension * len(self.pooling)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OnnxUnavailableError(f"cannot read {path}: {exc}") from exc


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        modes: tuple[str, ...] = (mode,)
    elif isinstance(mode, list):
        modes = tuple(str(m) for m in mode)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key)) or ("mean",)
    unsupported = [m for m in modes if m not in SUPPORTED_POOLING]
    if unsupported:
        raise OnnxUnavailableError(f"pooling mode {', '.join(unsupported)} is not supported")
    return modes


def read_pipeline(model_dir: Path) -> SentencePipeline:
    """Read a sentence-transformers model's pipeline from its ``modules.json`` and configs.

    Raises:
        OnnxUnavailableError: The model uses a module or option this module cannot reproduce.
    """
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise OnnxUnavailableError(f"{model_dir} has no modules.json")
    st_config = _read_json(model_dir / "config_sentence_transformers.json") or {}
    if st_config.get("default_prompt_name"):
        raise OnnxUnavailableError("models with a default prompt are not supported")
    transformer_dir: Path | None = None
    pooling: tuple[str, ...] | None = None
    word_dimension = 0
    normalize = False
    for position, module in enumerate(sorted(modules, key=lambda m: int(m.get("idx", 0)))):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        directory = model_dir / str(module.get("path", ""))
        if kind == "Transformer" and position == 0:
            transformer_dir = directory
        elif kind == "Pooling" and position == 1:
            config = _read_json(directory / "config.json") or {}
            pooling = _pooling_modes(config)
            word_dimension = int(
                config.get("embedding_dimension") or config.get("word_embedding_dimension") or 0
            )
        elif kind == "Normalize" and position == len(modules) - 1:
            config = _read_json(directory / "config.json") or {}
            if config.get("module_input_name", "sentence_embedding") != "sentence_embedding":
                raise OnnxUnavailableError("Normalize on token embeddings is not supported")
            normalize = True
        else:
            raise OnnxUnavailableError(f"module {module.get('type')!r} is not supported")
    if transformer_dir is None or pooling is None or word_dimension <= 0:
        raise OnnxUnavailableError("expected a Transformer module followed by a Pooling module")
    if not (transformer_dir / "tokenizer.json").is_file():
        raise OnnxUnavailableError(f"{transformer_dir} has no tokenizer.json")
    bert_config = _read_json(transformer_dir / "sentence_bert_config.json") or {}
    max_seq_length = bert_config.get("max_seq_length")
    if not max_seq_length:
        # sentence-transformers' rule: the tokenizer's limit, capped by the position embeddings.
        limits = [
            (_read_json(transformer_dir / "tokenizer_config.json") or {}).get("model_max_length"),
            (_read_json(transformer_dir / "config.json") or {}).get("max_position_embeddings"),
        ]
        known = [int(limit) for limit in limits if isinstance(limit, int | float) and limit > 0]
        if not known:
            raise OnnxUnavailableError("the model does not say its maximum sequence length")
        max_seq_length = min(known)
    return SentencePipeline(
        transformer_dir=transformer_dir,
        max_seq_length=int(max_seq_length),
        do_lower_case=bool(bert_config.get("do_lower_case", False)),
        pooling=pooling,
        word_dimension=word_dimension,
        normalize=normalize,
    )


def pool(
    token_embeddings: NDArray[np.float32], attention_mask: IntArray, modes: Sequence[str]
) -> Vectors:
    """Pool ``(batch, tokens, width)`` embeddings over the attention mask, as sentence-transformers.

    Modes are concatenated in the order given; padding positions (mask 0) never contribute.
    """
    mask = attention_mask.astype(np.float32)[:, :, None]
    parts: list[Vectors] = []
    for mode in modes:
        if mode == "cls":
            first = attention_mask.argmax(axis=1)
            parts.append(token_embeddings[np.arange(len(first)), first])
        elif mode == "max":
            masked = np.where(mask > 0, token_embeddings, np.float32(-np.inf))
            parts.append(masked.max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (token_embeddings * mask).sum(axis=1)
            count = np.maximum(mask.sum(axis=1), np.float32(1e-9))
            parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        else:
            raise ValueError(f"unsupported pooling mode {mode!r}")
    pooled: Vectors = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
    return pooled


def l2_normalize(vectors: Vectors) -> Vectors:
    """Scale rows to unit length; an all-zero row stays zero (``torch.nn.functional.normalize``)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalized: Vectors = (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return normalized


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of a model directory's files: relative path, size and modification time.

    Stat data rather than content keeps it at a fraction of a millisecond per process; a model
    whose files are replaced or edited gets a new fingerprint, hence a new export.
    """
    digest = hashlib.sha256(f"pgsearch-onnx-{EXPORT_FORMAT}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue
        stat = path.stat()
        digest.update(f"\0{relative}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def default_cache_root() -> Path:
    """``<user cache>/pgsearch/onnx`` (``~/.cache/pgsearch/onnx`` on Linux)."""
    import platformdirs

    return platformdirs.user_cache_path("pgsearch") / "onnx"


def _safe_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_name.rsplit("/", 1)[-1]) or "model"


def export_path(model_dir: Path, model_name: str, cache_root: Path | None = None) -> Path:
    """Directory the export of ``model_dir`` lives in (whether or not it exists yet)."""
    root = cache_root if cache_root is not None else default_cache_root()
    return root / f"{_safe_name(model_name)}-{model_fingerprint(model_dir)}"


def _is_complete(directory: Path) -> bool:
    manifest = _read_json(directory / MANIFEST) if directory.is_dir() else None
    return (
        isinstance(manifest, dict)
        and manifest.get("format") == EXPORT_FORMAT
        and (directory / MODEL_FILE).is_file()
        and (directory / WEIGHTS_FILE).is_file()
    )


class OnnxSentenceEncoder:
    """Runs a sentence-transformers model exported to ONNX: tokenizers + onnxruntime + numpy.

    Use :meth:`open` to build one from a model directory (exporting it when needed).

    Args:
        onnx_file: The exported transformer.
        pipeline: The model's pipeline (see :func:`read_pipeline`).
        threads: Intra-op threads for onnxruntime (default: its own choice, one per core).
    """

    def __init__(
        self, onnx_file: Path, pipeline: SentencePipeline, *, threads: int | None = None
    ) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise OnnxUnavailableError(
                "onnxruntime and tokenizers are not installed (pip install 'pgsearch[onnx]')"
            ) from exc
        self.pipeline = pipeline
        self.onnx_file = onnx_file
        tokenizer_file = pipeline.transformer_dir / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise OnnxUnavailableError(f"tokenizers cannot read {tokenizer_file}: {exc}") from exc
        # tokenizer.json often carries its own (training) truncation and fixed-length padding:
        # replace both with sentence-transformers' behaviour.
        tokenizer.enable_truncation(max_length=pipeline.max_seq_length)
        pad_id, pad_token = self._pad_token(tokenizer, pipeline.transformer_dir)
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(
                str(onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OnnxUnavailableError(f"onnxruntime cannot load {onnx_file}: {exc}") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = set(self._inputs) - set(_MODEL_INPUTS)
        if unknown:
            raise OnnxUnavailableError(f"{onnx_file} has unexpected inputs {sorted(unknown)}")

    @staticmethod
    def _pad_token(tokenizer: Any, transformer_dir: Path) -> tuple[int, str]:
        padding = tokenizer.padding
        if padding:
            return int(padding["pad_id"]), str(padding["pad_token"])
        config = _read_json(transformer_dir / "tokenizer_config.json") or {}
        token = config.get("pad_token")
        if isinstance(token, dict):
            token = token.get("content")
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token)), token
        return 0, "[PAD]"

    @classmethod
    def open(
        cls,
        model_dir: Path,
        model_name: str,
        *,
        cache_root: Path | None = None,
        export: bool = True,
        threads: int | None = None,
    ) -> OnnxSentenceEncoder:
        """Open the export of ``model_dir``, exporting it first when it is missing.

        Args:
            model_dir: The sentence-transformers model directory.
            model_name: Its name, used in the export's directory name.
            cache_root: Where exports live (default :func:`default_cache_root`).
            export: Export when missing (imports torch); ``False`` raises instead.
            threads: Intra-op threads for onnxruntime.

        Raises:
            OnnxUnavailableError: The model cannot be served on ONNX Runtime; the message says why.
        """
        pipeline = read_pipeline(model_dir)
        target = export_path(model_dir, model_name, cache_root)
        if not _is_complete(target):
            if not export:
                raise OnnxUnavailableError(f"no ONNX export at {target}")
            export_model(model_dir, target)
        return cls(target / MODEL_FILE, pipeline, threads=threads)

    @property
    def dimension(self) -> int:
        """Length of the vectors :meth:`encode` returns."""
        return self.pipeline.dimension

    def _run(self, texts: Sequence[str]) -> Vectors:
        if self.pipeline.do_lower_case:
            texts = [text.lower() for text in texts]
        encodings = self._tokenizer.encode_batch(list(texts))
        features: dict[str, IntArray] = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        feed = {name: features[name] for name in self._inputs}
        token_embeddings = np.asarray(self._session.run(None, feed)[0], dtype=np.float32)
        vectors = pool(token_embeddings, features["attention_mask"], self.pipeline.pooling)
        # Normalize module or not, the torch path asks for normalize_embeddings=True.
        return l2_normalize(vectors)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Vectors:
        """Embed texts into unit vectors, ``batch_size`` at a time.

        Like sentence-transformers, texts are sorted by length first so each batch pads little.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:
            return self._run(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._run([texts[i] for i in chunk])
        return out


def export_model(model_dir: Path, target: Path) -> Path:
    """Export a sentence-transformers model's transformer to ``target/model.onnx``.

    Loads the model with sentence-transformers on torch (the only time this path imports them),
    traces the transformer with ``torch.onnx.export``, then checks the ONNX pipeline against
    sentence-transformers on a few probe texts. The export is written beside ``target`` and
    renamed into place, so concurrent exports and interrupted ones never leave a partial
    directory; older exports of the same model are removed.

    Raises:
        OnnxUnavailableError: A dependency is missing, the export failed or its vectors differ.
    """
    started = time.perf_counter()
    pipeline = read_pipeline(model_dir)
    try:
        import onnx
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise OnnxUnavailableError(
            f"exporting to ONNX needs torch, sentence-transformers and onnx ({exc})"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # The weights are on disk: never let huggingface_hub try the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = SentenceTransformer(str(model_dir), device="cpu")
        inputs = _trace_inputs(model)
        _export_transformer(torch, model, inputs, staging / MODEL_FILE)
        graph = onnx.load(str(staging / MODEL_FILE))
        onnx.save_model(
            graph,
            str(staging / MODEL_FILE),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=WEIGHTS_FILE,
        )
        del graph
        check = OnnxSentenceEncoder(staging / MODEL_FILE, pipeline, threads=1)
        expected = np.asarray(
            model.encode(
                list(_PROBES),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )
        cosine = float((check.encode(_PROBES) * expected).sum(axis=1).min())
        if cosine < _PROBE_MIN_COSINE:
            raise OnnxUnavailableError(
                f"the ONNX export differs from sentence-transformers (cosine {cosine:.6f})"
            )
        manifest = {
            "format": EXPORT_FORMAT,
            "source": str(model_dir),
            "inputs": list(inputs),
            "min_probe_cosine": cosine,
            "torch": torch.__version__,
            "export_seconds": round(time.perf_counter() - started, 2),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # an export of an older format, or one left half-deleted
        try:
            staging.rename(target)
        except OSError:
            if not _is_complete(target):
                raise
            # Another process finished the same export first; its copy is as good as ours.
    except OnnxUnavailableError:
        raise
    except Exception as exc:  # tracing can fail in many ways; all mean "use torch instead"
        raise OnnxUnavailableError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune_old_exports(target)
    logger.info(
        "exported %s to ONNX in %.1f s: %s", model_dir, time.perf_counter() - started, target
    )
    return target


def _trace_inputs(model: Any) -> dict[str, Any]:
    # Two texts of different lengths, so the traced graph takes the padded-batch path.
    texts = ["a short text", "a somewhat longer text that needs padding"]
    features = model.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    return {name: features[name] for name in _MODEL_INPUTS if name in features}


def _export_transformer(torch: Any, model: Any, inputs: dict[str, Any], path: Path) -> None:
    transformer = model[0].auto_model.eval()
    # Explicit attention math traces into a plain graph; SDPA's shape-dependent shortcuts
    # (e.g. dropping an all-ones mask) would be frozen into it by the tracer.
    setter = getattr(transformer, "set_attn_implementation", None)
    if callable(setter):
        setter("eager")
    names = list(inputs)

    class Wrapper(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *args: Any) -> Any:
            return self.transformer(**dict(zip(names, args, strict=True)))[0]

    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "token_embeddings"]}
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        torch.onnx.export(
            Wrapper(),
            tuple(inputs[name] for name in names),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
        )


def _prune_old_exports(target: Path) -> None:
    prefix = target.name.rsplit("-", 1)[0] + "-"
    for sibling in target.parent.iterdir():
        if (
            sibling != target
            and sibling.name.startswith(prefix)
            and sibling.name[len(prefix) :].isalnum()
            and (sibling / MANIFEST).is_file()
        ):
            shutil.rmtree(sibling, ignore_errors=True)
