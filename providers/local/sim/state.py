"""Everything one simulator server holds: fleet, replicas, metrics, fault planner."""

from __future__ import annotations

import time
from dataclasses import dataclass

from spendgraph.providers.local.sim.apierror import ApiError, model_not_found
from spendgraph.providers.local.sim.faults import FaultPlanner
from spendgraph.providers.local.sim.fleet import Fleet, load_fleet
from spendgraph.providers.local.sim.metrics import SimMetrics
from spendgraph.providers.local.sim.replica import Replica
from spendgraph.providers.tokens import encoding


@dataclass(frozen=True)
class SimOptions:
    """Run-time options of a simulator server.

    ``time_scale`` multiplies every simulated duration: 0 never sleeps (tests),
    1.0 is real time. ``seed`` fixes generated text and fleet-file faults.
    """

    time_scale: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {self.time_scale}")


class SimState:
    """The live state of one server; used from its event loop (the planner is thread-safe)."""

    def __init__(self, fleet: Fleet | None = None, options: SimOptions | None = None):
        self.fleet = fleet if fleet is not None else load_fleet()
        self.options = options or SimOptions()
        self.metrics = SimMetrics(
            (spec.name, model) for spec in self.fleet.replicas for model in spec.models
        )
        self.replicas = {
            spec.name: Replica(spec, self.fleet, self.metrics) for spec in self.fleet.replicas
        }
        self.faults = FaultPlanner(self.options.seed)
        # Load tokenizers now: a first load takes about a second, which would
        # otherwise land on the first request and distort its timing.
        for name in {spec.profile.encoding for spec in self.fleet.replicas}:
            encoding(name)
        self.started = int(time.time())  # the `created` time of /v1/models entries

    def replica(self, name: str) -> Replica:
        """The replica called ``name``; 404 if there is none."""
        replica = self.replicas.get(name)
        if replica is None:
            raise ApiError(
                404, f"No replica named {name!r} in this fleet.", code="replica_not_found"
            )
        return replica

    def pick(self, model: str) -> Replica:
        """The least-loaded replica serving ``model`` (ties broken by name); 404 if none does.

        Load counts running and queued requests. A dispatched request takes its
        place in the replica's queue before the event loop next yields, so
        back-to-back dispatches see each other.
        """
        candidates = [r for r in self.replicas.values() if r.serves(model)]
        if not candidates:
            raise model_not_found(model)
        return min(candidates, key=lambda r: (r.load, r.name))

    def route(self, replica_name: str | None, model: str) -> Replica:
        """The replica a request goes to: the one in the URL, or one picked for the model."""
        if replica_name is None:
            return self.pick(model)
        replica = self.replica(replica_name)
        if not replica.serves(model):
            raise model_not_found(model)
        return replica
