"""Each search mode on real PostgreSQL: ranking, fusion, plans and knobs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, Select, text
from sqlalchemy.orm import Session

from pgsearch import (
    DocumentInput,
    DocumentRepository,
    HashingEmbedder,
    InvalidSearchError,
    SearchRepository,
    reciprocal_rank_fusion,
)
from pgsearch.ingest.documents import embedded_text
from pgsearch.search.statements import (
    Explain,
    TextMatch,
    hybrid_statement,
    keyword_leg,
    knob_params,
    text_statement,
    vector_statement,
)
from pgsearch.types import Distance
from pgsearch.vectors import register_binary_vectors


@pytest.fixture
def loaded(
    session: Session, embedder: HashingEmbedder, corpus: list[DocumentInput]
) -> SearchRepository:
    DocumentRepository(session, embedder).add(corpus)
    return SearchRepository(session, embedder)


def test_vector_search_ranks_by_cosine_similarity(
    loaded: SearchRepository, embedder: HashingEmbedder, corpus: list[DocumentInput]
) -> None:
    results = loaded.search("honeybees pollinate crops", k=5, mode="vector")
    assert results[0].external_id == "bees"
    query = embedder.embed_query("honeybees pollinate crops")
    expected = {  # the embedded text is the title, a blank line, the chunk
        d.external_id: float(query @ embedder.embed_query(embedded_text(d.title, d.content)))
        for d in corpus
    }
    assert {r.external_id: r.score for r in results} == pytest.approx(expected, abs=1e-5)
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert results[0].title == "Bees" and results[0].metadata == {"topic": "nature"}


def test_text_search_matches_stemmed_words_only(loaded: SearchRepository) -> None:
    results = loaded.search("readers blocking", mode="text")
    assert [r.external_id for r in results] == ["postgres"]
    assert results[0].score > 0
    assert loaded.search("quantum chromodynamics", mode="text") == []
    # websearch syntax, with text_match="all": "or" and exclusion
    either = {
        r.external_id for r in loaded.search("bread or rovers", mode="text", text_match="all")
    }
    assert either == {"bread", "rovers"}
    assert loaded.search("rovers -mars", mode="text", text_match="all") == []
    assert loaded.search("rovers mars", mode="text", text_match="all")


def test_text_search_matches_any_of_the_query_words_by_default(loaded: SearchRepository) -> None:
    # A question shares some words with its answer, rarely all of them.
    results = loaded.search("which machines drill into the rocks of other planets", mode="text")
    assert [r.external_id for r in results] == ["rovers"]
    assert loaded.search("the of and", mode="text") == []  # only stop words: nothing to match
    assert loaded.search("?!", mode="text") == []
    assert [r.external_id for r in loaded.search("rovers -mars", mode="bm25")] == ["rovers"]


def test_text_search_orders_by_bm25(session: Session, embedder: HashingEmbedder) -> None:
    DocumentRepository(session, embedder).add(
        [
            DocumentInput("once", "Index structures: one mention of an index here."),
            DocumentInput("often", "Index, index, index: an index of indexes of index pages."),
        ]
    )
    results = SearchRepository(session, embedder).search("index", mode="text")
    assert [r.external_id for r in results] == ["often", "once"]
    assert results[0].score > results[1].score


def _keyword_leg(
    session: Session, query: str, limit: int, text_match: TextMatch = "half"
) -> list[int]:
    params = {"query_text": query, "text_config": "english", "limit": limit}
    return [row.id for row in session.execute(keyword_leg(None, text_match), params)]


def test_hybrid_is_rrf_of_both_legs(session: Session, loaded: SearchRepository) -> None:
    query = "index readers"
    depth = 40
    vector_leg = [r.chunk_id for r in loaded.search(query, k=depth, mode="vector")]
    keyword_leg = _keyword_leg(session, query, depth, "any")
    assert keyword_leg, "the keyword leg should match chunks with any of the query's words"
    expected = reciprocal_rank_fusion([vector_leg, keyword_leg], k=60)
    results = loaded.search(query, k=3, mode="hybrid", candidates=depth, fusion="rrf")
    assert len(results) == 3
    assert [r.score for r in results] == pytest.approx([score for _, score in expected[:3]])
    assert {r.chunk_id for r in results} <= {chunk for chunk, _ in expected}


def _min_max(scores: dict[int, float]) -> dict[int, float]:
    low, high = min(scores.values()), max(scores.values())
    return {i: (s - low) / (high - low) if high > low else 1.0 for i, s in scores.items()}


@pytest.mark.parametrize("alpha", [0.5, 0.8, 0.0])
def test_hybrid_is_a_convex_combination_of_normalised_leg_scores(
    loaded: SearchRepository, alpha: float
) -> None:
    query = "index readers"
    vector = _min_max({r.chunk_id: r.score for r in loaded.search(query, 40, "vector")})
    bm25 = _min_max({r.chunk_id: r.score for r in loaded.search(query, 40, "bm25")})
    fused = {
        i: alpha * vector.get(i, 0.0) + (1 - alpha) * bm25.get(i, 0.0)
        for i in vector.keys() | bm25.keys()
    }
    results = loaded.search(query, k=5, mode="hybrid", candidates=40, alpha=alpha)
    assert [r.score for r in results] == pytest.approx(sorted(fused.values(), reverse=True)[:5])
    for r in results:
        assert r.score == pytest.approx(fused[r.chunk_id])
        assert (r.vector_score is None) == (r.vector_rank is None)
        assert (r.text_score is None) == (r.text_rank is None)
    with pytest.raises(InvalidSearchError, match="alpha"):
        loaded.search(query, mode="hybrid", alpha=1.5)
    with pytest.raises(InvalidSearchError, match="fusion"):
        loaded.search(query, mode="hybrid", fusion="max")  # type: ignore[arg-type]


def test_hybrid_with_all_terms_fuses_the_text_mode_leg(loaded: SearchRepository) -> None:
    query = "sourdough bread"
    vector_leg = [r.chunk_id for r in loaded.search(query, k=40, mode="vector")]
    text_leg = [r.chunk_id for r in loaded.search(query, k=40, mode="text", text_match="all")]
    expected = reciprocal_rank_fusion([vector_leg, text_leg], k=60)
    results = loaded.search(
        query, k=3, mode="hybrid", candidates=40, text_match="all", fusion="rrf"
    )
    assert [r.score for r in results] == pytest.approx([score for _, score in expected[:3]])
    with pytest.raises(InvalidSearchError, match="text_match"):
        loaded.search(query, mode="hybrid", text_match="some")  # type: ignore[arg-type]


def test_keyword_leg_needs_half_the_words_and_keeps_exclusions(
    session: Session, loaded: SearchRepository
) -> None:
    bread = loaded.search("sourdough", mode="text")[0]
    bees = loaded.search("honey", mode="text")[0]
    # All words are needed with text_match="all"; half of them with "half".
    assert loaded.search("MVCC unicorns", mode="text", text_match="all") == []
    postgres = loaded.search("MVCC", mode="text")[0]
    assert _keyword_leg(session, "MVCC unicorns", 10) == [postgres.chunk_id]
    assert set(_keyword_leg(session, "sourdough yeast honey comb", 10)) == {
        bread.chunk_id,
        bees.chunk_id,
    }
    # Bees share one word of four ("honey"): too little to count as a keyword hit.
    assert _keyword_leg(session, "sourdough starter yeast honey", 10) == [bread.chunk_id]
    # An exclusion is websearch syntax: all terms, and the excluded word excludes.
    assert _keyword_leg(session, "rovers -mars", 10) == []
    assert _keyword_leg(session, "sourdough -mars yeast", 10) == [bread.chunk_id]
    assert _keyword_leg(session, "sourdough -mars rovers", 10) == []
    # Quotes and "or" are websearch syntax too: the query means what it says.
    assert _keyword_leg(session, '"wild yeast" unicorns', 10) == []
    assert _keyword_leg(session, '"wild yeast" or unicorns', 10) == [bread.chunk_id]


def test_hybrid_finds_keyword_only_and_vector_only_matches(loaded: SearchRepository) -> None:
    results = loaded.search("MVCC", k=5, mode="hybrid")
    assert results[0].external_id == "postgres"
    assert len(results) == 5  # the vector leg fills the rest


KNOBS = {"hnsw.ef_search": "40", "hnsw.iterative_scan": "off"}


@pytest.mark.parametrize(
    "statement,indexes",
    [
        (vector_statement(Distance.COSINE, None, "hnsw", 2), ["ix_chunks_embedding_hnsw"]),
        (text_statement(None, "all"), ["ix_chunks_tsv"]),
        (
            hybrid_statement(Distance.COSINE, None, "hnsw", 2, "half"),
            ["ix_chunks_embedding_hnsw", "ix_chunks_tsv"],
        ),
    ],
    ids=["vector", "text", "hybrid"],
)
def test_queries_use_the_indexes(
    session: Session,
    loaded: SearchRepository,
    embedder: HashingEmbedder,
    statement: Select[Any],
    indexes: list[str],
) -> None:
    session.execute(text("SET LOCAL enable_seqscan = off"))
    register_binary_vectors(session.connection())
    params = {
        "query_embedding": embedder.embed_query("bees"),
        "query_text": "bees",
        "text_config": "english",
        "limit": 3,
        "k": 3,
        "rrf_k": 60,
        **knob_params(KNOBS),
    }
    plan = "\n".join(row[0] for row in session.execute(Explain(statement), params))
    for index in indexes:
        assert index in plan


def test_ef_search_is_set_for_the_transaction_only(
    session: Session, loaded: SearchRepository
) -> None:
    loaded.search("bees", k=5, mode="vector", ef_search=77)
    assert session.execute(text("SELECT current_setting('hnsw.ef_search')")).scalar() == "77"
    loaded.search("bees", k=120, mode="vector", ef_search=77)
    assert session.execute(text("SELECT current_setting('hnsw.ef_search')")).scalar() == "120"


def test_ef_search_does_not_leak_past_commit(engine, embedder: HashingEmbedder) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        SearchRepository(session, embedder).search("bees", mode="vector", ef_search=99)
        session.commit()
        setting = session.execute(text("SELECT current_setting('hnsw.ef_search')")).scalar()
        assert setting == "40"


def test_vector_search_runs_in_autocommit_and_leaves_no_setting(
    engine: Engine, embedder: HashingEmbedder
) -> None:
    with engine.connect() as conn:
        autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
        with Session(bind=autocommit) as session:
            # The knobs are set inside the search's own statement: they reach the HNSW scan
            # even without a transaction, and end with that statement.
            SearchRepository(session, embedder).search("bees", mode="vector", ef_search=99)
            assert session.execute(text("SHOW hnsw.ef_search")).scalar() == "40"
            assert isinstance(SearchRepository(session).search("bees", mode="text"), list)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"mode": "semantic"}, "unknown search mode 'semantic'"),
        ({"query": "  "}, "query is empty"),
        ({"k": 0}, "out of range"),
        ({"k": 5000}, "out of range"),
    ],
)
def test_bad_requests_are_refused(
    loaded: SearchRepository, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"query": "bees", **kwargs}
    with pytest.raises(InvalidSearchError, match=message):
        loaded.search(**arguments)  # type: ignore[arg-type]


def test_text_mode_needs_no_embedder(session: Session, loaded: SearchRepository) -> None:
    results = SearchRepository(session).search("sourdough", mode="text")
    assert [r.external_id for r in results] == ["bread"]


@pytest.mark.parametrize(
    "query,expected",
    [
        ("sourdough", "'sourdough'"),
        ("sourdough bread", "'bread' | 'sourdough'"),
        ("wild yeast rises", "'rise' & 'wild' | 'rise' & 'yeast' | 'wild' & 'yeast'"),
        ("rovers -mars", "'rover' & !'mar'"),
        ('"wild yeast" rises', "'wild' <-> 'yeast' & 'rise'"),
        # "or" is a word separator here, not an operator (nor a word, in any configuration).
        ("sourdough or rye flour", "'flour' & 'rye' | 'flour' & 'sourdough' | 'rye' & 'sourdough'"),
        ("the of and", ""),
        ("O'Brien bakes", "'bake' & 'brien' | 'bake' & 'o' | 'brien' & 'o'"),
        # The parser's compound words (phrases in the tsquery) are words, not syntax.
        (
            "state-of-the-art ovens",
            "'art' & 'oven' | 'art' & 'state' | 'art' & 'state-of-the-art' | 'oven' & 'state'"
            " | 'oven' & 'state-of-the-art' | 'state' & 'state-of-the-art'",
        ),
    ],
)
def test_keyword_query(session: Session, query: str, expected: str) -> None:
    built = session.execute(
        text("SELECT CAST(pgsearch.keyword_query('english', :q) AS text)"), {"q": query}
    ).scalar()
    simple = session.execute(
        text("SELECT CAST(pgsearch.keyword_query('simple', 'cats or dogs') AS text)")
    ).scalar()
    assert simple == "'cats' | 'dogs'"

    # Compare as sets of conjunctions: the order of OR branches carries no meaning.
    def branches(value: str) -> set[str]:
        return {part.strip().strip("()") for part in value.split("|")} if value else set()

    assert branches(built or "") == branches(expected)


def test_keyword_query_sizes(session: Session) -> None:
    def shape(words: int) -> tuple[int, int]:
        query = " ".join(f"zq{chr(97 + i)}word" for i in range(words))
        built = str(
            session.execute(
                text("SELECT CAST(pgsearch.keyword_query('simple', :q) AS text)"), {"q": query}
            ).scalar()
        )
        conjunctions = built.split(" | ")
        return len(conjunctions), conjunctions[0].count("&") + 1

    assert shape(4) == (6, 2)  # half of 4: every pair
    assert shape(5) == (10, 3)  # half of 5, rounded up: every triple
    assert shape(8) == (70, 4)
    assert shape(9) == (36, 2)  # past 8 words: every pair, not 126 quintuples
    assert shape(25) == (25, 1)  # past 24 words: any word
