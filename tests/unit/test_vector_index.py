"""VectorIndex: pgvector's parameter ranges and storages, checked before any DDL is written."""

from __future__ import annotations

import pytest

from pgsearch.exceptions import InvalidIndexError
from pgsearch.types import Distance
from pgsearch.vector_index import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_M,
    VectorIndex,
    default_lists,
    describe_operator_class,
    operator_class,
)


def _sql(index: VectorIndex, dimensions: int = 384, **kwargs: object) -> str:
    return index.create_statement(dimensions, **kwargs).as_string()  # type: ignore[arg-type]


def test_hnsw_defaults_are_pgvectors() -> None:
    index = VectorIndex("ix_items_embedding", "items")
    assert (index.m, index.ef_construction) == (DEFAULT_M, DEFAULT_EF_CONSTRUCTION) == (16, 64)
    assert _sql(index) == (
        'CREATE INDEX "ix_items_embedding" ON "items" USING hnsw ("embedding" vector_cosine_ops)'
        " WITH (m = 16, ef_construction = 64)"
    )


def test_each_storage_indexes_its_expression() -> None:
    half = VectorIndex("ix_h", "chunks", schema="pgsearch", storage="halfvec", distance=Distance.L2)
    assert _sql(half, 3072, concurrently=True) == (
        'CREATE INDEX CONCURRENTLY "ix_h" ON "pgsearch"."chunks" USING hnsw'
        ' (("embedding"::halfvec(3072)) halfvec_l2_ops) WITH (m = 16, ef_construction = 64)'
    )
    bits = VectorIndex("ix_b", "chunks", storage="bit", method="ivfflat", lists=7, where="id > 0")
    assert _sql(bits) == (
        'CREATE INDEX "ix_b" ON "chunks" USING ivfflat'
        ' ((binary_quantize("embedding")::bit(384)) bit_hamming_ops) WITH (lists = 7)'
        " WHERE id > 0"
    )


@pytest.mark.parametrize(
    ("storage", "distance", "expected"),
    [
        ("vector", Distance.INNER_PRODUCT, "vector_ip_ops"),
        ("halfvec", Distance.COSINE, "halfvec_cosine_ops"),
        ("bit", Distance.L2, "bit_hamming_ops"),
    ],
)
def test_operator_classes(storage: str, distance: Distance, expected: str) -> None:
    assert operator_class(storage, distance) == expected  # type: ignore[arg-type]


def test_ivfflat_lists_follow_pgvectors_guidance() -> None:
    assert [default_lists(n) for n in (0, 999, 62_663, 1_000_000)] == [1, 1, 62, 1000]
    assert default_lists(4_000_000) == 2000  # sqrt(rows) past a million
    assert default_lists(10**12) == 32_768  # pgvector's limit
    index = VectorIndex("ix_i", "items", method="ivfflat")
    assert "WITH (lists = 62)" in _sql(index, lists=default_lists(62_663))
    with pytest.raises(InvalidIndexError, match="needs lists"):
        _sql(index)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"m": 1}, r"m=1 is out of pgvector's range 2\.\.100"),
        ({"m": 101}, "out of pgvector's range"),
        ({"m": 32, "ef_construction": 40}, r"at least 2 \* m \(64\)"),
        ({"ef_construction": 1001}, "ef_construction=1001"),
        ({"method": "ivfflat", "lists": 0}, r"lists=0 is out of pgvector's range 1\.\.32768"),
        ({"method": "ivfflat", "lists": 32_769}, "lists=32769"),
        ({"method": "ivfflat", "m": 16}, "HNSW parameters"),
        ({"lists": 10}, "IVFFlat parameter"),
        ({"method": "diskann"}, "no index method 'diskann'"),
        ({"storage": "sparsevec"}, "unknown index storage"),
        ({"distance": "hamming"}, "unknown distance"),
        ({"m": True}, "out of pgvector's range"),
        ({"where": " "}, "non-empty SQL predicate"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidIndexError, match=message):
        VectorIndex("ix_x", "items", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "1abc", "a;drop table x", 'x"y', "a" * 64])
def test_names_must_be_plain_identifiers(name: str) -> None:
    with pytest.raises(InvalidIndexError, match="not a plain SQL name"):
        VectorIndex(name, "items")
    with pytest.raises(InvalidIndexError, match="not a plain SQL name"):
        VectorIndex("ix_ok", name)


def test_dimensions_limit_each_storage() -> None:
    VectorIndex("ix", "t").check_dimensions(2000)
    with pytest.raises(InvalidIndexError, match=r"at most 2,000 dimensions.*use storage=halfvec"):
        VectorIndex("ix", "t").check_dimensions(3072)
    VectorIndex("ix", "t", storage="halfvec").check_dimensions(4000)
    with pytest.raises(InvalidIndexError, match="use storage=bit"):
        VectorIndex("ix", "t", storage="halfvec").check_dimensions(4001)
    with pytest.raises(InvalidIndexError, match="no fixed dimension"):
        VectorIndex("ix", "t").check_dimensions(None)


def test_operator_classes_read_back() -> None:
    for storage in ("vector", "halfvec"):
        for distance in Distance:
            opclass = operator_class(storage, distance)  # type: ignore[arg-type]
            assert describe_operator_class(opclass) == (storage, distance)
    assert describe_operator_class("bit_hamming_ops") == ("bit", None)
    assert describe_operator_class("vector_l1_ops") == ("vector", None)
    assert describe_operator_class("sparsevec_l2_ops") == ("sparsevec", None)
