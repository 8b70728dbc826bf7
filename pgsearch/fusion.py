"""Rank fusion as pure functions; the SQL twin of RRF lives in :mod:`pgsearch.search`."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

__all__ = ["DEFAULT_RRF_K", "reciprocal_rank_fusion"]

K = TypeVar("K", bound=Hashable)

# Cormack, Clarke & Buettcher (SIGIR 2009): k = 60 damps the head of each list so that an item
# ranked well by several lists beats one ranked first by only one.
DEFAULT_RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], k: int = DEFAULT_RRF_K
) -> list[tuple[K, float]]:
    """Fuse ranked lists: ``score(d) = sum over lists of 1 / (k + rank of d)``, ranks from 1.

    Returns:
        ``(item, score)`` pairs, best first; ties keep the order of first appearance.
    """
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
