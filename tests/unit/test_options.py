import pytest

from pgsearch.database import normalize_url
from pgsearch.exceptions import ConfigurationError, InvalidSearchError
from pgsearch.migrations import StoreOptions
from pgsearch.types import Distance, SearchMode


def test_plain_libpq_url_gets_psycopg_driver() -> None:
    url = normalize_url("postgresql://me:secret@db.example:5433/app")
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("db.example", 5433, "app", "me")


@pytest.mark.parametrize("url", ["mysql://x@y/z", "postgresql+psycopg2://x@y/z", "not a url"])
def test_other_drivers_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        normalize_url(url)


def test_modes_and_distances_parse() -> None:
    assert SearchMode.parse(" Hybrid ") is SearchMode.HYBRID
    assert Distance.parse("inner-product") is Distance.INNER_PRODUCT
    assert Distance.L2.operator == "<->" and Distance.COSINE.opclass == "vector_cosine_ops"
    with pytest.raises(InvalidSearchError, match="unknown search mode 'fuzzy'"):
        SearchMode.parse("fuzzy")
    with pytest.raises(ConfigurationError):
        Distance.parse("manhattan")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 0},
        {"dim": 2001},
        {"text_config": "english; DROP TABLE x"},
        {"model": " "},
        {"m": 1},
        {"m": 16, "ef_construction": 20},
    ],
)
def test_store_options_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        StoreOptions(**kwargs)  # type: ignore[arg-type]
