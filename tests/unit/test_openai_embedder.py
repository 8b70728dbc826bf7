"""The OpenAI embedder against a local stand-in server that speaks the embeddings API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from openai import OpenAI

from pgsearch.embedders import HashingEmbedder, load_embedder
from pgsearch.embedders.openai import OpenAIEmbedder
from pgsearch.exceptions import ConfigurationError, EmbedderError, EmbeddingMismatchError


class StandIn(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    answer_reversed: bool = True
    drop_one: bool = False


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/embeddings":
            self._reply(404, {"error": {"message": "not found"}})
            return
        if self.headers.get("Authorization") != "Bearer test-key":
            self._reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
            return
        self.server.requests.append(request)
        dim = request.get("dimensions", 8)
        vectors = HashingEmbedder(dim).embed_documents(request["input"])
        data = [
            {"object": "embedding", "index": i, "embedding": vectors[i].tolist()}
            for i in range(len(request["input"]))
        ]
        if self.server.answer_reversed:
            data.reverse()  # the API does not promise input order; index does
        if self.server.drop_one:
            data = data[1:]
        self._reply(
            200,
            {
                "object": "list",
                "data": data,
                "model": request["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn(("127.0.0.1", 0), Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: StandIn, key: str = "test-key") -> OpenAI:
    host, port = server.server_address[:2]
    return OpenAI(api_key=key, base_url=f"http://{host!s}:{port}/v1", max_retries=0)


def test_batches_and_restores_input_order(stand_in: StandIn) -> None:
    embedder = OpenAIEmbedder(
        "text-embedding-3-small", dimensions=8, batch_size=2, client=_client(stand_in)
    )
    texts = ["bees make honey", "postgres mvcc", "sourdough", "rovers on mars", "jazz"]
    vectors = embedder.embed_documents(texts)
    assert [len(r["input"]) for r in stand_in.requests] == [2, 2, 1]
    assert all(
        r["dimensions"] == 8 and r["model"] == "text-embedding-3-small" for r in stand_in.requests
    )
    assert np.allclose(vectors, HashingEmbedder(8).embed_documents(texts), atol=1e-6)
    assert np.allclose(embedder.embed_query("jazz"), vectors[4], atol=1e-6)
    assert (embedder.name, embedder.dimension) == ("openai/text-embedding-3-small@8", 8)


def test_bad_key_is_a_clear_error(stand_in: StandIn) -> None:
    embedder = OpenAIEmbedder(dimensions=8, client=_client(stand_in, key="wrong"))
    with pytest.raises(EmbedderError, match="OPENAI_API_KEY"):
        embedder.embed_documents(["x"])


def test_missing_embeddings_are_refused(stand_in: StandIn) -> None:
    stand_in.drop_one = True
    embedder = OpenAIEmbedder(dimensions=8, client=_client(stand_in))
    with pytest.raises(EmbedderError, match="1 embeddings for 2 inputs"):
        embedder.embed_documents(["a", "b"])


def test_wrong_dimension_from_the_server_is_refused(stand_in: StandIn) -> None:
    # The model is known as 1536-dimensional, but this server answers 8 dimensions.
    embedder = OpenAIEmbedder("text-embedding-3-small", client=_client(stand_in))
    with pytest.raises(EmbeddingMismatchError, match="shape"):
        embedder.embed_documents(["a"])


def test_spec_and_unknown_models() -> None:
    embedder = load_embedder("openai:text-embedding-3-large")
    assert (embedder.name, embedder.dimension) == ("openai/text-embedding-3-large", 3072)
    with pytest.raises(ConfigurationError, match="dimensions="):
        OpenAIEmbedder("my-own-model")
