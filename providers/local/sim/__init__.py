"""The fleet simulator: an OpenAI-compatible server that simulates GPU replicas on loopback.

Start it in-process with :func:`run_simulator` (or :func:`run_simulator_async`),
or in the foreground with ``spendgraph serve sim``. See README.md in this folder.
"""

from spendgraph.providers.local.sim.app import STREAM_USAGE_HEADER, create_app
from spendgraph.providers.local.sim.faults import FAULT_HEADER
from spendgraph.providers.local.sim.fleet import (
    Fleet,
    ModelSpec,
    ReplicaSpec,
    load_fleet,
    parse_fleet,
)
from spendgraph.providers.local.sim.profiles import BUILTIN_PROFILES, HardwareProfile, Prices
from spendgraph.providers.local.sim.response import REPLICA_HEADER
from spendgraph.providers.local.sim.server import (
    DEFAULT_PORT,
    RunningSimulator,
    run_simulator,
    run_simulator_async,
    serve_forever,
)

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_PORT",
    "FAULT_HEADER",
    "REPLICA_HEADER",
    "STREAM_USAGE_HEADER",
    "Fleet",
    "HardwareProfile",
    "ModelSpec",
    "Prices",
    "ReplicaSpec",
    "RunningSimulator",
    "create_app",
    "load_fleet",
    "parse_fleet",
    "run_simulator",
    "run_simulator_async",
    "serve_forever",
]
