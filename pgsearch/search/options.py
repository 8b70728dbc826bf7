"""One typed, validated search request, shared by ``Store``, ``SearchRepository`` and the CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import NDArray

from pgsearch.exceptions import InvalidFilterError, InvalidSearchError
from pgsearch.fusion import DEFAULT_RRF_K
from pgsearch.search.filters import FilterNode, parse_filter
from pgsearch.types import SearchMode
from pgsearch.vector_index import LISTS_RANGE, IndexMethod, Storage

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_B",
    "DEFAULT_BINARY_OVERSAMPLE",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_EXACT_THRESHOLD",
    "DEFAULT_K1",
    "DEFAULT_TITLE_WEIGHT",
    "MAX_BINARY_CANDIDATES",
    "MAX_EF_SEARCH",
    "MAX_K",
    "MAX_PROBES",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_WORDS",
    "MAX_VARIANTS",
    "Fusion",
    "GroupBy",
    "IterativeScan",
    "SearchOptions",
    "SearchRequest",
]

# pgvector's own default: recall@10 about 0.96-0.98 on 60k MiniLM vectors at about 1 ms.
DEFAULT_EF_SEARCH = 40
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
MAX_K = 1000
# A bit (binary quantized) index is searched by Hamming distance for this many candidates per
# row asked for, re-ranked by the exact distance. One bit per dimension ranks coarsely: many
# vectors share a Hamming distance, and at 384 dimensions the true neighbours spread over the
# first hundreds of codes. Measured on the Debian set (63k MiniLM vectors, 200 held-out
# queries, HNSW m 16): 10 per row gives recall@10 0.93-0.95, 20 gives 0.96 (p50 1.8 ms, against
# 0.6 ms for the full-precision index), 40 gives 0.97. 20 is the least that clears 0.95.
DEFAULT_BINARY_OVERSAMPLE = 20
MAX_BINARY_OVERSAMPLE = 100
# The most candidates a Hamming scan hands to re-ranking (10 per row at MAX_K): beyond
# hnsw.ef_search's 1000 the scan iterates, up to hnsw.max_scan_tuples.
MAX_BINARY_CANDIDATES = 10 * MAX_K
MAX_PROBES = LISTS_RANGE[1]  # ivfflat.probes and ivfflat.max_probes: at most 32,768 lists
# Bounds that keep one query from holding a connection: embedding models read a few hundred
# tokens at most, and every distinct word is a branch of the keyword leg's tsquery.
MAX_QUERY_CHARS = 10_000
MAX_QUERY_WORDS = 256
# A filter the planner expects to select at most this many chunks is served by an exact scan.
# Its cost is one distance per selected chunk (about 1 us at 384 dimensions here, so 10 ms at
# the threshold), and it has recall 1.0; an HNSW scan with a filter must walk past the rows the
# filter rejects (measured 3-45 ms for filters of 1-10 % of 63k chunks, recall about 0.93).
DEFAULT_EXACT_THRESHOLD = 10_000

# Hybrid's keyword leg leaves out a query's commonest words once its words hold more than this
# many postings (rarest first; Lucene's common-terms idea): BM25 costs about 0.35 us per posting
# read here, so the leg stays near 10 ms for any query, where a long question of common words
# read 90,000 postings on the Debian set. Such words carry little idf: they barely move a
# ranking. Text and bm25 modes stay exact.
DEFAULT_MAX_POSTINGS = 30_000

IterativeScan = Literal["off", "relaxed_order", "strict_order"]
GroupBy = Literal["chunk", "document"]
TextMatch = Literal["any", "half", "all"]

# Okapi BM25's usual constants (Robertson & Zaragoza 2009; the defaults of Lucene,
# Elasticsearch and bm25s): k1 saturates term frequency, b normalises by chunk length.
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75

# Text mode counts a word in a document's title as this many words of the body: a title is the
# summary its author chose (the boost of 2 is the usual one for titles, e.g. in Elasticsearch's
# multi_match examples). bm25 mode counts title words once: plain BM25 over title and body.
DEFAULT_TITLE_WEIGHT = 2.0

Fusion = Literal["convex", "rrf"]
# Hybrid's default fusion: a convex combination of the legs' min-max normalised scores, with
# equal weights. Convex combination uses how far apart the scores are, which RRF's ranks throw
# away, and beats RRF across BEIR in Bruch, Gai & Ingber ("An Analysis of Fusion Functions for
# Hybrid Retrieval", ACM TOIS 2023); 0.5 is the weight that assumes nothing about which leg is
# better on a collection nobody has judged.
DEFAULT_ALPHA = 0.5


def _positive_int(name: str, value: object, low: int, high: int, whose: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSearchError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidSearchError(f"{name}={value} is out of {whose}range: use {low} to {high}")
    return value


def _number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidSearchError(f"{name} must be a number from {low} to {high}, got {value!r}")


def _check_query(query: object) -> str | None:
    if query is None:
        return None
    if not isinstance(query, str):
        raise InvalidSearchError(f"the query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InvalidSearchError("the query is empty: give some words to search for")
    if "\x00" in query:
        raise InvalidSearchError("the query contains a NUL character: remove it")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSearchError(
            "the query is not valid Unicode (it holds a lone surrogate): decode it properly"
        ) from None
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidSearchError(
            f"the query has {len(query):,} characters, more than {MAX_QUERY_CHARS:,}: "
            "search with a shorter text (or its embedding, as query_vector)"
        )
    words = len(query.split())
    if words > MAX_QUERY_WORDS:
        raise InvalidSearchError(
            f"the query has {words:,} words, more than {MAX_QUERY_WORDS}: search with a "
            "shorter text (or its embedding, as query_vector)"
        )
    return query


class SearchOptions(TypedDict, total=False):
    """The keyword options of ``Store.search`` and ``SearchRepository.search``.

    Each is described at :class:`SearchRequest`.
    """

    query_vector: Sequence[float] | NDArray[Any] | None
    filter: Mapping[str, Any] | str | None
    exact: bool
    group_by: GroupBy
    ef_search: int
    iterative_scan: IterativeScan
    max_scan_tuples: int | None
    scan_mem_multiplier: float | None
    probes: int | None
    max_probes: int | None
    binary_oversample: int
    exact_threshold: int
    rrf_k: int
    candidates: int | None
    text_match: TextMatch
    k1: float
    b: float
    fusion: Fusion
    alpha: float
    title_weight: float | None
    max_postings: int | None
    variants: Sequence[str] | None
    query_vectors: Sequence[Sequence[float] | NDArray[Any]] | None
    expand: Callable[[str], Sequence[str]] | None
    reranker: Any
    diversity: float | None


# Multi-query runs one search per variant: a bound on the work one call may ask for.
MAX_VARIANTS = 10


def _canonical(value: Any) -> str:
    """A checked filter as canonical JSON: the key of the statements built for it."""
    return json.dumps(
        value,
        sort_keys=True,
        ensure_ascii=False,
        allow_nan=False,
        default=lambda item: dict(item) if isinstance(item, Mapping) else list(item),
    )


@dataclass(frozen=True)
class SearchRequest:
    """A search, checked when it is made.

    Attributes:
        query: The query text. Optional with ``query_vector`` in vector mode.
        k: Number of results, 1 to 1000.
        mode: ``vector``, ``text``, ``bm25`` or ``hybrid``; default hybrid with a query text, vector
            with only a query vector.
        query_vector: A query embedding computed elsewhere (list or numpy array); checked for
            dimension and finiteness against the store.
        filter: A filter (see :mod:`pgsearch.search.filters`), as a dict or JSON text.
        exact: Force the exact vector path (recall 1.0), whatever the filter.
        group_by: ``chunk`` (default) or ``document``: each document once, by its best chunk.
        ef_search: ``hnsw.ef_search``, raised to the number of rows a leg fetches.
        iterative_scan: ``hnsw.iterative_scan`` for filtered HNSW scans (pgvector 0.8):
            ``relaxed_order`` (default; results are re-sorted), ``strict_order`` or ``off``.
            With an IVFFlat index: ``ivfflat.iterative_scan``, where ``relaxed_order`` is the
            only mode (asking for ``strict_order`` raises :class:`InvalidSearchError`).
        max_scan_tuples: ``hnsw.max_scan_tuples`` (pgvector's default 20,000 when unset).
        scan_mem_multiplier: ``hnsw.scan_mem_multiplier`` (pgvector's default 1 when unset).
        probes: ``ivfflat.probes``, the lists an IVFFlat index scan visits, 1 to the index's
            ``lists`` (default ``round(sqrt(lists))``, pgvector's advice, at least 1). Only
            with an IVFFlat index; HNSW indexes take ``ef_search``.
        max_probes: ``ivfflat.max_probes``, the most lists an iterative IVFFlat scan visits
            (pgvector's default: all of them when unset). Only with an IVFFlat index.
        binary_oversample: With a ``bit`` (binary quantized) index: Hamming-distance
            candidates fetched per row asked for, re-ranked by the exact distance (default
            :data:`DEFAULT_BINARY_OVERSAMPLE`, 1 to 100; at most 10,000 candidates).
        exact_threshold: Filters the planner expects to select at most this many chunks take
            the exact path (vector legs) and have only their chunks scored by BM25 (text legs).
        fusion: How hybrid fuses its legs: ``convex`` (default), ``alpha`` times the vector
            leg's min-max normalised score plus ``1 - alpha`` times the keyword leg's; or
            ``rrf``, reciprocal rank fusion with ``rrf_k``.
        alpha: Weight of the vector leg in convex fusion, 0 to 1 (default 0.5).
        title_weight: How many body words a word of the title counts as, 0 to 100 (default
            2 in text and hybrid modes, 1 in bm25 mode).
        max_postings: Hybrid's bound on its keyword leg's work: once the query's words hold
            more postings than this, the commonest are left out of its BM25, rarest kept
            first (default 30,000; ``None``: every word, exact BM25).
        variants: Other phrasings of the query, searched too; the rankings are fused by RRF
            (see :mod:`pgsearch.search.stages`). At most 10 with ``expand``'s and
            ``query_vectors``.
        query_vectors: Other query vectors (a list, or a 2-D array of rows), each searched
            in vector mode and fused by RRF with the other rankings (in hybrid mode the
            keyword leg runs once, with the query text). Each is checked as ``query_vector``
            is.
        expand: A callable that returns variants of the query (an LLM prompt, say).
        reranker: Re-scores the candidates: a callable ``(query, texts) -> scores`` or a
            sentence-transformers ``CrossEncoder`` (e.g.
            ``CrossEncoder("cross-encoder/ms-marco-MiniLM-L-6-v2")``).
        diversity: MMR over the candidates, 0 to 1: how much a result's similarity to those
            ranked above it counts against it (MMR's lambda is ``1 - diversity``).
        rrf_k: Reciprocal rank fusion constant (hybrid with ``fusion="rrf"``).
        candidates: Depth of each hybrid leg (default ``max(4 * k, 40)``).
        text_match: Which chunks the text, bm25 and hybrid keyword legs rank by BM25: those
            with ``any`` of the query's words (default; stop words removed), at least
            ``half`` of them, or ``all`` (``websearch_to_tsquery`` syntax: quotes, ``or``,
            ``-word``). ``bm25`` mode always ranks ``any``.
        k1: BM25 term-frequency saturation (default 1.2).
        b: BM25 length normalisation, 0 to 1 (default 0.75).
        filter_node: The parsed filter (``None``: no filter).
        filter_key: The filter as canonical JSON, which keys the statements built for it.
    """

    query: str | None = None
    k: int = 10
    mode: SearchMode | str | None = None
    query_vector: Sequence[float] | NDArray[Any] | None = field(default=None, compare=False)
    filter: Mapping[str, Any] | str | None = None
    exact: bool = False
    group_by: GroupBy = "chunk"
    ef_search: int = DEFAULT_EF_SEARCH
    iterative_scan: IterativeScan = "relaxed_order"
    max_scan_tuples: int | None = None
    scan_mem_multiplier: float | None = None
    probes: int | None = None
    max_probes: int | None = None
    binary_oversample: int = DEFAULT_BINARY_OVERSAMPLE
    exact_threshold: int = DEFAULT_EXACT_THRESHOLD
    rrf_k: int = DEFAULT_RRF_K
    candidates: int | None = None
    text_match: TextMatch = "any"
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    fusion: Fusion = "convex"
    alpha: float = DEFAULT_ALPHA
    title_weight: float | None = None
    max_postings: int | None = DEFAULT_MAX_POSTINGS
    variants: Sequence[str] | None = field(default=None, compare=False)
    query_vectors: Sequence[Sequence[float] | NDArray[Any]] | None = field(
        default=None, compare=False
    )
    expand: Callable[[str], Sequence[str]] | None = field(default=None, compare=False)
    reranker: Any = field(default=None, compare=False)
    diversity: float | None = None
    filter_node: FilterNode | None = field(init=False, repr=False, compare=False)
    filter_key: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_query(self.query)
        if self.query is None and self.query_vector is None:
            raise InvalidSearchError("give a query text, a query_vector, or both")
        mode = (
            SearchMode.parse(self.mode)
            if self.mode is not None
            else SearchMode.HYBRID
            if self.query is not None
            else SearchMode.VECTOR
        )
        object.__setattr__(self, "mode", mode)
        if self.query is None and mode is not SearchMode.VECTOR:
            raise InvalidSearchError(f"{mode.value} search needs a query text")
        _positive_int("k", self.k, 1, MAX_K)
        _positive_int("ef_search", self.ef_search, 1, MAX_EF_SEARCH, "pgvector's ")
        _positive_int("rrf_k", self.rrf_k, 1, 1_000_000)
        _positive_int("exact_threshold", self.exact_threshold, 0, 2**62)
        if self.max_scan_tuples is not None:
            _positive_int("max_scan_tuples", self.max_scan_tuples, 1, 2**31 - 1)
        if self.scan_mem_multiplier is not None and (
            isinstance(self.scan_mem_multiplier, bool)
            or not isinstance(self.scan_mem_multiplier, int | float)
            or not 1 <= self.scan_mem_multiplier <= 1000
        ):
            raise InvalidSearchError("scan_mem_multiplier must be a number from 1 to 1000")
        if self.probes is not None:
            _positive_int("probes", self.probes, 1, MAX_PROBES, "pgvector's ")
        if self.max_probes is not None:
            _positive_int("max_probes", self.max_probes, 1, MAX_PROBES, "pgvector's ")
        _positive_int("binary_oversample", self.binary_oversample, 1, MAX_BINARY_OVERSAMPLE)
        if self.iterative_scan not in ("off", "relaxed_order", "strict_order"):
            raise InvalidSearchError(
                f"iterative_scan={self.iterative_scan!r}: use off, relaxed_order or strict_order"
            )
        if self.text_match not in ("any", "half", "all"):
            raise InvalidSearchError(f"text_match={self.text_match!r}: use 'any', 'half' or 'all'")
        _number("k1", self.k1, 0, 100)
        _number("b", self.b, 0, 1)
        _number("alpha", self.alpha, 0, 1)
        if self.title_weight is not None:
            _number("title_weight", self.title_weight, 0, 100)
        if self.diversity is not None:
            _number("diversity", self.diversity, 0, 1)
        if self.max_postings is not None:
            _positive_int("max_postings", self.max_postings, 1, 2**62)
        if self.variants is not None:
            if isinstance(self.variants, str) or not isinstance(self.variants, Sequence):
                raise InvalidSearchError("variants must be a list of query texts")
            if len(self.variants) > MAX_VARIANTS:
                raise InvalidSearchError(
                    f"at most {MAX_VARIANTS} variants, got {len(self.variants)}"
                )
            for variant in self.variants:
                _check_query(variant)
                if variant is None:
                    raise InvalidSearchError("a variant is None: give query texts")
        if self.query_vectors is not None:
            if isinstance(self.query_vectors, str) or not isinstance(
                self.query_vectors, Sequence | np.ndarray
            ):
                raise InvalidSearchError("query_vectors must be a list of query vectors")
            if mode not in (SearchMode.VECTOR, SearchMode.HYBRID):
                raise InvalidSearchError(
                    f"query_vectors need vector or hybrid mode, not {mode.value}"
                )
            if len(self.query_vectors) + len(self.variants or ()) > MAX_VARIANTS:
                raise InvalidSearchError(
                    f"at most {MAX_VARIANTS} variants and query_vectors together,"
                    f" got {len(self.query_vectors) + len(self.variants or ())}"
                )
        if (self.variants or self.expand) and self.query is None:
            raise InvalidSearchError("variants and expand need a query text")
        if self.expand is not None and not callable(self.expand):
            raise InvalidSearchError("expand must be a callable that returns query texts")
        if self.reranker is not None and not (
            callable(self.reranker) or callable(getattr(self.reranker, "predict", None))
        ):
            raise InvalidSearchError(
                "reranker must be a callable (query, texts) -> scores or have predict(pairs)"
            )
        if self.fusion not in ("convex", "rrf"):
            raise InvalidSearchError(f"fusion={self.fusion!r}: use 'convex' or 'rrf'")
        if self.group_by not in ("chunk", "document"):
            raise InvalidSearchError(f"group_by={self.group_by!r}: use 'chunk' or 'document'")
        if not isinstance(self.exact, bool):
            raise InvalidSearchError(f"exact must be true or false, got {self.exact!r}")
        if self.candidates is not None:
            _positive_int("candidates", self.candidates, 1, MAX_K)
        given = self.filter
        if isinstance(given, str):
            try:
                given = json.loads(given)
            except ValueError as exc:
                raise InvalidFilterError(f"the filter is not valid JSON ({exc})") from None
        node = parse_filter(given)
        object.__setattr__(self, "filter_node", node)
        object.__setattr__(self, "filter_key", None if node is None else _canonical(given))

    @property
    def search_mode(self) -> SearchMode:
        """The mode, resolved."""
        assert isinstance(self.mode, SearchMode)
        return self.mode

    @property
    def has_stages(self) -> bool:
        """Whether stages run after retrieval (variants, re-ranking, MMR)."""
        vectors = self.query_vectors is not None and len(self.query_vectors) > 0
        extra = bool(self.variants) or vectors or self.expand is not None
        return extra or self.reranker is not None or (self.diversity is not None)

    @property
    def resolved_title_weight(self) -> float:
        """The title weight for this mode: given, else 1 for bm25 and 2 otherwise."""
        if self.title_weight is not None:
            return float(self.title_weight)
        return 1.0 if self.mode is SearchMode.BM25 else DEFAULT_TITLE_WEIGHT

    @property
    def depth(self) -> int:
        """Rows each hybrid leg ranks: deep enough for a chunk ranked moderately by both legs
        to reach the fused top ``k`` (default ``max(4 * k, 40)``, at most 1000)."""
        if self.candidates is None:
            return max(min(max(4 * self.k, 40), MAX_K), self.k)
        return max(self.candidates, self.k)  # checked when the request was made

    def binary_candidates(self, limit: int) -> int:
        """Rows a ``bit`` index's Hamming scan fetches for a leg of ``limit`` rows."""
        return max(limit, min(limit * self.binary_oversample, MAX_BINARY_CANDIDATES))

    def index_settings(
        self,
        limit: int,
        *,
        filtered: bool,
        method: IndexMethod = "hnsw",
        storage: Storage = "vector",
        lists: int | None = None,
    ) -> dict[str, str]:
        """The knobs of an index leg that fetches ``limit`` rows from an index of ``method``
        and ``storage`` (``lists``: an IVFFlat index's).

        Raises:
            InvalidSearchError: ``probes`` above the index's lists, or ``strict_order`` asked
                of an IVFFlat index.
        """
        if storage == "bit":
            limit = self.binary_candidates(limit)
        if method == "hnsw":
            return self.hnsw_settings(limit, filtered=filtered)
        return self.ivfflat_settings(lists or 1)

    def ivfflat_settings(self, lists: int) -> dict[str, str]:
        """``ivfflat.*`` settings for a leg served by an IVFFlat index of ``lists`` lists.

        The scan iterates whether or not a filter is given: the lists it probes may hold
        fewer rows than it needs, and iterating costs nothing until they do.

        Raises:
            InvalidSearchError: ``probes`` above ``lists``, or ``strict_order`` asked for.
        """
        if self.iterative_scan == "strict_order":
            raise InvalidSearchError(
                "iterative_scan='strict_order' is not available with the store's IVFFlat "
                "index (pgvector's ivfflat.iterative_scan has off and relaxed_order): use "
                "relaxed_order (results are re-sorted by distance) or off"
            )
        if self.probes is not None and self.probes > lists:
            raise InvalidSearchError(
                f"probes={self.probes} is more than the IVFFlat index's {lists} lists: use 1 "
                f"to {lists}"
            )
        probes = self.probes if self.probes is not None else max(1, round(math.sqrt(lists)))
        settings = {
            "ivfflat.probes": str(probes),
            "ivfflat.iterative_scan": self.iterative_scan,
        }
        if self.max_probes is not None:
            settings["ivfflat.max_probes"] = str(self.max_probes)
        return settings

    def hnsw_settings(self, limit: int, *, filtered: bool) -> dict[str, str]:
        """``hnsw.*`` settings for an HNSW leg that fetches ``limit`` rows."""
        settings = {"hnsw.ef_search": str(min(max(self.ef_search, limit), MAX_EF_SEARCH))}
        # Unfiltered scans need not iterate while the first ef_search candidates are enough.
        iterate = filtered or limit > MAX_EF_SEARCH
        settings["hnsw.iterative_scan"] = self.iterative_scan if iterate else "off"
        if self.max_scan_tuples is not None:
            settings["hnsw.max_scan_tuples"] = str(self.max_scan_tuples)
        if self.scan_mem_multiplier is not None:
            settings["hnsw.scan_mem_multiplier"] = str(self.scan_mem_multiplier)
        return settings
