"""The OpenAI embedder against a local stand-in server that speaks the embeddings API."""

from __future__ import annotations

import base64
import itertools
import logging
import socket
import sys
import time
import types
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pgsearch.embedders import HashingEmbedder, load_embedder
from pgsearch.embedders import openai as openai_embedder
from pgsearch.embedders.openai import OpenAIEmbedder, estimate_tokens
from pgsearch.exceptions import ConfigurationError, EmbedderError
from tests.unit.openai_stub import Reply, StubServer, running_stub

SECRET = "sk-proj-Secret0123456789abcdefXYZ"


@pytest.fixture
def stand_in() -> Iterator[StubServer]:
    with running_stub() as server:
        yield server


@pytest.fixture
def estimated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count tokens with the estimate even where tiktoken and its files are installed."""
    monkeypatch.setattr(openai_embedder, "_tiktoken_counter", lambda model: None)


def _expected(texts: list[str]) -> Any:
    return HashingEmbedder(8).embed_documents(texts)


def _embedder(server: StubServer, **options: Any) -> OpenAIEmbedder:
    """An embedder on the stand-in that records its sleeps in ``embedder.sleeps``."""
    sleeps: list[float] = []
    options.setdefault("dimensions", 8)
    options.setdefault("sleep", sleeps.append)
    embedder = OpenAIEmbedder(client=options.pop("client", None) or server.client(), **options)
    embedder.sleeps = sleeps  # type: ignore[attr-defined]
    return embedder


# -- the happy path ---------------------------------------------------------------------------


def test_batches_and_restores_input_order(stand_in: StubServer) -> None:
    embedder = OpenAIEmbedder(
        "text-embedding-3-small", dimensions=8, batch_size=2, client=stand_in.client()
    )
    texts = ["bees make honey", "postgres mvcc", "sourdough", "rovers on mars", "jazz"]
    vectors = embedder.embed_documents(texts)
    assert [len(r["input"]) for r in stand_in.requests] == [2, 2, 1]
    assert all(
        r["dimensions"] == 8 and r["model"] == "text-embedding-3-small" for r in stand_in.requests
    )
    assert np.allclose(vectors, _expected(texts), atol=1e-6)
    assert np.allclose(embedder.embed_query("jazz"), vectors[4], atol=1e-6)
    assert (embedder.name, embedder.dimension) == ("openai/text-embedding-3-small@8", 8)


def test_answers_in_numbers_are_accepted_too(stand_in: StubServer) -> None:
    # Asked for base64, a server that ignores encoding_format answers lists of numbers.
    stand_in.floats_only = True
    texts = ["bees make honey", "jazz"]
    vectors = _embedder(stand_in).embed_documents(texts)
    assert stand_in.requests[0]["encoding_format"] == "base64"
    assert np.allclose(vectors, _expected(texts), atol=1e-6)


def test_nothing_to_embed_sends_nothing(stand_in: StubServer) -> None:
    embedder = _embedder(stand_in)
    assert embedder.embed_documents([]).shape == (0, 8)
    assert list(embedder.embed_batches([])) == []
    assert stand_in.requests == []


def test_default_client_reads_the_environment_without_retries(
    stand_in: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", stand_in.key)
    monkeypatch.setenv("OPENAI_BASE_URL", stand_in.base_url)
    embedder = OpenAIEmbedder(dimensions=8, timeout=12.5)
    assert np.allclose(embedder.embed_documents(["jazz"]), _expected(["jazz"]), atol=1e-6)
    client: Any = embedder._api
    assert (client.max_retries, client.timeout) == (0, 12.5)


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as info:
        OpenAIEmbedder(dimensions=8).embed_documents(["x"])
    assert info.value.__context__ is None


def test_spec_and_unknown_models() -> None:
    embedder = load_embedder("openai:text-embedding-3-large")
    assert (embedder.name, embedder.dimension) == ("openai/text-embedding-3-large", 3072)
    with pytest.raises(ConfigurationError, match="dimensions="):
        OpenAIEmbedder("my-own-model")
    with pytest.raises(ConfigurationError, match="max_input_tokens"):
        OpenAIEmbedder(max_input_tokens=10, max_request_tokens=5)
    with pytest.raises(ConfigurationError, match="backoff"):
        OpenAIEmbedder(backoff=5, max_backoff=1)


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": formatdate(1_700_000_007, usegmt=True)}, 7.0),
        ({"Retry-After": "600"}, 20.0),  # capped at max_backoff
        ({"Retry-After": "whenever"}, 0.5),  # not understood: the jittered backoff
        ({}, 0.5),
    ],
)
def test_rate_limit_waits_as_told_then_succeeds(
    stand_in: StubServer, headers: dict[str, str], expected: float
) -> None:
    stand_in.replies.append(Reply(429, headers=headers))
    embedder = _embedder(
        stand_in, max_backoff=20.0, backoff=1.0, jitter=lambda: 0.5, clock=lambda: 1_700_000_000
    )
    vectors = embedder.embed_documents(["bees", "jazz"])
    assert np.allclose(vectors, _expected(["bees", "jazz"]), atol=1e-6)
    assert len(stand_in.requests) == 2
    assert embedder.sleeps == pytest.approx([expected])  # type: ignore[attr-defined]


def test_server_error_storm_gives_up_after_max_retries(
    stand_in: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.respond = lambda request: Reply(500)
    draws = iter([0.999, 0.5, 0.0, 0.25])
    embedder = _embedder(
        stand_in, max_retries=4, backoff=0.5, max_backoff=3.0, jitter=lambda: next(draws)
    )
    with (
        caplog.at_level(logging.WARNING, logger="pgsearch"),
        pytest.raises(EmbedderError, match=r"failed 5 attempts for inputs 0-1 .*HTTP 500"),
    ):
        embedder.embed_documents(["bees", "jazz"])
    assert len(stand_in.requests) == 5
    # Full jitter: a uniform draw times min(max_backoff, backoff * 2 ** (retry - 1)).
    ceilings = [0.5, 1.0, 2.0, 3.0]
    expected = [0.999 * 0.5, 0.5 * 1.0, 0.0 * 2.0, 0.25 * 3.0]
    assert embedder.sleeps == pytest.approx(expected)  # type: ignore[attr-defined]
    assert all(0 <= s <= c for s, c in zip(embedder.sleeps, ceilings, strict=True))  # type: ignore[attr-defined]
    assert [r.getMessage().split("; ")[1] for r in caplog.records] == [
        f"attempt {n} of 5 in {s:.2f} s" for n, s in zip(range(2, 6), expected, strict=True)
    ]


def test_default_jitter_stays_within_the_backoff_bounds(stand_in: StubServer) -> None:
    stand_in.respond = lambda request: Reply(503)
    embedder = _embedder(stand_in, max_retries=6, backoff=0.1, max_backoff=2.0)
    with pytest.raises(EmbedderError, match="7 attempts"):
        embedder.embed_documents(["x"])
    ceilings = [min(2.0, 0.1 * 2**i) for i in range(6)]
    sleeps = embedder.sleeps  # type: ignore[attr-defined]
    assert len(sleeps) == 6
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_slow_answer_times_out_is_retried_then_fails(stand_in: StubServer) -> None:
    stand_in.respond = lambda request: Reply(delay=5.0)
    embedder = _embedder(stand_in, timeout=0.2, max_retries=2)
    started = time.monotonic()
    with pytest.raises(EmbedderError, match=r"3 attempts.*no answer within 0\.2 s"):
        embedder.embed_documents(["x"])
    assert time.monotonic() - started < 4.0  # it gave up on the server, it did not wait
    assert len(stand_in.requests) == 3
    assert len(embedder.sleeps) == 2  # type: ignore[attr-defined]


def test_slow_answer_is_retried_then_succeeds(stand_in: StubServer) -> None:
    stand_in.replies.append(Reply(delay=5.0))
    embedder = _embedder(stand_in, timeout=0.2)
    assert np.allclose(embedder.embed_documents(["x"]), _expected(["x"]), atol=1e-6)
    assert len(stand_in.requests) == 2


def test_refused_connection_is_retried_then_fails() -> None:
    with socket.socket() as probe:  # a port that nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from openai import OpenAI

    client = OpenAI(api_key="test-key", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    sleeps: list[float] = []
    embedder = OpenAIEmbedder(dimensions=8, client=client, max_retries=2, sleep=sleeps.append)
    with pytest.raises(EmbedderError, match=r"3 attempts.*cannot connect"):
        embedder.embed_documents(["x"])
    assert len(sleeps) == 2


def test_the_client_s_own_retries_are_turned_off(stand_in: StubServer) -> None:
    stand_in.respond = lambda request: Reply(500)
    embedder = _embedder(stand_in, client=stand_in.client(max_retries=5), max_retries=0)
    with pytest.raises(EmbedderError, match="failed 1 attempt for input 0"):
        embedder.embed_documents(["x"])
    assert len(stand_in.requests) == 1


def test_server_may_forbid_a_retry(stand_in: StubServer) -> None:
    error = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota"}}
    stand_in.replies.append(Reply(429, body=error, headers={"x-should-retry": "false"}))
    with pytest.raises(EmbedderError, match=r"HTTP 429\): You exceeded your current quota\."):
        _embedder(stand_in).embed_documents(["x"])
    assert len(stand_in.requests) == 1


# -- refusals and the API key -----------------------------------------------------------------


def test_bad_key_is_a_clear_error(stand_in: StubServer) -> None:
    embedder = _embedder(stand_in, client=stand_in.client(key="wrong"))
    with pytest.raises(EmbedderError, match=r"refused the credentials \(HTTP 401\).*OPENAI_API"):
        embedder.embed_documents(["x"])
    assert len(stand_in.requests) == 1  # never retried


def test_forbidden_is_a_credentials_error(stand_in: StubServer) -> None:
    stand_in.replies.append(Reply(403))
    with pytest.raises(EmbedderError, match=r"HTTP 403.*OPENAI_API_KEY"):
        _embedder(stand_in).embed_documents(["x"])


def test_bad_request_quotes_the_server_and_names_the_inputs(stand_in: StubServer) -> None:
    error = {"error": {"message": "The model `nope` does not exist", "type": "invalid_request"}}
    stand_in.respond = lambda request: Reply(400, body=error, headers={"x-request-id": "req_42"})
    embedder = _embedder(stand_in, batch_size=2)
    with pytest.raises(EmbedderError) as info:
        embedder.embed_documents(["a", "b", "c"])
    assert str(info.value) == (
        "the embeddings API refused the request for inputs 0-1 (model text-embedding-3-small) "
        "(HTTP 400, request id req_42): The model `nope` does not exist; check the model name "
        "and dimensions=, and that no input is too long for the model"
    )
    assert len(stand_in.requests) == 1


def _everything_said(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    chained = [error.__cause__, error.__context__]
    return "\n".join(
        [str(error), repr(error), *map(repr, chained), *(r.getMessage() for r in caplog.records)]
    )


@pytest.mark.parametrize("status", [401, 400, 500])
def test_the_api_key_never_shows(status: int, caplog: pytest.LogCaptureFixture) -> None:
    with running_stub(key=SECRET) as server:
        if status == 401:
            client = server.client(key=SECRET + "-wrong")
            secret = SECRET + "-wrong"  # the stand-in echoes the key it was sent
        else:
            client, secret = server.client(), SECRET
            echo = {"error": {"message": f"Request with key {SECRET} (Bearer {SECRET}) failed"}}
            server.respond = lambda request: Reply(status, body=echo)
        embedder = _embedder(server, client=client, max_retries=2)
        with (
            caplog.at_level(logging.DEBUG),
            pytest.raises(EmbedderError) as info,
        ):
            embedder.embed_documents(["x"])
    said = _everything_said(info.value, caplog)
    assert secret not in said
    assert "Secret0123456789" not in said
    assert secret not in repr(embedder)
    if status != 401:
        assert "[api key]" in str(info.value)
        assert len([r for r in caplog.records if r.name.startswith("pgsearch")]) == (
            2 if status == 500 else 0
        )


# -- malformed answers ------------------------------------------------------------------------


def test_missing_embeddings_are_refused(stand_in: StubServer) -> None:
    stand_in.replies.append(Reply(edit=lambda body: body["data"].pop()))
    embedder = _embedder(stand_in)
    with pytest.raises(EmbedderError, match="1 embeddings for 2 inputs"):
        embedder.embed_documents(["a", "b"])
    assert len(stand_in.requests) == 1  # a malformed answer is not retried


def test_wrong_dimension_from_the_server_is_refused(stand_in: StubServer) -> None:
    # The model is known as 1536-dimensional, but this server answers 8 dimensions.
    embedder = OpenAIEmbedder("text-embedding-3-small", client=stand_in.client())
    with pytest.raises(
        EmbedderError, match="a vector of 8 values at index 0, expected 1536; pass dimensions=8"
    ):
        embedder.embed_documents(["a"])


def _set(index: int, key: str, value: Any) -> Any:
    def edit(body: dict[str, Any]) -> None:
        item = next(item for item in body["data"] if item["index"] == index)
        if value is _DELETE:
            del item[key]
        else:
            item[key] = value

    return edit


_DELETE = object()
_FLOATS_6 = base64.b64encode(np.zeros(6, dtype="<f4").tobytes()).decode()


@pytest.mark.parametrize(
    ("edit", "floats", "message"),
    [
        (lambda body: body["data"].append(dict(body["data"][0])), False, "3 embeddings for 2"),
        (_set(1, "index", 0), False, "index 0 twice"),
        (_set(1, "index", 7), False, "an embedding whose index is 7"),
        (_set(1, "index", "1"), False, "an embedding whose index is '1'"),
        (_set(1, "index", _DELETE), False, "an embedding whose index is None"),
        (_set(1, "embedding", _DELETE), False, "no vector at index 1"),
        (_set(1, "embedding", ["0.1"] * 8), True, "non-numeric values at index 1"),
        (_set(1, "embedding", [[0.1]] * 8), True, "non-numeric values at index 1"),
        (_set(1, "embedding", [0.1, [0.2]] * 4), True, "non-numeric values at index 1"),
        (_set(1, "embedding", [0.1] * 7), True, "a vector of 7 values at index 1, expected 8"),
        (_set(1, "embedding", [float("nan")] * 8), True, "NaN or infinite values at index 1"),
        (_set(1, "embedding", "not base64!"), False, "a vector at index 1 that is not base64"),
        (_set(1, "embedding", "AAAAAAA="), False, "a vector at index 1 of 5 bytes"),
        (_set(1, "embedding", _FLOATS_6), False, "a vector of 6 values at index 1"),
        (lambda body: body.pop("data"), False, "no list of embeddings"),
        (lambda body: body.update(data=None), False, "no list of embeddings"),
        (lambda body: body.update(data="abc"), False, "no list of embeddings"),
    ],
)
def test_malformed_answers_are_refused(
    stand_in: StubServer, edit: Any, floats: bool, message: str
) -> None:
    stand_in.floats_only = floats
    stand_in.replies.append(Reply(edit=edit))
    with pytest.raises(EmbedderError, match=f"answered inputs 0-1 .*{message}"):
        _embedder(stand_in).embed_documents(["a", "b"])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"<html>Bad gateway</html>", "text/html"), (b"{not json", "application/json")],
)
def test_an_answer_that_is_not_json_is_refused(
    stand_in: StubServer, body: bytes, content_type: str
) -> None:
    stand_in.replies.append(Reply(body=body, content_type=content_type))
    with pytest.raises(EmbedderError, match="answered inputs 0-1"):
        _embedder(stand_in).embed_documents(["a", "b"])


# -- batching by tokens -----------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def test_requests_stay_within_the_token_budget(stand_in: StubServer) -> None:
    texts = [" ".join(["w"] * n) + f" t{i}" for i, n in enumerate([3, 8, 1, 9, 2, 2, 2, 5, 4, 6])]
    embedder = _embedder(
        stand_in, count_tokens=_words, max_input_tokens=10, max_request_tokens=12, batch_size=3
    )
    batches = list(embedder.embed_batches(texts))
    sent = [request["input"] for request in stand_in.requests]
    assert [x for request in sent for x in request] == texts
    assert all(len(request) <= 3 and sum(map(_words, request)) <= 12 for request in sent)
    # Greedy: each request stops only where the next text would break a limit.
    for request, following in itertools.pairwise(sent):
        assert len(request) == 3 or sum(map(_words, request)) + _words(following[0]) > 12
    assert [positions for positions, _ in batches] == [
        range(0, 1), range(1, 3), range(3, 4), range(4, 7), range(7, 9), range(9, 10),
    ]  # fmt: skip
    vectors = np.concatenate([vectors for _, vectors in batches])
    assert np.allclose(vectors, _expected(texts), atol=1e-6)


@pytest.mark.usefixtures("estimated")
def test_without_a_tokenizer_requests_are_bounded_by_utf8_bytes(stand_in: StubServer) -> None:
    texts = ["honeybees pollinate crops", "向量检索查找相似的文档", "jazz", "sourdough " * 5] * 4
    embedder = _embedder(stand_in, max_input_tokens=30, max_request_tokens=80)
    embedder.embed_documents(texts)
    sent = [request["input"] for request in stand_in.requests]
    assert [x for request in sent for x in request] == texts
    for request in sent:  # tokens <= UTF-8 bytes for any byte-level BPE
        assert sum(len(text.encode()) for text in request) <= 80


@pytest.mark.usefixtures("estimated")
def test_an_over_long_input_is_refused_by_position_before_any_request(
    stand_in: StubServer,
) -> None:
    long_text = "The committee met again. " * 1500
    embedder = _embedder(stand_in, batch_size=2)
    with pytest.raises(EmbedderError) as info:
        embedder.embed_batches(["short", "also short", long_text, "after"])
    assert str(info.value) == (
        f"input 2 of 4 holds about {estimate_tokens(long_text)} tokens ({len(long_text)} "
        "characters), more than the 8191 the model text-embedding-3-small accepts: split it "
        "into smaller chunks, or pass truncate=True to embed its beginning only"
    )
    assert stand_in.requests == []


def test_an_over_long_input_is_cut_when_asked(
    stand_in: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["a b c", "w " * 200 + "end"]
    embedder = _embedder(stand_in, truncate=True, count_tokens=_words, max_input_tokens=50)
    with caplog.at_level(logging.WARNING, logger="pgsearch"):
        vectors = embedder.embed_documents(texts)
    sent = stand_in.requests[0]["input"]
    assert sent[0] == texts[0]
    assert texts[1].startswith(sent[1])
    assert _words(sent[1]) == 50 and _words(texts[1][: len(sent[1]) + 1]) == 51
    assert np.allclose(vectors, _expected(sent), atol=1e-6)
    assert "input 1 of 2 holds about 201 tokens, more than 50" in caplog.text


def test_empty_input_is_refused(stand_in: StubServer) -> None:
    with pytest.raises(EmbedderError, match="input 1 of 2 is empty"):
        _embedder(stand_in).embed_documents(["a", ""])
    assert stand_in.requests == []


def test_tiktoken_counts_only_when_its_file_is_cached(
    stand_in: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loaded: list[str] = []

    class Encoding:
        def encode(self, text: str, disallowed_special: Any = "all") -> list[int]:
            return [0] * len(text)  # one token per character: easy to tell from the estimate

    def get_encoding(name: str) -> Encoding:
        loaded.append(name)
        return Encoding()

    fake = types.ModuleType("tiktoken")
    fake.encoding_name_for_model = lambda model: "cl100k_base"  # type: ignore[attr-defined]
    fake.get_encoding = get_encoding  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    text = "word " * 20  # 100 characters, an estimate of 41 tokens

    with pytest.raises(EmbedderError, match=f"holds about {estimate_tokens(text)} tokens"):
        _embedder(stand_in, max_input_tokens=30).embed_batches([text])
    assert loaded == []  # no file: tiktoken was never asked to fetch one

    import hashlib

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()).write_bytes(b"")
    with pytest.raises(EmbedderError, match="holds about 100 tokens"):
        _embedder(stand_in, max_input_tokens=30).embed_batches([text])
    assert loaded == ["cl100k_base"]


# Counts measured offline with cl100k_base and o200k_base (the bpe-openai package).
@pytest.mark.parametrize(
    ("text", "cl100k", "o200k"),
    [
        ("Honeybees pollinate crops, and a third of what we eat depends on them.", 19, 18),
        (
            "def embed(texts: list[str]) -> list[list[float]]:\n"
            "    return [model(t) for t in texts]\n",
            24,
            25,
        ),
        ("id,year,price\n1,2019,12.50\n2,2020,13.75\n3,2021,9.99\n", 33, 33),
        ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", 39, 39),
        ("| model | dims |\n|---|---|\n| small | 1536 |\n| large | 3072 |\n", 24, 24),
        ("See https://example.com/docs/search?q=vector&page=2#results for details.", 18, 18),
        ("向量检索通过计算向量之间的距离来查找相似的文档。", 27, 20),
        ("ベクトル検索は類似した文書を見つける。", 24, 16),
        ("वेक्टर खोज समान दस्तावेज़ ढूंढती है।", 41, 15),
        ("يجد البحث المتجهي المستندات المتشابهة.", 24, 14),
        ("Векторный поиск находит похожие документы.", 17, 10),
        ("Ship it 🚀🎉 — then measure, don\u2019t guess\u2026", 16, 14),
        ("        if x:\n            return y\n\n\n", 8, 8),
    ],
)
def test_the_estimate_is_at_least_the_true_count(text: str, cl100k: int, o200k: int) -> None:
    assert estimate_tokens(text) >= max(cl100k, o200k)
    assert estimate_tokens(text) <= 3 * max(cl100k, o200k)


def test_the_estimate_is_at_most_the_utf8_bytes_for_ordinary_text() -> None:
    for text in ["Honeybees pollinate crops.", "向量检索", "x = 1\n", "a" * 100]:
        assert 0 < estimate_tokens(text) <= len(text.encode())


# -- partial progress -------------------------------------------------------------------------


def test_batches_before_a_failure_are_yielded_first(stand_in: StubServer) -> None:
    texts = ["bees make honey", "postgres mvcc", "sourdough", "rovers on mars"]
    stand_in.respond = lambda request: Reply(503) if "sourdough" in request["input"] else None
    embedder = _embedder(stand_in, batch_size=2, max_retries=2)
    received: list[tuple[range, Any]] = []
    with pytest.raises(EmbedderError, match=r"failed 3 attempts for inputs 2-3 .*HTTP 503"):
        for positions, vectors in embedder.embed_batches(texts):
            received.append((positions, vectors))
    assert [positions for positions, _ in received] == [range(0, 2)]
    assert received[0][1].dtype == np.float32
    assert np.allclose(received[0][1], _expected(texts[:2]), atol=1e-6)
    assert len(stand_in.requests) == 1 + 3  # the first batch is not sent again
    stand_in.requests.clear()
    with pytest.raises(EmbedderError, match="inputs 2-3"):
        embedder.embed_documents(texts)
