"""Fault injection: what goes wrong with a request, decided deterministically.

Faults come from two places:

* the fleet file, per replica (``[replicas.faults]``): a rate per fault kind;
  whether a given request is hit is decided by a random draw seeded with the
  server seed, the replica, the request's hash and how many times that same
  request has reached that replica — so a rerun with the same seed fails the
  same requests, and a retry of a failed request gets a fresh draw;
* the ``x-sim-fault`` request header, e.g. ``status=503;times=2;key=abc``
  (fail the first two requests carrying key ``abc``, then let them through),
  ``status=429;retry_after=1``, ``delay=30``, ``cut_after=5``, or ``none`` to
  switch the fleet file's faults off for this request.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

FAULT_HEADER = "x-sim-fault"

_ALLOWED_STATUSES = frozenset({400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504})
# Bound on the per-request attempt counters so a long-running simulator stays small.
_MAX_TRACKED_REQUESTS = 100_000


class FaultSpecError(ValueError):
    """The ``x-sim-fault`` header cannot be parsed."""


@dataclass(frozen=True)
class Fault:
    """What to do to one request. Every field unset means "no fault"."""

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    cut_after: int | None = None

    @property
    def active(self) -> bool:
        return self.status is not None or self.delay > 0 or self.cut_after is not None


NO_FAULT = Fault()


@dataclass(frozen=True)
class FaultRates:
    """Per-replica fault rates from the fleet file (fractions of requests, summing to <= 1)."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_delay: float = 0.0
    rate_cut: float = 0.0
    retry_after: float = 1.0
    delay: float = 30.0
    cut_after: int = 5

    @property
    def total(self) -> float:
        return self.rate_429 + self.rate_500 + self.rate_503 + self.rate_delay + self.rate_cut

    def pick(self, draw: float) -> Fault:
        """The fault for a uniform ``draw`` in [0, 1): each kind owns a slice of the interval."""
        slices = (
            (self.rate_429, Fault(status=429, retry_after=self.retry_after)),
            (self.rate_500, Fault(status=500)),
            (self.rate_503, Fault(status=503)),
            (self.rate_delay, Fault(delay=self.delay)),
            (self.rate_cut, Fault(cut_after=self.cut_after)),
        )
        edge = 0.0
        for rate, fault in slices:
            edge += rate
            if draw < edge:
                return fault
        return NO_FAULT


@dataclass(frozen=True)
class HeaderFault:
    """A parsed ``x-sim-fault`` header."""

    fault: Fault = NO_FAULT
    disable_fleet_faults: bool = False
    times: int | None = None
    key: str = ""
    rate: float | None = None
    replica: str | None = None


def _number(name: str, value: str, kind: type) -> float | int:
    try:
        number = kind(value)
    except ValueError:
        raise FaultSpecError(f"{name} must be a {kind.__name__}, got {value!r}") from None
    if number < 0:
        raise FaultSpecError(f"{name} must not be negative, got {value!r}")
    return number


def _apply_field(parsed: HeaderFault, name: str, value: str) -> HeaderFault:
    fault = parsed.fault
    if name == "status":
        status = int(_number(name, value, int))
        if status not in _ALLOWED_STATUSES:
            raise FaultSpecError(f"status must be one of {sorted(_ALLOWED_STATUSES)}")
        return replace(parsed, fault=replace(fault, status=status))
    if name == "retry_after":
        return replace(parsed, fault=replace(fault, retry_after=float(_number(name, value, float))))
    if name == "delay":
        return replace(parsed, fault=replace(fault, delay=float(_number(name, value, float))))
    if name == "cut_after":
        return replace(parsed, fault=replace(fault, cut_after=int(_number(name, value, int))))
    if name == "times":
        return replace(parsed, times=int(_number(name, value, int)))
    if name == "rate":
        rate = float(_number(name, value, float))
        if rate > 1:
            raise FaultSpecError(f"rate must be between 0 and 1, got {value!r}")
        return replace(parsed, rate=rate)
    if name == "key":
        return replace(parsed, key=value)
    if name == "replica":
        return replace(parsed, replica=value)
    raise FaultSpecError(f"unknown field {name!r} in {FAULT_HEADER}")


def parse_fault_header(value: str) -> HeaderFault:
    """Parse ``x-sim-fault``: ``;``-separated ``name=value`` fields, or ``none``."""
    text = value.strip()
    if text.lower() == "none":
        return HeaderFault(disable_fleet_faults=True)
    parsed = HeaderFault()
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        name, sep, field_value = part.partition("=")
        if not sep:
            raise FaultSpecError(f"expected name=value in {FAULT_HEADER}, got {part!r}")
        parsed = _apply_field(parsed, name.strip().lower(), field_value.strip())
    if parsed.fault.status == 429 and parsed.fault.retry_after is None:
        parsed = replace(parsed, fault=replace(parsed.fault, retry_after=1.0))
    if not parsed.fault.active:
        raise FaultSpecError(f"{FAULT_HEADER} names no fault (status, delay or cut_after)")
    if parsed.times is not None and not parsed.key:
        # Without an explicit key the whole header value is the key.
        parsed = replace(parsed, key=text)
    return parsed


class FaultPlanner:
    """Decides each request's fault. One per server; safe to call from any thread."""

    def __init__(self, seed: int):
        self._seed = seed
        self._lock = threading.Lock()
        self._fired: dict[str, int] = {}
        self._attempts: OrderedDict[tuple[str, str], int] = OrderedDict()

    def _attempt(self, replica: str, request_hash: str) -> int:
        with self._lock:
            slot = (replica, request_hash)
            attempt = self._attempts.pop(slot, 0)
            self._attempts[slot] = attempt + 1
            if len(self._attempts) > _MAX_TRACKED_REQUESTS:
                self._attempts.popitem(last=False)
            return attempt

    def _draw(self, replica: str, request_hash: str, attempt: int) -> float:
        return random.Random(f"{self._seed}:{replica}:{request_hash}:{attempt}").random()

    def _fire_counted(self, key: str, times: int) -> bool:
        with self._lock:
            fired = self._fired.get(key, 0)
            if fired >= times:
                return False
            self._fired[key] = fired + 1
            return True

    def decide(
        self, replica: str, request_hash: str, header: HeaderFault | None, rates: FaultRates
    ) -> Fault:
        """The fault for this request on ``replica`` (``NO_FAULT`` for none)."""
        attempt = self._attempt(replica, request_hash)
        if header is not None and not header.disable_fleet_faults:
            return self._header_fault(replica, request_hash, attempt, header)
        if header is not None or rates.total == 0:
            return NO_FAULT
        return rates.pick(self._draw(replica, request_hash, attempt))

    def _header_fault(
        self, replica: str, request_hash: str, attempt: int, header: HeaderFault
    ) -> Fault:
        if header.replica is not None and header.replica != replica:
            return NO_FAULT
        if header.rate is not None and self._draw(replica, request_hash, attempt) >= header.rate:
            return NO_FAULT
        if header.times is not None and not self._fire_counted(header.key, header.times):
            return NO_FAULT
        return header.fault
