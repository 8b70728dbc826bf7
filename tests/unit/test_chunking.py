import itertools
import random

import pytest

from pgsearch.chunking import ChunkingOptions, chunk_text

TEXT = (
    "Bees live in colonies. A colony has one queen.\n\n"
    "Workers gather nectar and pollen from flowers. They build wax comb and feed the larvae. "
    "Drones exist only to mate with a queen.\n\n"
    "Beekeepers harvest honey in late summer."
)


def test_short_text_is_one_chunk() -> None:
    chunks = chunk_text("Just one sentence.")
    assert [(c.text, c.position, c.count) for c in chunks] == [("Just one sentence.", 0, 1)]


def test_blank_text_has_no_chunks() -> None:
    assert chunk_text(" \n\t ") == []


@pytest.mark.parametrize("max_chars,overlap", [(40, 0), (60, 20), (100, 30), (25, 10)])
def test_chunks_respect_budget_and_cover_the_text(max_chars: int, overlap: int) -> None:
    chunks = chunk_text(TEXT, ChunkingOptions(max_chars, overlap))
    assert all(len(c.text) <= max_chars for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.count == len(chunks) for c in chunks)
    assert all(TEXT[c.start : c.end] == c.text for c in chunks)
    # Every non-space character of the source lies in some chunk, in order.
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(TEXT) if not ch.isspace())
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_prefers_paragraph_and_sentence_boundaries() -> None:
    chunks = chunk_text(TEXT, ChunkingOptions(max_chars=140, overlap=0))
    assert chunks[0].text == "Bees live in colonies. A colony has one queen."
    assert all(c.text[-1] in ".!?" for c in chunks)


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    chunks = chunk_text(TEXT, ChunkingOptions(max_chars=90, overlap=50))
    overlapping = [a for a, b in itertools.pairwise(chunks) if b.start < a.end]
    assert overlapping, "expected at least one pair of chunks to share text"
    for a, b in itertools.pairwise(chunks):
        assert b.start > a.start
        assert a.end - b.start <= 50


def test_words_longer_than_the_budget_are_cut_hard() -> None:
    chunks = chunk_text("x" * 25, ChunkingOptions(max_chars=10, overlap=0))
    assert [c.text for c in chunks] == ["x" * 10, "x" * 10, "x" * 5]


@pytest.mark.parametrize("max_chars,overlap", [(0, 0), (10, 10), (10, -1)])
def test_invalid_options_are_refused(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        ChunkingOptions(max_chars, overlap)


def _check_invariants(text: str, options: ChunkingOptions) -> None:
    chunks = chunk_text(text, options)
    assert all(0 < len(c.text) <= options.max_chars for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    covered: set[int] = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    for a, b in itertools.pairwise(chunks):
        assert b.start > a.start and b.end > a.end, "a chunk lies inside the previous one"


def test_large_overlap_never_repeats_a_chunk() -> None:
    text = "ggggg. " + "e" * 48 + ". " + "h" * 43 + " " + "a" * 25 + " " + "f" * 33
    _check_invariants(text, ChunkingOptions(100, 60))


def test_random_texts_keep_the_invariants() -> None:
    rng = random.Random(1234)
    separators = [" ", " ", " ", ". ", "\n", "\n\n", "! "]
    for _ in range(400):
        words = [
            "x" * rng.randint(1, 40) + rng.choice(separators) for _ in range(rng.randint(1, 60))
        ]
        max_chars = rng.randint(10, 300)
        _check_invariants("".join(words), ChunkingOptions(max_chars, rng.randint(0, max_chars - 1)))
