"""Database URLs that cannot be used: a clear error that never shows the password."""

from __future__ import annotations

import pytest

from pgsearch.cli import main
from pgsearch.database import normalize_url
from pgsearch.exceptions import ConfigurationError

SECRET = "S3cretPW"

BAD_URLS = [
    f"alice:{SECRET}",  # no scheme: SQLAlchemy cannot parse it at all
    f"postgresql://alice:{SECRET}@db.example:abc/pgsearch",  # a port that is not a number
    f"postgresql://alice:{SECRET}@db.example:99999999999999999999/pgsearch",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_unusable_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        normalize_url(url)
    message = str(raised.value)
    assert "postgresql://user:password@host:5432/dbname" in message
    assert SECRET not in message
    assert url not in message


def test_another_driver_is_refused_without_the_password() -> None:
    with pytest.raises(ConfigurationError, match="'mysql'") as raised:
        normalize_url(f"mysql://alice:{SECRET}@db.example/pgsearch")
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("url", BAD_URLS)
def test_cli_reports_an_unusable_url_in_one_line_without_the_password(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGSEARCH_DATABASE_URL", url)
    assert main(["--embedder", "hashing:8", "status"]) == 1
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert out == ""
    assert err.startswith("pgsearch: error: ") and "the database URL" in err
    assert err.count("\n") == 1 and "Traceback" not in err

    monkeypatch.delenv("PGSEARCH_DATABASE_URL")
    assert main(["--database-url", url, "--embedder", "hashing:8", "search", "bees"]) == 1
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert err.count("\n") == 1 and "the database URL" in err
