"""The HTTP front door: agent apps served as an OpenAI-compatible API.

``front_door(open_backend)`` is the ASGI app; ``spendgraph serve app`` runs it
under uvicorn on one or many worker processes. Wire format and extension
fields: :mod:`spendgraph.serve.protocol`.
"""

from spendgraph.serve.app import Backend, BackendFactory, FrontDoorOptions, front_door
from spendgraph.serve.auth import KeyAuth, Unauthorized
from spendgraph.serve.protocol import (
    COST_HEADER,
    EXTENSION,
    QUERY_HEADER,
    THREAD_HEADER,
    CompletionRequest,
    QueryReport,
)
from spendgraph.serve.runner import Caller, QueryRun, ServedApp

__all__ = [
    "COST_HEADER",
    "EXTENSION",
    "QUERY_HEADER",
    "THREAD_HEADER",
    "Backend",
    "BackendFactory",
    "Caller",
    "CompletionRequest",
    "FrontDoorOptions",
    "KeyAuth",
    "QueryReport",
    "QueryRun",
    "ServedApp",
    "Unauthorized",
    "front_door",
]
