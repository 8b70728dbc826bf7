"""A small sample corpus written for pgsearch: short documents on varied topics."""

from pathlib import Path

__all__ = ["SAMPLE_CORPUS"]

SAMPLE_CORPUS = Path(__file__).with_name("corpus.jsonl")
