"""Embeddings from the OpenAI embeddings API (or any server that speaks it).

The client reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` as usual; pass ``client=`` to share
one. Texts are sent in batches bounded by count and by tokens, failed requests are retried with
exponential backoff, and every answer is checked before a vector leaves this module. See
:class:`OpenAIEmbedder`.

Tokens are counted with ``tiktoken`` when it is installed and its encoding file is already on
disk (it is never downloaded from here); otherwise :func:`estimate_tokens` estimates them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import importlib
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import numpy as np

from pgsearch.embedders.base import Vectors, check_vectors
from pgsearch.exceptions import ConfigurationError, EmbedderError

__all__ = [
    "KNOWN_DIMENSIONS",
    "MAX_INPUT_TOKENS",
    "MAX_REQUEST_TOKENS",
    "OpenAIEmbedder",
    "estimate_tokens",
]

logger = logging.getLogger(__name__)

KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
#: The API's limit on one input of the ``text-embedding-*`` models (their context is 8,192
#: tokens; one is kept as margin).
MAX_INPUT_TOKENS = 8191
#: The API's limit on all inputs of one request, summed.
MAX_REQUEST_TOKENS = 300_000
_MAX_BATCH = 2048  # the API's limit on inputs per request

# Statuses worth another try, as the openai client itself retries them: request timeout,
# conflict (a lock timeout), rate limit, and every server error.
_RETRY_STATUSES = frozenset({408, 409, 429})
_SHOWN_CHARS = 300  # how much of a server's error message an EmbedderError quotes
_KEY_LIKE = re.compile(r"\b(sk|sess|rk)-[A-Za-z0-9_\-]{6,}")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")

# How cl100k_base and o200k_base cut text before BPE runs (their regexes, with \p{L} and \p{N}
# approximated by the standard library's classes): contractions, a letter run with at most one
# leading non-letter, groups of one to three digits, punctuation runs, whitespace runs.
_PIECE = re.compile(
    r"'(?:[sdmt]|ll|ve|re)"
    r"|(?:[^\r\n\w]|_)?[^\W\d_]+"
    r"|\d{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    re.IGNORECASE,
)
_TIKTOKEN_FILES = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _char_cost(char: str) -> float:
    """Tokens one character of a non-ASCII piece may cost (see :func:`estimate_tokens`)."""
    if char.isspace():
        return 0.5
    if char.isdigit():
        return 1 / 3
    if char.isalpha():
        return 1 / 3 if char.isascii() else len(char.encode()) / 2
    return 1.0 if char.isascii() else len(char.encode()) - 1.0


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text`` for OpenAI's byte-level BPE encodings, offline.

    The text is cut the way cl100k_base and o200k_base cut it before BPE runs (words with one
    leading character, groups of up to three digits, punctuation runs, whitespace runs). BPE
    never merges across those pieces, so each piece costs at least one token. Within a piece:
    ASCII words one token per three characters (English averages over four), whitespace one per
    two, ASCII punctuation one per character, non-ASCII letters half a token per UTF-8 byte
    (1.5 per CJK character; real text averages 1.0-1.2), other non-ASCII symbols one per UTF-8
    byte less one (3 per emoji).

    Measured against both encodings, the estimate is 1.5-2 times the true count for English
    prose, code and Markdown, exactly the count for numbers and CSV, and 1.3-5 times it for
    Chinese, Japanese, Hindi, Arabic and Russian text. It falls below the true count (to about
    0.6 of it) only for random strings: base64, long hex, random letters or rare CJK characters in
    random order. A flat UTF-8 bytes / 3 would be far less safe: a third of the count for a
    list of small numbers, 0.86 of it for Japanese or Hindi in cl100k_base.
    """
    total = 0
    for piece in _PIECE.findall(text):
        if piece.isascii():
            if piece.isspace():
                total += -(-len(piece) // 2)
            elif piece[-1].isalpha():
                total += -(-len(piece) // 3)
            elif piece[-1].isdigit():
                total += 1
            else:
                total += max(1, len(piece.strip()))
        else:
            total += max(1, math.ceil(sum(map(_char_cost, piece))))
    return total


def _utf8_length(text: str) -> int:
    # A byte-level BPE token covers at least one byte: this bounds any text's token count.
    return len(text.encode())


def _tiktoken_counter(model: str) -> Callable[[str], int] | None:
    """Exact counts from ``tiktoken``, if it is installed and has its encoding file on disk.

    tiktoken downloads an encoding on first use; pgsearch never lets it, since it runs where
    only package registries can be reached. The file is looked for where tiktoken caches it.
    """
    try:
        tiktoken = importlib.import_module("tiktoken")
        encoding_name = str(tiktoken.encoding_name_for_model(model))
    except Exception:  # not installed, or a model it does not know: estimate instead
        return None
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        default_dir = getattr(getattr(tiktoken, "load", None), "_default_cache_dir", None)
        if not callable(default_dir):
            return None
        cache_dir = str(default_dir())
    url = _TIKTOKEN_FILES.format(encoding_name)
    cached = os.path.join(cache_dir, hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest())
    if not cache_dir or not os.path.isfile(cached):
        return None
    try:
        encoding = tiktoken.get_encoding(encoding_name)
    except Exception:
        return None

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


@dataclass(frozen=True)
class _Failure:
    """What went wrong with one attempt at a request."""

    reason: str  # for messages and logs: a server's own words only through _quote
    retry: bool
    wait: float | None = None  # what the server asked for (Retry-After), in seconds


class OpenAIEmbedder:
    """Embeds through ``client.embeddings.create``, in bounded batches, with retries.

    **Batches.** A request carries at most ``batch_size`` texts and at most
    ``max_request_tokens`` tokens. Tokens are counted with ``count_tokens`` when given, else
    with ``tiktoken`` when it is installed and its encoding file is cached (never downloaded),
    else estimated: one input by :func:`estimate_tokens`, a request's total by its UTF-8 bytes,
    a bound that holds for any text. An input above ``max_input_tokens`` raises
    :class:`EmbedderError` naming its position and size before any request is sent, or, with
    ``truncate=True``, is cut to the longest prefix within the limit (logged as a warning).
    An empty input raises too: the API refuses empty strings.

    **Retries.** Rate limits (429), request timeouts and conflicts (408, 409), server errors
    (5xx), connection failures and timeouts are tried again, up to ``max_retries`` times, after
    a sleep drawn with full jitter: uniformly between 0 and ``min(max_backoff, backoff * 2 **
    (retry - 1))``. A ``retry-after-ms`` or ``Retry-After`` header (seconds or an HTTP date)
    replaces the draw, capped at ``max_backoff``. The client's own retries are turned off (a
    client passed in is used through ``with_options(max_retries=0)``), so this is the only
    retry policy; each attempt runs under the client timeout ``timeout`` (to connect, and
    between any two reads of the answer).

    **Errors.** Refused credentials (401, 403), a refused request (400, 404, 413, 422), an
    answer that does not hold one finite vector of ``dimension`` numbers per input, each index
    exactly once, and retries run out all raise :class:`EmbedderError`, saying what to do. No
    message, log line or ``repr`` includes the API key, and no error chains the client's
    exception, whose text quotes the server's answer verbatim.

    **Partial progress.** :meth:`embed_batches` yields each request's vectors as soon as they
    arrive, with the input positions they cover, so a caller can keep (cache) them when a later
    request fails; :meth:`embed_documents` collects them into one array.

    Args:
        model: Embedding model name (default ``text-embedding-3-small``).
        dimensions: Shortened output size (``text-embedding-3-*`` only); also required for
            models whose size pgsearch does not know.
        batch_size: Texts per request (the API accepts up to 2,048).
        client: An ``openai.OpenAI`` client; default: one built from the environment.
        timeout: Seconds one attempt may wait for the server.
        max_retries: Further attempts after the first; 0 gives up at the first failure.
        backoff: Upper bound, in seconds, of the first sleep; it doubles with each retry.
        max_backoff: Longest sleep between two attempts, in seconds.
        max_input_tokens: Most tokens one input may hold.
        max_request_tokens: Most tokens one request may hold, all inputs together.
        truncate: Cut inputs above ``max_input_tokens`` instead of refusing them.
        count_tokens: Exact token counter to use instead of tiktoken or the estimate.
        sleep: Called with the seconds to wait between attempts (tests pass a recorder).
        jitter: Returns a float in [0, 1) for the backoff draw.
        clock: Current time as a Unix timestamp, for ``Retry-After`` dates.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        batch_size: int = 256,
        client: Any = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_input_tokens: int = MAX_INPUT_TOKENS,
        max_request_tokens: int = MAX_REQUEST_TOKENS,
        truncate: bool = False,
        count_tokens: Callable[[str], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if dimensions is None and model not in KNOWN_DIMENSIONS:
            raise ConfigurationError(
                f"pgsearch does not know the size of OpenAI model {model!r}: pass dimensions="
            )
        if dimensions is not None and dimensions < 1:
            raise ConfigurationError(f"dimensions must be positive, got {dimensions}")
        if not 1 <= batch_size <= _MAX_BATCH:
            raise ConfigurationError(f"batch_size must be between 1 and {_MAX_BATCH}")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be positive, got {timeout}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, got {max_retries}")
        if not 0 <= backoff <= max_backoff:
            raise ConfigurationError(
                f"need 0 <= backoff <= max_backoff, got backoff={backoff}, "
                f"max_backoff={max_backoff}"
            )
        if not 1 <= max_input_tokens <= max_request_tokens:
            raise ConfigurationError(
                f"need 1 <= max_input_tokens <= max_request_tokens, got {max_input_tokens} "
                f"and {max_request_tokens}"
            )
        self._model = model
        self._dimensions = dimensions
        self._batch_size = batch_size
        self._client = client
        self._api: Any = None  # the client this embedder calls, its own retries off
        self._timeout = float(timeout)
        self._max_retries = max_retries
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._max_input_tokens = max_input_tokens
        self._max_request_tokens = max_request_tokens
        self._truncate = truncate
        self._count_tokens = count_tokens
        self._counters: tuple[Callable[[str], int], Callable[[str], int]] | None = None
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"OpenAIEmbedder(model={self._model!r}, dimensions={self._dimensions!r}, "
            f"batch_size={self._batch_size}, timeout={self._timeout}, "
            f"max_retries={self._max_retries})"
        )

    @property
    def name(self) -> str:
        """``openai/<model>``, with ``@<dimensions>`` when the output is shortened."""
        suffix = f"@{self._dimensions}" if self._dimensions is not None else ""
        return f"openai/{self._model}{suffix}"

    @property
    def dimension(self) -> int:
        """Vector length."""
        return self._dimensions or KNOWN_DIMENSIONS[self._model]

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[range, Vectors]]:
        """Embed texts request by request, yielding each request's vectors as they arrive.

        Every input is checked (and, with ``truncate=True``, cut) when this method is called,
        before any request is sent. The iterator then yields ``(positions, vectors)`` per
        request, in input order: ``positions`` is the range of indexes into ``texts`` it
        covers and ``vectors`` a float32 array of shape ``(len(positions), dimension)``.

        Raises:
            EmbedderError: An input is empty or too long (at the call), or a request failed
                for good (while iterating; the batches before it were yielded already).
        """
        inputs, batches = self._plan(texts)
        return self._run(inputs, batches)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed texts in as few requests as the limits allow; see :meth:`embed_batches`."""
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for positions, batch in self.embed_batches(texts):
            vectors[positions.start : positions.stop] = batch
        return check_vectors(vectors, len(texts), self.dimension, self.name)

    def embed_query(self, text: str) -> Vectors:
        """Embed one query."""
        query: Vectors = self.embed_documents([text])[0]
        return query

    # -- planning -------------------------------------------------------------------------

    def _token_counters(self) -> tuple[Callable[[str], int], Callable[[str], int]]:
        """How to count one input's tokens, and how to bound a request's."""
        if self._counters is None:
            exact = self._count_tokens or _tiktoken_counter(self._model)
            self._counters = (exact, exact) if exact else (estimate_tokens, _utf8_length)
        return self._counters

    def _plan(self, texts: Sequence[str]) -> tuple[list[str], list[range]]:
        """Check every input and cut the list into requests, each a range of positions."""
        per_input, per_request = self._token_counters()
        inputs = list(texts)
        batches: list[range] = []
        start = budget = 0
        for position, text in enumerate(inputs):
            if not isinstance(text, str) or not text:
                what = "empty" if isinstance(text, str) else f"a {type(text).__name__}"
                raise EmbedderError(
                    f"input {position} of {len(inputs)} is {what}: the embeddings API takes "
                    "non-empty strings only"
                )
            tokens = per_input(text)
            if tokens > self._max_input_tokens:
                if not self._truncate:
                    raise EmbedderError(
                        f"input {position} of {len(inputs)} holds about {tokens} tokens "
                        f"({len(text)} characters), more than the {self._max_input_tokens} "
                        f"the model {self._model} accepts: split it into smaller chunks, or "
                        "pass truncate=True to embed its beginning only"
                    )
                text = inputs[position] = self._cut(text, per_input)
                logger.warning(
                    "input %d of %d holds about %d tokens, more than %d: embedding its first "
                    "%d characters only (truncate=True)",
                    position,
                    len(inputs),
                    tokens,
                    self._max_input_tokens,
                    len(text),
                )
            cost = per_request(text)
            if position > start and (
                position - start >= self._batch_size or budget + cost > self._max_request_tokens
            ):
                batches.append(range(start, position))
                start, budget = position, 0
            budget += cost
        if start < len(inputs):
            batches.append(range(start, len(inputs)))
        return inputs, batches

    def _cut(self, text: str, count: Callable[[str], int]) -> str:
        """The longest prefix of ``text`` within ``max_input_tokens`` (by binary search)."""
        low, high = 1, len(text)  # the answer lies in [low - 1, high]
        while low <= high:
            middle = (low + high) // 2
            if count(text[:middle]) <= self._max_input_tokens:
                low = middle + 1
            else:
                high = middle - 1
        return text[: max(high, 1)]

    # -- requests -------------------------------------------------------------------------

    def _run(self, inputs: list[str], batches: list[range]) -> Iterator[tuple[range, Vectors]]:
        for positions in batches:
            response = self._request(inputs[positions.start : positions.stop], positions)
            yield positions, self._vectors(response, positions)

    def _client_or_default(self) -> Any:
        if self._api is not None:
            return self._api
        try:
            import openai
        except ImportError as exc:
            raise ConfigurationError(
                "the OpenAI embedder needs `pip install 'pgsearch[openai]'`"
            ) from exc
        if self._client is None:
            # Raised below, outside the handler, so that nothing the client said is chained.
            with contextlib.suppress(openai.OpenAIError):
                self._client = openai.OpenAI(max_retries=0, timeout=self._timeout)
            if self._client is None:
                raise ConfigurationError(
                    "the OpenAI embedder has no API key: set OPENAI_API_KEY (and "
                    "OPENAI_BASE_URL for a server other than OpenAI's), or pass client="
                )
            self._api = self._client
        else:
            with_options = getattr(self._client, "with_options", None)
            self._api = with_options(max_retries=0) if callable(with_options) else self._client
        return self._api

    def _secrets(self) -> list[str]:
        keys = [getattr(self._api, "api_key", None), os.environ.get("OPENAI_API_KEY")]
        return [key for key in keys if isinstance(key, str) and len(key) >= 4]

    def _quote(self, text: object) -> str:
        """A server's text made safe to show: no API key, one line, at most 300 characters."""
        shown = str(text)
        for key in self._secrets():
            shown = shown.replace(key, "[api key]")
        shown = _BEARER.sub("Bearer [api key]", _KEY_LIKE.sub("[api key]", shown))
        shown = " ".join(shown.split())
        return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."

    def _where(self, positions: range) -> str:
        last = positions.stop - 1
        inputs = f"input {last}" if len(positions) == 1 else f"inputs {positions.start}-{last}"
        return f"{inputs} (model {self._model})"

    def _request(self, texts: list[str], positions: range) -> Any:
        """One request, tried up to ``max_retries + 1`` times; the answer, unchecked."""
        client = self._client_or_default()
        options: dict[str, Any] = {
            "model": self._model,
            "input": texts,
            # Asked for explicitly, so that the client hands the answer over as it came.
            "encoding_format": "base64",
            "timeout": self._timeout,
        }
        if self._dimensions is not None:
            options["dimensions"] = self._dimensions
        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            outcome = self._attempt(client, options, positions)
            if not isinstance(outcome, _Failure):
                return outcome
            if not outcome.retry:
                raise EmbedderError(outcome.reason)
            if attempt == attempts:
                break
            delay = self._delay(attempt, outcome.wait)
            logger.warning(
                "embeddings request for %s failed (%s); attempt %d of %d in %.2f s",
                self._where(positions),
                outcome.reason,
                attempt + 1,
                attempts,
                delay,
            )
            self._sleep(delay)
        raise EmbedderError(
            f"the embeddings API failed {attempts} attempt{'s' if attempts > 1 else ''} for "
            f"{self._where(positions)}; the last: {outcome.reason}. Try again later, or allow "
            "more with max_retries= or timeout="
        )

    def _attempt(self, client: Any, options: dict[str, Any], positions: range) -> Any:
        """Send once: the response, or a :class:`_Failure` that quotes no response body."""
        import openai

        where = self._where(positions)
        try:
            return client.embeddings.create(**options)
        except openai.APIStatusError as exc:
            return self._status_failure(exc.status_code, exc.response.headers, exc, where)
        except openai.APITimeoutError:
            return _Failure(f"no answer within {self._timeout:g} s", retry=True)
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            detail = f": {self._quote(cause)}" if cause is not None else ""
            return _Failure(f"cannot connect to the embeddings API{detail}", retry=True)
        except openai.APIResponseValidationError as exc:
            return _Failure(
                f"the embeddings API answered {where} with something other than embeddings "
                f"(HTTP {exc.status_code}): {self._quote(exc.message)}",
                retry=False,
            )
        except ValueError as exc:  # the client could not decode the body: JSONDecodeError
            return _Failure(
                f"the embeddings API answered {where} with something other than embeddings "
                f"({type(exc).__name__}: {self._quote(exc)})",
                retry=False,
            )
        except openai.OpenAIError as exc:
            return _Failure(
                f"the embeddings API failed for {where}: {type(exc).__name__}: {self._quote(exc)}",
                retry=False,
            )

    def _status_failure(
        self, status: int, headers: Mapping[str, str], exc: Any, where: str
    ) -> _Failure:
        request_id = headers.get("x-request-id")
        status_text = f"HTTP {status}" + (
            f", request id {self._quote(request_id)}" if request_id else ""
        )
        if status in (401, 403):
            return _Failure(
                f"the embeddings API refused the credentials ({status_text}): check "
                "OPENAI_API_KEY (and OPENAI_BASE_URL if you use a server other than "
                f"OpenAI's), and that the key's project may use model {self._model}",
                retry=False,
            )
        body = getattr(exc, "body", None)
        message = body.get("message") if isinstance(body, Mapping) else body
        said = f": {self._quote(message)}" if message else ""
        # The server may say whether a retry can help (OpenAI's does, e.g. for a used-up quota).
        should_retry = (headers.get("x-should-retry") or "").lower()
        if should_retry == "true" or (
            should_retry != "false" and (status in _RETRY_STATUSES or status >= 500)
        ):
            return _Failure(f"{status_text}{said}", retry=True, wait=self._retry_after(headers))
        advice = {
            404: "check the model name and OPENAI_BASE_URL",
            413: "lower batch_size or max_request_tokens",
            429: "check the plan, quota and billing of the key's project",
        }.get(
            status,
            "check the model name and dimensions=, and that no input is too long for the model",
        )
        return _Failure(
            f"the embeddings API refused the request for {where} ({status_text}){said}; {advice}",
            retry=False,
        )

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``."""
        milliseconds = headers.get("retry-after-ms")
        if milliseconds:
            try:
                wait = float(milliseconds) / 1000
            except ValueError:
                wait = math.nan
            if math.isfinite(wait):
                return max(wait, 0.0)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            wait = float(value)
        except ValueError:
            try:
                wait = parsedate_to_datetime(value).timestamp() - self._clock()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
        return max(wait, 0.0) if math.isfinite(wait) else None

    def _delay(self, retry: int, wait: float | None) -> float:
        """Seconds to sleep before retry number ``retry`` (1 for the first)."""
        if wait is not None:
            return min(wait, self._max_backoff)
        ceiling = min(self._max_backoff, self._backoff * 2.0 ** (retry - 1))
        return self._jitter() * ceiling

    # -- answers --------------------------------------------------------------------------

    def _malformed(
        self,
        positions: range,
        problem: str,
        advice: str = "check that OPENAI_BASE_URL points at an OpenAI-compatible embeddings API",
    ) -> EmbedderError:
        return EmbedderError(
            f"the embeddings API answered {self._where(positions)} with {problem}; {advice}"
        )

    def _vectors(self, response: Any, positions: range) -> Vectors:
        """Check an answer: one finite vector of ``dimension`` numbers per input, in order."""
        count = len(positions)
        data = _field(response, "data")
        if not isinstance(data, Sequence) or isinstance(data, str | bytes):
            raise self._malformed(positions, "no list of embeddings")
        if len(data) != count:
            raise self._malformed(positions, f"{len(data)} embeddings for {count} inputs")
        rows: list[Any] = [None] * count
        for item in data:
            index = _field(item, "index")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
                shown = self._quote(repr(index))[:40]
                raise self._malformed(positions, f"an embedding whose index is {shown}")
            if rows[index] is not None:
                raise self._malformed(positions, f"index {index} twice, and another one missing")
            rows[index] = _field(item, "embedding")
            if rows[index] is None:
                raise self._malformed(positions, f"no vector at index {index}")
        vectors = np.empty((count, self.dimension), dtype=np.float32)
        for index, row in enumerate(rows):
            vector = self._decode(row, index, positions)
            if vector.shape != (self.dimension,):
                raise self._malformed(
                    positions,
                    f"a vector of {vector.size} values at index {index}, expected {self.dimension}",
                    f"pass dimensions={vector.size} if that is the model's size, or check the "
                    "model name",
                )
            if not np.isfinite(vector).all():
                raise self._malformed(positions, f"NaN or infinite values at index {index}")
            vectors[index] = vector
        return vectors

    def _decode(self, row: Any, index: int, positions: range) -> Any:
        if isinstance(row, str):  # base64 of little-endian float32, as asked for
            try:
                raw = base64.b64decode(row, validate=True)
            except (binascii.Error, ValueError):
                raise self._malformed(
                    positions, f"a vector at index {index} that is not base64"
                ) from None
            if len(raw) % 4:
                raise self._malformed(
                    positions, f"a vector at index {index} of {len(raw)} bytes, not float32s"
                )
            return np.frombuffer(raw, dtype="<f4")
        # Servers that ignore encoding_format answer numbers.
        try:
            vector = np.asarray(row)
        except ValueError:  # ragged nesting
            vector = np.asarray([], dtype=object)
        if vector.dtype.kind not in "iuf" or vector.ndim != 1:
            raise self._malformed(positions, f"non-numeric values at index {index}")
        return vector


def _field(item: Any, name: str) -> Any:
    """A field of a response object, whether the client parsed it into a model or not."""
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)
