"""Deliveries of one model call: their request ids, and the row of one that died with its worker.

Temporal delivers an activity at least once: a worker can die mid-call, or
after the call finished but before it reported so. Each delivery of a model
call therefore records its attempts under a request id derived from the
workflow, the activity and the delivery number (:func:`delivery_request_id`),
and a later delivery looks up what the earlier ones left in the ledger:

* an earlier delivery that finished signalled its outcome to the workflow once
  its rows were committed (``call_answered``), before reporting back: the new
  delivery returns that outcome and calls nothing (the call is paid once);
* an earlier delivery with an ``ok`` row but no outcome died in the moment
  between its call's end and that signal: it was paid, its answer is lost (the
  ledger keeps no text), so the call runs again and both are reported;
* one without: the attempt it was making never settled, so its row was never
  written; the new delivery writes it (:func:`lost_attempt`): status
  ``cancelled``, error kind ``worker_lost``, the prompt counted and the output
  booked at the request's ``max_tokens`` (``upper_bound``: the most the server
  can have made), on the endpoint the router plans first for the request. Its
  id is derived from the delivery's request id, so writing it again is a no-op.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from spendgraph.providers.call import CallServices, ModelCall
from spendgraph.providers.chat import ChatRequest
from spendgraph.providers.context import current_agent_path, current_node, current_query
from spendgraph.providers.gateway import ProviderLayer
from spendgraph.providers.ledger.records import CallRecord, CallStatus
from spendgraph.providers.usage import Usage, UsageSource, cost_of

WORKER_LOST = "worker_lost"


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()


def delivery_request_id(workflow_id: str, activity_id: str, delivery: int) -> str:
    """The ledger request id of delivery ``delivery`` of one model-call activity (stable)."""
    return _digest(workflow_id, activity_id, str(delivery))


def lost_row_id(request_id: str) -> str:
    """The id of the lost-attempt row of the delivery recorded under ``request_id``."""
    return _digest(request_id, WORKER_LOST)


def finished(rows: list[CallRecord]) -> bool:
    """Whether a delivery's rows show it ended: an answer, or its lost attempt written."""
    return any(r.status is CallStatus.OK or r.error_kind == WORKER_LOST for r in rows)


def lost_attempt(
    layer: ProviderLayer,
    request: ChatRequest,
    *,
    request_id: str,
    attempt: int,
    started_at: datetime,
    stream: bool,
) -> CallRecord:
    """The record of the attempt a dead worker was making (call inside the query scope)."""
    services = CallServices(layer.config, layer.ledger, layer.router, layer.retries)
    call = ModelCall(services, request, stream=stream)
    endpoint = call.candidates()[0]
    prompt = call.prompt_tokens(endpoint.config.tokenizer)
    if request.max_tokens is not None:
        output, source = request.max_tokens, UsageSource.UPPER_BOUND
    else:
        output, source = 0, UsageSource.ESTIMATED
    usage = Usage(input_uncached=prompt, output=output, source=source)
    scope = current_query()
    return CallRecord(
        endpoint=endpoint.info,
        status=CallStatus.CANCELLED,
        usage=usage,
        cost_usd=cost_of(usage, endpoint.price),
        price_version=endpoint.price.version,
        query_id=scope.id if scope else None,
        agent_path=current_agent_path(),
        node=current_node(),
        request_id=request_id,
        attempt=attempt,
        stream=stream,
        started_at=started_at,
        error_kind=WORKER_LOST,
        id=lost_row_id(request_id),
    )
