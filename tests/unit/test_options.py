from pathlib import Path

import pytest

from pgsearch.config import Settings
from pgsearch.database import normalize_url, resolve_url
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


def test_explicit_settings_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSEARCH_DATABASE_URL", "postgresql://env@host/db")
    monkeypatch.setenv("PGSEARCH_DATA_DIR", "/env/dir")
    monkeypatch.setenv("PGSEARCH_EMBEDDER", "hashing:8")
    from_env = Settings.from_env()
    assert (from_env.database_url, str(from_env.data_dir), from_env.embedder) == (
        "postgresql://env@host/db",
        "/env/dir",
        "hashing:8",
    )
    explicit = Settings.from_env(database_url="postgresql://arg@host/db", embedder="hashing:4")
    assert (explicit.database_url, explicit.embedder) == ("postgresql://arg@host/db", "hashing:4")
    assert resolve_url(settings=explicit).host == "host"
    assert resolve_url("postgresql://direct@other/db", settings=explicit).host == "other"


def test_without_a_url_the_default_data_dir_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGSEARCH_DATABASE_URL", "PGSEARCH_DATA_DIR", "PGSEARCH_EMBEDDER"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.database_url is None
    assert settings.data_dir.name == "pgsearch" and str(Path.home()) in str(settings.data_dir)
    assert settings.embedder == "sentence-transformers:all-MiniLM-L6-v2"
