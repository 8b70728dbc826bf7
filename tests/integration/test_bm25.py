"""BM25 in plain SQL: scores by hand, statistics that a recount confirms, plans that use GIN."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg.sql
import pytest
from sqlalchemy import URL, event, text
from sqlalchemy.exc import DBAPIError

from pgsearch import DocumentInput, HashingEmbedder, InvalidSearchError, Store
from pgsearch.search import prepared

# Stemmed by the english configuration: cats -> cat, purring -> purr; "the", "on" are stop words.
CORPUS = [
    DocumentInput("a", "cat cat cat purring"),
    DocumentInput("b", "the cat sat on the mat with a dog and a bird and a fish"),
    DocumentInput("c", "dog barking dog"),
]


@pytest.fixture
def url(make_database: Callable[[], URL]) -> URL:
    return make_database()


@pytest.fixture
def store(url: URL) -> Iterator[Store]:
    with Store.open(url.render_as_string(hide_password=False), embedder=HashingEmbedder(16)) as s:
        s.migrate()
        yield s


def _bm25(docs: list[list[str]], query: list[str], k1: float, b: float) -> list[float]:
    """Okapi BM25 with Lucene's idf, written out from the textbook formula."""
    n = len(docs)
    average = sum(map(len, docs)) / n
    scores = []
    for doc in docs:
        tf = Counter(doc)
        score = 0.0
        for term in query:
            df = sum(term in d for d in docs)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(doc) / average))
        scores.append(score)
    return scores


@pytest.mark.parametrize(("k1", "b"), [(1.2, 0.75), (2.0, 0.0), (0.5, 1.0)])
def test_scores_match_a_hand_computation(store: Store, url: URL, k1: float, b: float) -> None:
    store.add(CORPUS)
    # The documents' tokens after to_tsvector('english', ...): stems, no stop words.
    docs = [
        ["cat", "cat", "cat", "purr"],
        ["cat", "sat", "mat", "dog", "bird", "fish"],
        ["dog", "bark", "dog"],
    ]
    expected = _bm25(docs, ["cat", "dog"], k1, b)
    by_id = {"a": expected[0], "b": expected[1], "c": expected[2]}

    results = store.search("cats and dogs", 10, "bm25", k1=k1, b=b)
    assert {r.external_id: r.score for r in results} == pytest.approx(by_id)
    assert [r.score for r in results] == pytest.approx(sorted(by_id.values(), reverse=True))

    with store.session() as session:
        rows = session.execute(
            text(
                "SELECT external_id, score"
                " FROM pgsearch.bm25_search('cats and dogs', 10, '{}', :k1, :b)"
            ),
            {"k1": k1, "b": b},
        ).all()
    assert dict(rows) == pytest.approx(by_id)


def test_text_mode_and_its_sql_function_rank_by_bm25(store: Store) -> None:
    store.add(CORPUS)
    python = [(r.external_id, r.score) for r in store.search("purring cats", 10, "text")]
    with store.session() as session:
        sql = session.execute(
            text("SELECT external_id, score FROM pgsearch.text_search('purring cats', 10)")
        ).all()
    assert [row.external_id for row in sql] == [external_id for external_id, _ in python]
    assert [row.score for row in sql] == pytest.approx([score for _, score in python])
    assert [external_id for external_id, _ in python] == ["a", "b"]


def _ledger_and_recount(store: Store) -> tuple[object, object]:
    """The postings and totals pgsearch keeps, and the same recounted from the chunks."""
    with store.session() as session:
        ledger = session.execute(
            text(
                "SELECT (SELECT coalesce(array_agg(p ORDER BY p), '{}') FROM ("
                "   SELECT lexeme, chunk_id, frequency, chunk_tokens"
                "   FROM pgsearch.bm25_postings) AS p)::text,"
                " (SELECT coalesce(sum(chunks), 0) FROM pgsearch.bm25_totals),"
                " (SELECT coalesce(sum(tokens), 0) FROM pgsearch.bm25_totals),"
                " (SELECT coalesce(array_agg(f ORDER BY f), '{}') FROM ("
                "   SELECT lexeme, sum(chunks) FROM pgsearch.bm25_frequencies"
                "   GROUP BY lexeme HAVING sum(chunks) <> 0) AS f)::text"
            )
        ).one()
        recount = session.execute(
            text(
                "SELECT (SELECT coalesce(array_agg(p ORDER BY p), '{}') FROM ("
                "   SELECT u.lexeme, c.id, coalesce(cardinality(u.positions), 1),"
                "          (SELECT count(*) FROM unnest(c.tsv) AS w, unnest(w.positions))"
                "   FROM pgsearch.chunks AS c, unnest(c.tsv) AS u) AS p)::text,"
                " (SELECT count(*) FROM pgsearch.chunks),"
                " (SELECT count(*) FROM pgsearch.chunks AS c, unnest(c.tsv) AS w,"
                "  unnest(w.positions)),"
                " (SELECT coalesce(array_agg(f ORDER BY f), '{}') FROM ("
                "   SELECT u.lexeme, count(*) FROM pgsearch.chunks AS c, unnest(c.tsv) AS u"
                "   GROUP BY u.lexeme) AS f)::text"
            )
        ).one()
    return tuple(ledger), tuple(recount)


def test_statistics_equal_a_recount_after_mixed_writes(store: Store, url: URL, libpq) -> None:  # type: ignore[no-untyped-def]
    store.add(CORPUS)
    store.add(
        [DocumentInput(f"n{i}", f"note {i} about cats, dogs and birds " * 30) for i in range(20)]
        # A chunk of stop words only: no lexeme, no posting, but a chunk of the corpus.
        + [DocumentInput("stop", "to be or not to be, that is the")]
    )
    store.upsert(
        [
            DocumentInput("a", "a changed text about fish"),
            DocumentInput("b", CORPUS[1].content, "Title only"),
        ]
    )
    store.delete(["c", "n3", "n4"])
    with psycopg.connect(libpq(url), autocommit=True) as conn:  # SQL users write too
        conn.execute(
            "UPDATE pgsearch.chunks SET content = 'edited by hand: penguins'"
            " WHERE position = 0 AND document_id ="
            " (SELECT id FROM pgsearch.documents WHERE external_id = 'n5')"
        )
        conn.execute("DELETE FROM pgsearch.documents WHERE external_id = 'n6'")  # cascades
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM pgsearch.chunks")  # rolled back: the ledgers too
    ledger, recount = _ledger_and_recount(store)
    assert ledger == recount
    assert recount[1] > 0

    store.optimize()  # folds the totals ledger into one row, same sums
    assert _ledger_and_recount(store) == (recount, recount)
    with store.session() as session:
        assert session.execute(text("SELECT count(*) FROM pgsearch.bm25_totals")).scalar() == 1

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("TRUNCATE pgsearch.chunks")
    assert _ledger_and_recount(store) == (("{}", 0, 0, "{}"), ("{}", 0, 0, "{}"))


def test_concurrent_writers_do_not_wait_on_the_statistics(store: Store, url: URL, libpq) -> None:  # type: ignore[no-untyped-def]
    store.add([DocumentInput("seed", "cats and dogs")])
    with psycopg.connect(libpq(url)) as first:
        first.execute(  # an open transaction that has counted "cat" and "dog"
            "INSERT INTO pgsearch.chunks (document_id, position, content, content_hash, embedding)"
            " SELECT id, 1, 'more cats and dogs', 'h', array_fill(0.1, ARRAY[16])::vector"
            " FROM pgsearch.documents WHERE external_id = 'seed'"
        )
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with psycopg.connect(libpq(url)) as conn:
                    conn.execute("SET lock_timeout = '2s'")
                    conn.execute(
                        "INSERT INTO pgsearch.chunks"
                        " (document_id, position, content, content_hash, embedding)"
                        " SELECT id, 2, 'cats, dogs', 'h', array_fill(0.2, ARRAY[16])::vector"
                        " FROM pgsearch.documents WHERE external_id = 'seed'"
                    )
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(10)
        assert not thread.is_alive() and not errors  # never queued behind the first writer
        first.commit()
    ledger, recount = _ledger_and_recount(store)
    assert ledger == recount


def test_the_text_leg_reads_the_postings_index_under_a_generic_plan(store: Store) -> None:
    # psycopg prepares statements it sees repeatedly; a generic plan knows no query text.
    store.add([DocumentInput(f"d{i}", f"entry{i} of the common log") for i in range(2000)])
    store.optimize()
    # The ranking path (filters, text_match half / all); bm25_top's own queries below.
    compiled = str(prepared.text(None, "all").compile(dialect=store.engine.dialect))
    compiled = compiled.replace("__[POSTCOMPILE_limit]", "10")
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", compiled)))
    for number, name in enumerate(names, start=1):
        compiled = compiled.replace(f"%({name})s", f"${number}")
    values = {"query_text": "entry7 entry1999", "text_config": "english", "k1": 1.2, "b": 0.75}
    values["title_weight"] = 2.0
    with store.engine.connect() as connection:
        driver: Any = connection.connection.driver_connection
        floats = ("k1", "b", "title_weight")
        types = ", ".join("float8" if name in floats else "text" for name in names)
        driver.execute(f"PREPARE bm25_leg ({types}) AS {compiled}".encode())
        driver.execute("SET plan_cache_mode = force_generic_plan")
        arguments = psycopg.sql.SQL(", ").join(psycopg.sql.Literal(values[n]) for n in names)
        explain = psycopg.sql.SQL("EXPLAIN EXECUTE bm25_leg({})").format(arguments)
        plan = "\n".join(row[0] for row in driver.execute(explain))
        driver.execute("DEALLOCATE bm25_leg")
        driver.execute("RESET plan_cache_mode")
    assert "$2" in plan, plan  # generic: the query text is a parameter
    assert "ix_chunks_tsv" in plan, plan  # the tsquery selects the chunks to score
    assert "Seq Scan on chunks" not in plan, plan
    found = store.search("entry7 entry1999", 10, "bm25")
    assert {r.external_id for r in found} == {"d7", "d1999"}

    # plpgsql runs bm25_top's queries with generic plans after five calls: they must use the
    # postings and frequencies indexes without knowing the terms.
    with store.engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.execute("SET plan_cache_mode = force_generic_plan")
        # Whether the index can serve these shapes at all: this test table is small enough
        # for a sequential scan to win on cost.
        driver.execute("SET enable_seqscan = off")
        driver.execute(
            "PREPARE scores (text[], float8[], int) AS"
            " SELECT * FROM pgsearch._bm25_scores($1, $2, $3, 1.2, 0.75, 2, 5.0)"
        )
        driver.execute(
            "PREPARE scores_of (text[], int8[]) AS"
            " SELECT * FROM pgsearch.bm25_scores($1, $2, 1.2, 0.75, 2)"
        )
        driver.execute(
            "PREPARE frequencies (text[]) AS SELECT q.lexeme, sum(f.chunks)"
            " FROM unnest($1) AS q(lexeme) JOIN pgsearch.bm25_frequencies AS f"
            " ON f.lexeme = q.lexeme GROUP BY q.lexeme"
        )
        plans = [
            "\n".join(row[0] for row in driver.execute(explain))
            for explain in (
                "EXPLAIN EXECUTE scores('{entry7,log}', '{8.0,0.1}', 1)",
                "EXPLAIN EXECUTE frequencies('{entry7,log}')",
                "EXPLAIN EXECUTE scores_of('{entry7,log}', '{1,2,3}')",
            )
        ]
        driver.execute("RESET plan_cache_mode")
        driver.execute("RESET enable_seqscan")
    assert "ix_bm25_postings_lexeme" in plans[0], plans[0]
    assert "Seq Scan on bm25_postings" not in plans[0], plans[0]
    assert "ix_bm25_frequencies_lexeme" in plans[1], plans[1]
    assert "ix_bm25_postings_lexeme" in plans[2], plans[2]


@pytest.mark.parametrize(
    "query", ["the of and", "?!...", "a & b | !c <-> d:*", "x" * 3000, "word " * 250]
)
def test_awkward_queries_give_results_or_nothing(store: Store, query: str) -> None:
    store.add(CORPUS)
    for mode in ("bm25", "text", "hybrid"):
        assert isinstance(store.search(query, 5, mode), list)


def test_oversized_queries_are_refused_clearly(store: Store) -> None:
    for mode in ("bm25", "text", "hybrid"):
        with pytest.raises(InvalidSearchError, match="characters, more than 10,000"):
            store.search("word " * 10_000, 5, mode)
    with store.session() as session, pytest.raises(Exception, match="more than 10,000"):
        session.execute(text("SELECT * FROM pgsearch.bm25_search(repeat('word ', 10000))"))


def test_bad_bm25_parameters_are_refused(store: Store) -> None:
    with pytest.raises(InvalidSearchError, match="k1"):
        store.search("cats", 5, "bm25", k1=-1)
    with pytest.raises(InvalidSearchError, match="b must be"):
        store.search("cats", 5, "bm25", b=2)


def test_title_words_count_twice_in_text_mode_and_once_in_bm25(store: Store) -> None:
    store.add(
        [
            DocumentInput("titled", "a note about gardens and soil", "Tomatoes"),
            DocumentInput("body", "tomatoes grow in gardens with soil and sun"),
        ]
    )
    text = {r.external_id: r.score for r in store.search("tomatoes", 10, "text")}
    bm25 = {r.external_id: r.score for r in store.search("tomatoes", 10, "bm25")}
    assert set(text) == set(bm25) == {"titled", "body"}  # the title is searched
    assert text["titled"] > bm25["titled"]  # weighted 2 in text mode
    assert text["body"] == pytest.approx(bm25["body"])  # no title word: no difference
    heavy = store.search("tomatoes", 10, "text", title_weight=10)
    assert heavy[0].external_id == "titled"
    # The title travels with the chunks: a new title is searched at once.
    store.upsert([DocumentInput("titled", "a note about gardens and soil", "Cucumbers")])
    assert {r.external_id for r in store.search("tomatoes", 10, "bm25")} == {"body"}
    assert [r.external_id for r in store.search("cucumbers", 10, "bm25")] == ["titled"]


def test_text_mode_corrects_misspelled_words_when_nothing_matches(store: Store) -> None:
    store.add([*CORPUS, DocumentInput("bees", "honeybees pollinate flowering plants")])
    store.optimize()
    assert [r.external_id for r in store.search("polinate", 5, "text")] == ["bees"]
    assert [r.external_id for r in store.search("purrring", 5, "text")] == ["a"]
    assert store.search("polinate", 5, "bm25") == []  # plain BM25 takes words as they are
    # A query that matches as written is not corrected.
    assert {r.external_id for r in store.search("dog", 5, "text")} == {"b", "c"}
    assert store.search("polinate", 5, "hybrid")[0].external_id == "bees"
    assert store.search("qqqqzzzz", 5, "text") == []


def test_bm25_top_returns_the_best_k_of_the_full_ranking(store: Store) -> None:
    """MaxScore skips postings, never results: the same rows and scores as ranking all."""
    import random

    rng = random.Random(7)
    words = [f"w{i}" for i in range(60)]
    weights = [1 / (i + 1) for i in range(60)]  # Zipf: a few words are everywhere
    store.add(
        [
            DocumentInput(f"z{i}", " ".join(rng.choices(words, weights, k=rng.randint(3, 40))))
            for i in range(400)
        ]
    )
    store.delete([f"z{i}" for i in range(0, 400, 7)])  # the ledgers net out deletions
    with store.session() as session:
        for _ in range(40):
            query = " ".join(rng.sample(words[:30], rng.randint(1, 6)))
            k = rng.choice([1, 5, 10, 50])
            terms = session.execute(
                text("SELECT pgsearch.query_lexemes('english', :q)"), {"q": query}
            ).scalar()
            full = session.execute(
                text(
                    "SELECT chunk_id, score FROM pgsearch.bm25_ranking(:t, 1.2, 0.75, 2)"
                    " ORDER BY score DESC, chunk_id LIMIT :k"
                ),
                {"t": terms, "k": k},
            ).all()
            top = session.execute(
                text("SELECT chunk_id, score FROM pgsearch.bm25_top(:t, :k, 1.2, 0.75, 2)"),
                {"t": terms, "k": k},
            ).all()
            assert [r.chunk_id for r in top] == [r.chunk_id for r in full], query
            assert [r.score for r in top] == pytest.approx([r.score for r in full]), query


def test_the_ledgers_fold_themselves_after_a_thousand_writes(
    store: Store, url: URL, libpq: Callable[[URL], str]
) -> None:
    store.add([DocumentInput("seed", "cats and dogs")])
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for i in range(1_100):  # one write statement each: one ledger row each
            conn.execute(
                "INSERT INTO pgsearch.chunks (document_id, position, content, content_hash,"
                " embedding) SELECT id, %s, 'more cats', 'h', array_fill(0.1, ARRAY[16])::vector"
                " FROM pgsearch.documents WHERE external_id = 'seed'",
                (i + 1,),
            )
        rows = conn.execute("SELECT count(*) FROM pgsearch.bm25_totals").fetchone()
    assert rows is not None and rows[0] <= 1001
    ledger, recount = _ledger_and_recount(store)
    assert ledger == recount
    with store.session() as session:  # the frequencies were folded with the totals
        per_word = session.execute(
            text("SELECT count(*) FROM pgsearch.bm25_frequencies WHERE lexeme = 'cat'")
        ).scalar()
    assert per_word is not None and per_word < 1_000


def test_a_selective_filter_scores_only_its_chunks_with_the_same_results(store: Store) -> None:
    store.add(
        [
            DocumentInput(
                f"f{i}",
                f"cats and dogs {'purr' if i % 3 else 'bark'} note {i}",
                metadata={"group": "rare" if i % 50 == 0 else "common"},
            )
            for i in range(500)
        ]
    )
    store.optimize()
    rare = {"group": "rare"}
    for mode in ("text", "bm25", "hybrid"):
        # exact_threshold 0: no filter counts as selective, every chunk holding a word is
        # ranked and then filtered; the default routes this 2 % filter to scoring its chunks.
        # (exact: hybrid's vector leg takes the exact path both times.)
        exact = mode == "hybrid"
        ranked = store.search("cats purr", 5, mode, filter=rare, exact_threshold=0, exact=exact)
        scored = store.search("cats purr", 5, mode, filter=rare, exact=exact)
        assert [(r.chunk_id, r.score) for r in scored] == [
            (r.chunk_id, pytest.approx(r.score)) for r in ranked
        ]
        assert {r.metadata["group"] for r in scored} == {"rare"}
        assert scored.estimated_rows is not None and scored.estimated_rows < 100
    compiled = {
        selective: str(prepared.text('{"group": "rare"}', "any", True, selective))
        for selective in (False, True)
    }
    assert "bm25_scores" in compiled[True] and "bm25_ranking" not in compiled[True]
    assert "bm25_ranking" in compiled[False]
    # Which BM25 function each routing runs: the statements SQLAlchemy sends.
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        for threshold, function in ((0, "bm25_ranking"), (10_000, "bm25_scores")):
            sent.clear()
            store.search("cats purr", 5, "text", filter=rare, exact_threshold=threshold)
            assert next(s for s in sent if "pgsearch.bm25_" in s).count(function) == 1, sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_hybrid_leaves_out_the_commonest_words_beyond_max_postings(store: Store) -> None:
    # "common" is in every chunk, "shared" in a third, "rare" in two.
    store.add(
        [
            DocumentInput(
                f"m{i}",
                " ".join(["common note", "shared" if i % 3 == 0 else "", "rare" if i < 2 else ""]),
            )
            for i in range(60)
        ]
    )
    with store.session() as session:

        def cutoff(terms: list[str], budget: int | None) -> list[str]:
            return list(
                session.execute(
                    text("SELECT pgsearch.bm25_common_cutoff(:t, :b)"), {"t": terms, "b": budget}
                ).scalar_one()
            )

        everything = ["common", "share", "rare", "absent"]
        assert cutoff(everything, None) == everything  # no bound: the terms as given
        assert cutoff(everything, 1000) == ["rare", "share", "common"]  # rarest first
        assert cutoff(everything, 22) == ["rare", "share"]  # 2 + 20 postings
        assert cutoff(everything, 21) == ["rare"]
        assert cutoff(everything, 1) == ["rare"]  # the rarest always
        assert cutoff(["absent"], 10) == []

    query = "rare shared common"
    exact = store.search(query, 60, "hybrid", max_postings=None)
    bounded = store.search(query, 60, "hybrid", max_postings=22)
    # Exact BM25 gives every chunk a keyword score ("common" is everywhere); bounded, only
    # the chunks holding "rare" or "shared" have one.
    assert all(r.text_score is not None for r in exact)
    assert {r.external_id for r in bounded if r.text_score is not None} == {
        f"m{i}" for i in range(60) if i % 3 == 0 or i < 2
    }
    assert store.search(query, 60, "hybrid") == exact  # the default bound is far above 60
    with pytest.raises(InvalidSearchError, match="max_postings"):
        store.search(query, 5, "hybrid", max_postings=0)

    # The SQL function takes the same bound and returns the same rows.
    vector = "[" + ",".join(map(str, store.embedder.embed_query(query))) + "]"  # type: ignore[union-attr]
    with store.session() as session:
        rows = session.execute(
            text(
                "SELECT chunk_id, text_score FROM pgsearch.hybrid_search(:q, CAST(:v AS vector),"
                " 60, '{}', 60, 'convex', 0.5, 22)"
            ),
            {"q": query, "v": vector},
        ).all()
    assert [r.chunk_id for r in rows] == [r.chunk_id for r in bounded]
    assert [r.text_score for r in rows] == [r.text_score for r in bounded]
    with store.session() as session:
        unbounded = session.execute(
            text(
                "SELECT chunk_id FROM pgsearch.hybrid_search(:q, CAST(:v AS vector),"
                " 60, '{}', 60, 'convex', 0.5, NULL)"
            ),
            {"q": query, "v": vector},
        ).all()
        assert [r.chunk_id for r in unbounded] == [r.chunk_id for r in exact]
        with pytest.raises(DBAPIError, match="max_postings = 0"):
            session.execute(
                text(
                    "SELECT * FROM pgsearch.hybrid_search(:q, CAST(:v AS vector), 5,"
                    " '{}', 60, 'convex', 0.5, 0)"
                ),
                {"q": query, "v": vector},
            )


def test_bm25_top_stops_early_when_the_rare_terms_decide(store: Store) -> None:
    """MaxScore's early exit, exact: a few chunks hold rare words, every chunk common ones."""
    store.add(
        [
            DocumentInput(
                f"e{i}",
                "common filler words here"
                + (" zebra" if i < 3 else "")
                + (" yak" if 3 <= i < 13 else ""),
            )
            for i in range(300)
        ]
    )
    with store.session() as session:
        messages: list[str] = []
        dbapi: Any = session.connection().connection.dbapi_connection
        dbapi.add_notice_handler(lambda d: messages.append(str(d.message_primary)))
        session.execute(text("SET LOCAL client_min_messages = debug1"))
        for query, k, decided in (
            ("zebra common filler", 2, "holding 1 of 3 terms"),
            ("zebra yak common filler words", 5, "holding 2 of 5 terms"),
            ("common filler", 5, "every posting of the 2 terms"),
        ):
            terms = session.execute(
                text("SELECT pgsearch.query_lexemes('english', :q)"), {"q": query}
            ).scalar()
            messages.clear()
            top = session.execute(
                text("SELECT chunk_id, score FROM pgsearch.bm25_top(:t, :k, 1.2, 0.75, 1)"),
                {"t": terms, "k": k},
            ).all()
            exits = [m for m in messages if m.startswith("pgsearch.bm25_top")]
            assert len(exits) == 1 and decided in exits[0], (query, exits)
            full = session.execute(
                text(
                    "SELECT chunk_id, score FROM pgsearch.bm25_ranking(:t, 1.2, 0.75, 1)"
                    " ORDER BY score DESC, chunk_id LIMIT :k"
                ),
                {"t": terms, "k": k},
            ).all()
            assert [tuple(r) for r in top] == [tuple(r) for r in full], query
