"""A small sample corpus written for pgsearch: short documents on varied topics."""

from pathlib import Path

__all__ = ["SAMPLE_CORPUS", "SAMPLE_QUERIES"]

SAMPLE_CORPUS = Path(__file__).with_name("corpus.jsonl")

# Queries for `pgsearch demo`: one shares few words with its answer (meaning wins), one is
# keyword-heavy (full text wins), one mixes both.
SAMPLE_QUERIES = (
    "insects that help farmers grow food",
    "PostgreSQL VACUUM autovacuum",
    "robots exploring another planet",
)
