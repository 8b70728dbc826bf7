import pytest

from pgsearch.fusion import reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)


def test_item_in_both_lists_beats_a_single_first_place() -> None:
    fused = reciprocal_rank_fusion([["solo", "both"], ["other", "both"]])
    assert fused[0][0] == "both"


def test_empty_rankings() -> None:
    assert reciprocal_rank_fusion([[], []]) == []
