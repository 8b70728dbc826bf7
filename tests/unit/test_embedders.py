import numpy as np
import pytest

from pgsearch.embedders import HashingEmbedder, describe_embedder, load_embedder
from pgsearch.exceptions import ConfigurationError


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(32)
    a = embedder.embed_documents(["Bees make honey", "Bees make honey", ""])
    assert a.shape == (3, 32)
    assert np.allclose(a[0], a[1])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)


def test_hashing_embedder_shares_words() -> None:
    embedder = HashingEmbedder(256)
    query = embedder.embed_query("honey bees")
    near, far = embedder.embed_documents(["bees make honey", "databases use indexes"])
    assert float(query @ near) > float(query @ far)


def test_specs() -> None:
    assert describe_embedder("hashing:48") == ("hashing-48", 48)
    assert describe_embedder("sentence-transformers:all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2",
        384,
    )


@pytest.mark.parametrize("spec", ["minilm", "openai-ish:model", "hashing:", "hashing:abc"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        load_embedder(spec)
