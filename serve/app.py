"""The front door: an OpenAI-compatible ASGI app serving agent apps.

``POST /v1/chat/completions`` runs one query of the app named by ``model``
(plain or SSE-streamed), ``GET /v1/models`` lists the apps, ``/health`` says
the worker is up, ``/metrics`` is Prometheus text. Everything a request needs
(the provider layer, the compiled graphs) is opened by the ASGI lifespan in the
worker's own event loop and closed, ledger flushed, when the worker stops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from spendgraph.providers.errors import ProviderError, SpendgraphError
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.serve.auth import KeyAuth, Unauthorized
from spendgraph.serve.metrics import ServeMetrics
from spendgraph.serve.protocol import (
    QUERY_HEADER,
    THREAD_HEADER,
    RequestProblem,
    error_body,
    parse_request,
)
from spendgraph.serve.runner import QueryRefused, QueryRun, ServedApp, error_frame

log = logging.getLogger("spendgraph.serve")


@dataclass(frozen=True, slots=True)
class Backend:
    """What a worker serves with: its provider layer and the apps by name."""

    layer: ProviderLayer
    apps: Mapping[str, ServedApp]


BackendFactory = Callable[[], AbstractAsyncContextManager[Backend]]


@dataclass(frozen=True, slots=True)
class FrontDoorOptions:
    """``require_keys=False`` serves without API keys (local use only)."""

    require_keys: bool = True
    max_body_bytes: int = 2_000_000


class _Failure(Exception):
    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.code, self.kind = status, code, kind

    def response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        body = error_body(str(self), code=self.code, kind=self.kind)
        return JSONResponse(body, status_code=self.status, headers=dict(headers or {}))


def front_door(open_backend: BackendFactory, options: FrontDoorOptions | None = None) -> Starlette:
    """The ASGI app; ``open_backend`` is entered once per worker, in its event loop."""
    options = options or FrontDoorOptions()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_backend() as backend:
            state["backend"] = backend
            state["auth"] = KeyAuth(backend.layer.ledger.engine, required=options.require_keys)
            state["metrics"] = ServeMetrics()
            yield
            state.clear()

    def backend() -> Backend:
        return state["backend"]

    async def completions(request: Request) -> Response:
        metrics: ServeMetrics = state["metrics"]
        app_name = ""
        try:
            caller = await state["auth"].caller(request.headers.get("authorization"))
            body = await _json_body(request, options.max_body_bytes)
            parsed = parse_request(body, request.headers)
            app_name = parsed.app
            served = backend().apps.get(parsed.app)
            if served is None:
                names = ", ".join(sorted(backend().apps))
                raise _Failure(
                    404, f"no app {parsed.app!r} here (serving: {names})", "model_not_found"
                )
            run = QueryRun(backend().layer, served, parsed, caller, metrics)
            response = await (_streamed(run) if parsed.stream else _whole(run))
        except _Failure as failure:
            response = failure.response()
        except Unauthorized as exc:
            response = _Failure(401, str(exc), "invalid_api_key", "authentication_error").response()
        except RequestProblem as exc:
            response = _Failure(exc.status, str(exc), exc.code).response()
        metrics.request(app_name if app_name in backend().apps else "", response.status_code)
        return response

    async def models(request: Request) -> Response:
        try:
            await state["auth"].caller(request.headers.get("authorization"))
        except Unauthorized as exc:
            return _Failure(401, str(exc), "invalid_api_key", "authentication_error").response()
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "spendgraph",
                "description": served.app.description,
            }
            for name, served in sorted(backend().apps.items())
        ]
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "apps": sorted(backend().apps)})

    async def metrics_text(request: Request) -> Response:
        metrics: ServeMetrics = state["metrics"]
        return Response(metrics.render(), media_type=metrics.content_type)

    routes = [
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _json_body(request: Request, limit: int) -> object:
    raw = b""
    async for piece in request.stream():
        raw += piece
        if len(raw) > limit:
            raise _Failure(413, f"request body over {limit} bytes", "body_too_large")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Failure(400, f"the body is not JSON ({exc})", "invalid_json") from None


async def _whole(run: QueryRun) -> Response:
    try:
        body, report = await run.answer()
    except BaseException as exc:
        failure = _run_failure(exc)
        return failure.response(_ids(run))
    return JSONResponse(body, headers=report.headers())


async def _streamed(run: QueryRun) -> Response:
    frames = run.frames()
    try:
        first = await anext(frames)
    except BaseException as exc:
        return _run_failure(exc).response(_ids(run))

    async def body() -> AsyncIterator[bytes]:
        yield first
        try:
            async for frame in frames:
                yield frame
        except Exception as exc:  # the answer has begun: end the stream with an error event
            failure = _run_failure(exc)
            yield error_frame(str(failure), failure.code)

    headers = {**_ids(run), "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


def _ids(run: QueryRun) -> dict[str, str]:
    ids = {QUERY_HEADER: run.query_id, THREAD_HEADER: run.thread_id}
    return {k: v for k, v in ids.items() if v}


def _run_failure(exc: BaseException) -> _Failure:
    """What a failed query answers; cancellation and interpreter exits pass through."""
    if not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, QueryRefused):
        return _Failure(402, f"budget exhausted: {exc}", "budget_exhausted", "insufficient_quota")
    if isinstance(exc, ProviderError):
        return _Failure(502, str(exc), "upstream_error", "server_error")
    if isinstance(exc, SpendgraphError):
        return _Failure(500, str(exc), "app_error", "server_error")
    log.exception("query failed")
    return _Failure(500, "internal error (see the server log)", "internal_error", "server_error")
