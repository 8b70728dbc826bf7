"""A stand-in for the OpenAI embeddings API: a local HTTP server whose answers tests script.

It speaks ``POST /v1/embeddings`` on 127.0.0.1 like the real API: it checks the bearer key
(answering 401 with the key it was given echoed back, worse than the real API does), embeds with
:class:`HashingEmbedder` (``dimensions``, default 8), answers base64 when asked for it, and lists
the embeddings in reverse order (the API does not promise input order; ``index`` does). Tests
queue :class:`Reply` objects in ``replies``, or set ``respond`` to decide per request.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from openai import OpenAI

from pgsearch.embedders import HashingEmbedder

__all__ = ["Reply", "StubServer", "embeddings_body", "running_stub"]


@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        status: HTTP status.
        body: JSON to send (bytes are sent as they are); ``None``: the normal answer for a 200,
            an error object naming the status otherwise.
        headers: Extra response headers (``Retry-After``...).
        delay: Seconds to wait before answering (cut short when the server closes).
        edit: Changes the normal answer's body before it is sent (a malformed answer).
        content_type: The ``Content-Type`` header.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    edit: Callable[[dict[str, Any]], None] | None = None
    content_type: str = "application/json"


def embeddings_body(
    request: dict[str, Any], *, floats: bool = False, reverse: bool = True
) -> dict[str, Any]:
    """The answer the real API gives to ``request``, with hashing-embedder vectors."""
    texts = request["input"]
    vectors = HashingEmbedder(request.get("dimensions", 8)).embed_documents(texts)
    as_base64 = request.get("encoding_format") == "base64" and not floats
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": (
                base64.b64encode(vectors[i].astype("<f4").tobytes()).decode()
                if as_base64
                else [float(x) for x in np.asarray(vectors[i], dtype=np.float64)]
            ),
        }
        for i in range(len(texts))
    ]
    if reverse:
        data.reverse()
    return {
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
    }


class StubServer(ThreadingHTTPServer):
    """The stand-in server; see the module docstring.

    Attributes:
        key: The API key it accepts.
        requests: The JSON body of every embeddings request it received, in order (refused and
            failed ones too: one per attempt).
        replies: Scripted answers, used one per request before ``respond`` and the normal one.
        respond: Called with each request's body when ``replies`` is empty; a ``Reply``, or
            ``None`` for the normal answer.
        floats_only: Answer lists of numbers even when base64 is asked for.
        answer_reversed: List the embeddings in reverse input order.
    """

    daemon_threads = True  # a handler still sleeping on a delay must not hold up the close

    def __init__(self, key: str = "test-key") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.replies: deque[Reply] = deque()
        self.respond: Callable[[dict[str, Any]], Reply | None] | None = None
        self.floats_only = False
        self.answer_reversed = True
        self.closing = threading.Event()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def client(self, key: str | None = None, **options: Any) -> OpenAI:
        """An OpenAI client pointed at this server (its own retries off unless asked)."""
        options.setdefault("max_retries", 0)
        return OpenAI(api_key=key or self.key, base_url=self.base_url, **options)

    def next_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.replies:
                return self.replies.popleft()
        reply = self.respond(request) if self.respond is not None else None
        return reply or Reply()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its socket; writing the late answer fails.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str], content_type: str) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/embeddings":
            self._send(404, {"error": {"message": "not found"}}, {}, "application/json")
            return
        presented = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if presented != self.server.key:
            with self.server._lock:
                self.server.requests.append(request)
            error = {
                "message": f"Incorrect API key provided: {presented}.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            self._send(401, {"error": error}, {}, "application/json")
            return
        reply = self.server.next_reply(request)
        if reply.delay:
            self.server.closing.wait(reply.delay)
        body = reply.body
        if body is None and reply.status == 200:
            body = embeddings_body(
                request, floats=self.server.floats_only, reverse=self.server.answer_reversed
            )
            if reply.edit is not None:
                reply.edit(body)
        elif body is None:
            body = {"error": {"message": f"stand-in error {reply.status}", "type": "error"}}
        self._send(reply.status, body, reply.headers, reply.content_type)


@contextmanager
def running_stub(key: str = "test-key") -> Iterator[StubServer]:
    """Serve a :class:`StubServer` in a thread for the duration of the block."""
    server = StubServer(key)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
