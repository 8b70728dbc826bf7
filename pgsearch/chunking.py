"""Recursive text chunking: pure functions, no database.

Text is cut on the coarsest boundary that yields pieces within the size budget (paragraphs,
then lines, then sentences, then words, then hard cuts), and the pieces are packed greedily into
chunks of at most ``max_chars`` characters. Consecutive chunks share up to ``overlap`` characters
of whole pieces, so a sentence cut at a chunk edge is still seen whole by one of them.

Chunks are slices of the original text (``text[start:end]``), stripped of surrounding space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgsearch.exceptions import ConfigurationError

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_OVERLAP", "ChunkingOptions", "TextChunk", "chunk_text"]

# all-MiniLM-L6-v2 reads at most 256 word pieces, about 1,000 characters of English prose:
# a longer chunk would be embedded only in part.
DEFAULT_MAX_CHARS = 1000
# Enough for one or two sentences of context carried across a cut.
DEFAULT_OVERLAP = 150

_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraphs
    re.compile(r"\n\s*"),  # lines
    re.compile(r"(?<=[.!?;:])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)


@dataclass(frozen=True)
class ChunkingOptions:
    """Size budget and overlap of chunks, in characters."""

    max_chars: int = DEFAULT_MAX_CHARS
    overlap: int = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ConfigurationError(f"chunk size {self.max_chars} must be positive")
        if not 0 <= self.overlap < self.max_chars:
            raise ConfigurationError(
                f"chunk overlap {self.overlap} must be at least 0 and below the chunk size "
                f"{self.max_chars}"
            )


@dataclass(frozen=True)
class TextChunk:
    """One chunk: its text, where it sits in the source, and how many chunks the source has."""

    text: str
    position: int
    count: int
    start: int
    end: int


# A piece is (start, end, strength of the boundary at its end: 0 = paragraph ... 4 = hard cut).
_Piece = tuple[int, int, int]


def _pieces(
    text: str, start: int, end: int, level: int, max_chars: int, end_strength: int
) -> list[_Piece]:
    """Contiguous pieces covering ``text[start:end]``, each at most ``max_chars`` long."""
    if end - start <= max_chars:
        return [(start, end, end_strength)]
    if level == len(_BOUNDARIES):
        cuts = list(range(start + max_chars, end, max_chars))
        bounds = zip([start, *cuts], [*cuts, end], strict=True)
        return [(s, e, level if e < end else end_strength) for s, e in bounds]
    cuts = [m.end() for m in _BOUNDARIES[level].finditer(text, start, end) if m.end() < end]
    if not cuts:
        return _pieces(text, start, end, level + 1, max_chars, end_strength)
    pieces: list[_Piece] = []
    for piece_start, piece_end in zip([start, *cuts], [*cuts, end], strict=True):
        if piece_end > piece_start:
            strength = level if piece_end < end else end_strength
            pieces.extend(_pieces(text, piece_start, piece_end, level + 1, max_chars, strength))
    return pieces


def _chunk_end(pieces: list[_Piece], first: int, max_chars: int, min_last: int) -> int:
    """Index of the last piece of the chunk that starts at piece ``first``.

    Take as many pieces as fit, then end at the strongest boundary found in the chunk's second
    half, so chunks end on paragraphs or sentences rather than mid-sentence where possible. The
    chunk ends at ``min_last`` or later, so it never lies wholly inside the previous chunk.
    """
    last = first
    while last + 1 < len(pieces) and pieces[last + 1][1] - pieces[first][0] <= max_chars:
        last += 1
    if last + 1 == len(pieces):
        return last
    best = last
    for j in range(last, max(first, min_last) - 1, -1):
        if pieces[j][1] - pieces[first][0] < max_chars // 2:
            break
        if pieces[j][2] < pieces[best][2]:
            best = j
    return best


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_text(text: str, options: ChunkingOptions | None = None) -> list[TextChunk]:
    """Split ``text`` into chunks of at most ``options.max_chars`` characters.

    Returns an empty list for text that is empty or only whitespace.
    """
    options = options or ChunkingOptions()
    pieces = _pieces(text, 0, len(text), 0, options.max_chars, 0)
    spans: list[tuple[int, int]] = []
    first = 0  # index of the first piece of the chunk being packed
    last = -1
    while first < len(pieces):
        last = _chunk_end(pieces, first, options.max_chars, last + 1)
        span = _strip_span(text, pieces[first][0], pieces[last][1])
        if span[1] > span[0]:
            spans.append(span)
        if last + 1 == len(pieces):
            break
        # Start the next chunk on the earliest piece that keeps the overlap within budget and
        # leaves room for a new piece, but after this chunk's first piece: packing moves forward.
        next_first = last + 1
        while (
            next_first - 1 > first
            and _strip_span(text, pieces[next_first - 1][0], pieces[last][1])[0] > span[0]
            and pieces[last][1] - pieces[next_first - 1][0] <= options.overlap
            and pieces[last + 1][1] - pieces[next_first - 1][0] <= options.max_chars
        ):
            next_first -= 1
        first = next_first
    return [
        TextChunk(text=text[s:e], position=i, count=len(spans), start=s, end=e)
        for i, (s, e) in enumerate(spans)
    ]
