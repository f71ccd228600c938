"""The simulator's Starlette application: URL scheme, auth and error handling.

URL scheme (the provider layer's config relies on it)::

    GET  /health                             {"status": "ok"}
    GET  /metrics                            Prometheus text, vLLM metric names
    GET  /v1/models                          every model of the fleet
    POST /v1/chat/completions                dispatched to the least-loaded replica
    POST /tokenize                           vLLM-style token count
    GET  /r/<replica>/v1/models              the models one replica serves
    POST /r/<replica>/v1/chat/completions    served by that replica
    POST /r/<replica>/tokenize

Every chat response carries ``x-sim-replica: <name>``.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from spendgraph.providers.local.sim import dialect_routes
from spendgraph.providers.local.sim.apierror import ApiError, bad_request
from spendgraph.providers.local.sim.faults import FAULT_HEADER, FaultSpecError, parse_fault_header
from spendgraph.providers.local.sim.fleet import Fleet
from spendgraph.providers.local.sim.metrics import CONTENT_TYPE
from spendgraph.providers.local.sim.prefix_cache import prompt_token_ids
from spendgraph.providers.local.sim.replica import Replica
from spendgraph.providers.local.sim.request import (
    ChatRequest,
    parse_chat_request,
    parse_json_body,
    validate_messages,
)
from spendgraph.providers.local.sim.response import REPLICA_HEADER, Job, SimulatedResponse
from spendgraph.providers.local.sim.state import SimOptions, SimState
from spendgraph.providers.tokens import encoding

STREAM_USAGE_HEADER = "x-sim-stream-usage"
_STREAM_USAGE_MODES = ("final", "cumulative", "never")
log = logging.getLogger(__name__)

Handler = Callable[[SimState, Request], Awaitable[Any]]


def _api(handler: Handler, *, auth: bool = True) -> Callable[[Request], Awaitable[Any]]:
    """Wrap a handler: auth check, ApiError -> its response, anything else -> a clean 500."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Any:
        state: SimState = request.app.state.sim
        try:
            if auth:
                _check_auth(state.fleet, request)
            return await handler(state, request)
        except ApiError as exc:
            return exc.response()
        except Exception:  # never a traceback to the client
            log.exception("simulator handler failed")
            return ApiError(500, "The simulator failed to process the request.").response()

    return endpoint


def _check_auth(fleet: Fleet, request: Request) -> None:
    if fleet.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), fleet.api_key):
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


async def _health(state: SimState, request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _metrics(state: SimState, request: Request) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _decimal_text(value: Decimal) -> str:
    """``0.050`` -> ``"0.05"``, never scientific notation."""
    return format(value.normalize(), "f")


def _model_card(state: SimState, model: str, replica: Replica | None) -> dict[str, Any]:
    spec = state.fleet.models[model]
    card: dict[str, Any] = {
        "id": model,
        "object": "model",
        "created": state.started,
        "owned_by": "spendgraph-sim",
        "root": model,
        "parent": None,
        "max_model_len": spec.max_model_len,
    }
    if replica is None:
        card["sim"] = {"replicas": [r.name for r in state.replicas.values() if r.serves(model)]}
        return card
    profile = replica.spec.profile
    prices = state.fleet.prices(replica.spec, model)
    card["sim"] = {
        "replica": replica.name,
        "profile": profile.name,
        "hardware": profile.hardware,
        "precision": profile.precision,
        "engine": profile.engine,
        "encoding": profile.encoding,
        "price_per_million": {
            "input": _decimal_text(prices.input),
            "cached_input": _decimal_text(prices.cached_input),
            "output": _decimal_text(prices.output),
        },
    }
    return card


async def _models(state: SimState, request: Request) -> JSONResponse:
    name = request.path_params.get("replica")
    if name is None:
        cards = [_model_card(state, model, None) for model in state.fleet.models]
    else:
        replica = state.replica(name)
        cards = [_model_card(state, model, replica) for model in replica.spec.models]
    return JSONResponse({"object": "list", "data": cards})


async def _chat(state: SimState, request: Request) -> Any:
    body = parse_json_body(await request.body())
    chat = parse_chat_request(body)
    replica = state.route(request.path_params.get("replica"), chat.model)
    refused = dialect_routes.refuse_unknown_fields(replica, body)
    if refused is not None:
        return refused
    try:
        return _prepare(state, replica, chat, request)
    except ApiError as exc:  # once a replica is chosen, even errors say which
        exc.headers[REPLICA_HEADER] = replica.name
        raise


def _prepare(state: SimState, replica: Replica, chat: ChatRequest, request: Request) -> Any:
    header = None
    if FAULT_HEADER in request.headers:
        try:
            header = parse_fault_header(request.headers[FAULT_HEADER])
        except FaultSpecError as exc:
            raise bad_request(f"Invalid {FAULT_HEADER} header: {exc}", param=FAULT_HEADER) from None
    usage_mode = request.headers.get(STREAM_USAGE_HEADER, replica.spec.stream_usage)
    if usage_mode not in _STREAM_USAGE_MODES:
        raise bad_request(
            f"{STREAM_USAGE_HEADER} must be one of {', '.join(_STREAM_USAGE_MODES)}.",
            param=STREAM_USAGE_HEADER,
        )
    prompt_tokens = replica.count_prompt(chat)
    max_len = replica.max_model_len(chat.model)
    if prompt_tokens >= max_len:
        raise bad_request(
            f"This model's maximum context length is {max_len} tokens. However, your messages "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    fault = state.faults.decide(replica.name, chat.request_hash, header, replica.spec.faults)
    return SimulatedResponse(Job(state, replica, chat, fault, usage_mode))


async def _tokenize(state: SimState, request: Request) -> JSONResponse:
    body = parse_json_body(await request.body())
    name = request.path_params.get("replica")
    if name is not None:
        dialect = state.replica(name).dialect.tokenize
        if dialect == "llama-server":
            return await dialect_routes.llama_server_tokenize(state.replica(name), body)
        if dialect != "vllm":
            raise ApiError(
                404, f"Unknown request URL: POST {request.url.path}.", code="unknown_url"
            )
    model = body.get("model")
    if model is None:  # vLLM allows leaving it out: the replica's (or fleet's) first model
        replica = state.replica(name) if name else next(iter(state.replicas.values()))
        model = replica.spec.models[0]
    replica = state.route(name, str(model))
    enc_name = replica.spec.profile.encoding
    if "messages" in body:
        messages = validate_messages(body["messages"])
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise bad_request("'tools' must be an array.", param="tools")
        tokens = prompt_token_ids(messages, enc_name, tools)
    elif isinstance(body.get("prompt"), str):
        tokens = encoding(enc_name).encode(body["prompt"], disallowed_special=())
    else:
        raise bad_request("Provide either 'messages' or a 'prompt' string.", param="messages")
    max_len = replica.max_model_len(str(model))
    return JSONResponse({"count": len(tokens), "max_model_len": max_len, "tokens": tokens})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Unknown request URL: {request.method} {request.url.path}."
    if status == 405:
        message = f"Method {request.method} not allowed on {request.url.path}."
    return ApiError(status, message, code="unknown_url" if status == 404 else None).response()


def _routes() -> list[Route]:
    api = {
        "models": _api(_models),
        "chat": _api(_chat),
        "tokenize": _api(_tokenize),
        "dialect_tokenize": _api(dialect_routes.dialect_tokenize),
        "replica_metrics": _api(dialect_routes.replica_metrics, auth=False),
    }
    routes = [
        Route("/health", _api(_health, auth=False), methods=["GET"]),
        Route("/metrics", _api(_metrics, auth=False), methods=["GET"]),
    ]
    for prefix in ("", "/r/{replica}"):
        routes += [
            Route(f"{prefix}/v1/models", api["models"], methods=["GET"]),
            Route(f"{prefix}/v1/chat/completions", api["chat"], methods=["POST"]),
            Route(f"{prefix}/tokenize", api["tokenize"], methods=["POST"]),
        ]
    routes += [
        Route(f"/r/{{replica}}{path}", api["dialect_tokenize"], methods=["POST"])
        for path in dialect_routes.TOKENIZE_PATHS
    ]
    routes += [
        Route(f"/r/{{replica}}{path}", api["replica_metrics"], methods=["GET"])
        for path in dialect_routes.METRICS_PATHS
    ]
    return routes


def create_app(fleet: Fleet | None = None, options: SimOptions | None = None) -> ASGIApp:
    """A new simulator ASGI app with its own state (fleet, replicas, metrics)."""
    app = Starlette(routes=_routes(), exception_handlers={HTTPException: _http_error})
    app.state.sim = SimState(fleet, options)
    return app
