"""The URLs that differ by dialect: tokenizer endpoints, per-replica metrics, refusals.

Under ``/r/<replica>``:

======================  ===========================================================
dialect                 tokenizer
======================  ===========================================================
vllm                    ``POST /tokenize`` {model, messages | prompt}
                        -> {count, max_model_len, tokens}
sglang                  ``POST /v1/tokenize`` {model, prompt} -> {tokens, count, max_model_len}
trtllm                  ``POST /_internal/tokenize`` {model, prompt} -> {count, tokens}
llama-server            ``POST /tokenize`` {content} -> {tokens};
                        ``POST /apply-template`` {messages} -> {prompt}
llama-cpp-python        ``POST /extras/tokenize/count`` {input} -> {count}
======================  ===========================================================

Metrics are at the dialect's path (see :mod:`.dialect_metrics`); any other
replica path answers 404, as the engine would.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from spendgraph.providers.local.sim.apierror import ApiError, bad_request
from spendgraph.providers.local.sim.dialect_metrics import render
from spendgraph.providers.local.sim.metrics import CONTENT_TYPE
from spendgraph.providers.local.sim.replica import Replica
from spendgraph.providers.local.sim.request import parse_json_body, validate_messages
from spendgraph.providers.local.sim.response import REPLICA_HEADER
from spendgraph.providers.local.sim.state import SimState
from spendgraph.providers.tokens import chatml_prompt_text, encoding

# path under /r/<replica> -> the dialect whose tokenizer answers there
TOKENIZE_PATHS = {
    "/v1/tokenize": "sglang",
    "/_internal/tokenize": "trtllm",
    "/extras/tokenize/count": "llama-cpp-python",
    "/apply-template": "llama-server",
}
METRICS_PATHS = ("/metrics", "/prometheus/metrics", "/v1/metrics")


def _not_found(request: Request) -> ApiError:
    return ApiError(404, f"Unknown request URL: POST {request.url.path}.", code="unknown_url")


def refuse_unknown_fields(replica: Replica, body: dict[str, Any]) -> Response | None:
    """TensorRT-LLM's answer to a request with fields its models forbid: HTTP 400."""
    unknown = replica.dialect.unknown_fields(body)
    if not unknown:
        return None
    lines = [f"{len(unknown)} validation error(s) for ChatCompletionRequest"]
    lines += [
        f"{name}\n  Extra inputs are not permitted [type=extra_forbidden]" for name in unknown
    ]
    # trtllm-serve's RequestValidationError handler: {"error": str(exc)}, status 400.
    return JSONResponse({"error": "\n".join(lines)}, 400, headers={REPLICA_HEADER: replica.name})


def _text_tokens(replica: Replica, text: str) -> list[int]:
    return encoding(replica.spec.profile.encoding).encode(text, disallowed_special=())


async def dialect_tokenize(state: SimState, request: Request) -> JSONResponse:
    """A replica's text-tokenizer endpoints, in its dialect's shapes."""
    replica = state.replica(request.path_params["replica"])
    dialect = replica.dialect.tokenize
    path = request.url.path.split(f"/r/{replica.name}", 1)[1]
    if TOKENIZE_PATHS.get(path) != dialect:
        raise _not_found(request)
    body = parse_json_body(await request.body())
    if dialect == "llama-server":
        messages = validate_messages(body.get("messages"))
        return JSONResponse({"prompt": chatml_prompt_text(messages)})
    field = "input" if dialect == "llama-cpp-python" else "prompt"
    text = body.get(field)
    if not isinstance(text, str):
        raise bad_request(f"'{field}' must be a string.", param=field)
    tokens = _text_tokens(replica, text)
    if dialect == "llama-cpp-python":
        return JSONResponse({"count": len(tokens)})
    answer: dict[str, Any] = {"count": len(tokens), "tokens": tokens}
    if dialect == "sglang":
        answer["max_model_len"] = replica.max_model_len(replica.spec.models[0])
    return JSONResponse(answer)


async def llama_server_tokenize(replica: Replica, body: dict[str, Any]) -> JSONResponse:
    """llama-server's ``POST /tokenize``: ``content`` -> ``tokens``."""
    content = body.get("content")
    if not isinstance(content, str):
        raise bad_request("'content' must be a string.", param="content")
    return JSONResponse({"tokens": _text_tokens(replica, content)})


async def replica_metrics(state: SimState, request: Request) -> Response:
    """One replica's token counters, in its dialect's names, at its dialect's path."""
    replica = state.replica(request.path_params["replica"])
    path = request.url.path.split(f"/r/{replica.name}", 1)[1]
    text = render(replica.dialect.name, replica.totals)
    if text is None or path != replica.dialect.metrics_path:
        raise ApiError(404, f"Unknown request URL: GET {request.url.path}.", code="unknown_url")
    return Response(text, media_type=CONTENT_TYPE)
