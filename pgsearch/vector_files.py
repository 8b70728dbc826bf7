"""Precomputed vectors from a BEIR-style folder: ``corpus.npy`` rows with ``corpus_ids.json``.

``pgsearch ingest corpus.jsonl --embeddings DIR`` stores these vectors instead of running the
model: row ``i`` of the matrix is the vector of document ``corpus_ids.json[i]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pgsearch.exceptions import SourceError
from pgsearch.ingest import DocumentInput

__all__ = ["MATRIX_NAMES", "VectorFolder", "with_vectors"]

# corpus.npy as BEIR tools write it; corpus.f16.npy for float16 matrices.
MATRIX_NAMES = ("corpus.npy", "corpus.f16.npy")


class VectorFolder:
    """The vectors of a folder, looked up by document id; the matrix is memory-mapped.

    Raises:
        SourceError: A missing file, ids that are not a list of unique strings, a matrix that
            is not 2-D floating point, or a row count that differs from the ids.
    """

    def __init__(self, folder: str | Path) -> None:
        root = Path(folder)
        matrix_path = next((root / n for n in MATRIX_NAMES if (root / n).is_file()), None)
        ids_path = root / "corpus_ids.json"
        if matrix_path is None or not ids_path.is_file():
            raise SourceError(
                f"{root}: needs {' or '.join(MATRIX_NAMES)} and corpus_ids.json (row i of the "
                "matrix is the vector of id i)"
            )
        try:
            ids: Any = json.loads(ids_path.read_text(encoding="utf-8"))
            matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{root}: cannot read the vectors ({exc})") from exc
        if not isinstance(ids, list) or not all(isinstance(i, str | int) for i in ids):
            raise SourceError(f"{ids_path}: must be a JSON list of document ids")
        keys = [str(i) for i in ids]
        if len(set(keys)) != len(keys):
            raise SourceError(f"{ids_path}: an id appears twice")
        if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
            raise SourceError(
                f"{matrix_path}: must be a 2-D float matrix, got {matrix.dtype} of shape "
                f"{matrix.shape}"
            )
        if matrix.shape[0] != len(keys):
            raise SourceError(
                f"{matrix_path}: {matrix.shape[0]:,} rows for {len(keys):,} ids in "
                f"{ids_path.name}: they must match one to one"
            )
        self.path = root
        self.dimension = int(matrix.shape[1])
        self._matrix = matrix
        self._rows = {key: row for row, key in enumerate(keys)}

    def vector(self, external_id: str) -> Any:
        """The vector of ``external_id`` as float32.

        Raises:
            SourceError: The folder has no vector for it.
        """
        row = self._rows.get(external_id)
        if row is None:
            raise SourceError(
                f"{self.path}: no vector for document {external_id!r}: compute vectors for the "
                "whole corpus, or ingest without --embeddings"
            )
        return np.asarray(self._matrix[row], dtype=np.float32)


def with_vectors(
    documents: Iterable[DocumentInput], folder: VectorFolder
) -> Iterator[DocumentInput]:
    """The documents, each carrying its vector from ``folder`` (one chunk per document)."""
    for document in documents:
        yield replace(document, vectors=[folder.vector(document.external_id)])
