"""What ``audit reprice --on NAME`` re-prices on: an endpoint, a pool, or a hardware profile.

Names are looked up in this order: an endpoint of the config, a pool of the
config (all its endpoints must share one price), a hardware profile of the
fleet simulator (``H100-FP8``, ``B200-NVFP4``... any case; their prices are
for the simulator's large reference model, unless the config prices endpoints of
the same hardware and precision: then the config's price is used).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spendgraph.cli import formats as fmt
from spendgraph.cli.options import CommandError
from spendgraph.providers.config import EndpointConfig, SpendgraphConfig
from spendgraph.providers.config.errors import did_you_mean
from spendgraph.providers.local.sim.profiles import BUILTIN_PROFILES, HardwareProfile
from spendgraph.providers.usage import Price


@dataclass(frozen=True)
class RepriceTarget:
    """A named price to re-price recorded token buckets at."""

    name: str
    kind: str  # "endpoint", "pool" or "profile"
    price: Price
    hardware: str = ""
    precision: str = ""
    priced_by: str = ""  # a profile's price source: the config's pool, or the simulator

    def describe(self) -> str:
        """``pool hopper-h100-fp8 (H100 fp8)``; profiles say whose prices they are."""
        where = " ".join(part for part in (self.hardware, self.precision) if part)
        if self.kind == "profile":
            where += f", {self.priced_by or 'simulator price'}"
        return f"{self.kind} {self.name}" + (f" ({where})" if where else "")


def resolve_target(name: str, config: SpendgraphConfig | None) -> RepriceTarget:
    """The target called ``name``; a :class:`CommandError` listing every valid name if none is."""
    endpoints = config.endpoints if config is not None else []
    for endpoint in endpoints:
        if endpoint.name == name:
            return _endpoint_target(endpoint)
    members = [endpoint for endpoint in endpoints if endpoint.pool == name]
    if members:
        return _pool_target(name, members)
    profile = _profile(name)
    if profile is not None:
        return _config_profile_target(profile, endpoints) or _profile_target(profile)
    raise CommandError(_unknown_message(name, config))


# Profiles describe a replica serving the simulator's large reference model.
_REFERENCE_TIER = "large"


def _config_profile_target(
    profile: HardwareProfile, endpoints: list[EndpointConfig]
) -> RepriceTarget | None:
    """The config's own price for the profile's hardware and precision, when it has one.

    A config with endpoints of that hardware (``B200`` ``nvfp4``) prices them
    itself; its price wins over the simulator's. Several prices for the same
    hardware (one per model) narrow to the endpoints serving the large tier.
    """
    same = [
        endpoint
        for endpoint in endpoints
        if endpoint.hardware.lower() == profile.hardware.lower()
        and endpoint.precision.lower() == profile.precision.lower()
        and not _unpriced(endpoint.resolved_price())
    ]
    if len({_rates(e.resolved_price()) for e in same}) > 1:
        same = [endpoint for endpoint in same if _REFERENCE_TIER in endpoint.names()]
    prices = {_rates(e.resolved_price()) for e in same}
    if len(prices) != 1:
        return None
    pools = sorted({endpoint.pool or endpoint.name for endpoint in same})
    return RepriceTarget(
        profile.name,
        "profile",
        same[0].resolved_price(),
        profile.hardware,
        profile.precision,
        priced_by=f"config price of {'pool' if len(pools) == 1 else 'pools'} {', '.join(pools)}",
    )


def _endpoint_target(endpoint: EndpointConfig) -> RepriceTarget:
    price = endpoint.resolved_price()
    if _unpriced(price):
        raise CommandError(
            f"endpoint {endpoint.name!r} has no price in the config, so there is nothing to "
            "re-price at; give it a price, or pick another endpoint, pool or profile"
        )
    return RepriceTarget(endpoint.name, "endpoint", price, endpoint.hardware, endpoint.precision)


def _pool_target(pool: str, members: list[EndpointConfig]) -> RepriceTarget:
    prices = {endpoint.name: endpoint.resolved_price() for endpoint in members}
    rates = {_rates(price) for price in prices.values()}
    if len(rates) > 1:
        listed = "; ".join(f"{name} {fmt.price_text(price)}" for name, price in prices.items())
        raise CommandError(
            f"the endpoints of pool {pool!r} have different prices ({listed}); "
            "re-price on one endpoint instead"
        )
    first = members[0]
    if _unpriced(prices[first.name]):
        raise CommandError(f"pool {pool!r} has no price in the config; nothing to re-price at")
    return RepriceTarget(
        pool,
        "pool",
        prices[first.name],
        _shared(endpoint.hardware for endpoint in members),
        _shared(endpoint.precision for endpoint in members),
    )


def _shared(values: Iterable[str]) -> str:
    """The one value all pool members share, else ``mixed``."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else "mixed"


def _unpriced(price: Price) -> bool:
    return _rates(price) == (None, None, None)


def _rates(price: Price) -> tuple[object, ...]:
    # Compare rates by value (0.1 == 0.10), ignoring the version label.
    return (price.input_uncached, price.input_cached, price.output)


def _profile(name: str) -> HardwareProfile | None:
    by_lower = {key.lower(): profile for key, profile in BUILTIN_PROFILES.items()}
    return by_lower.get(name.lower())


def _profile_target(profile: HardwareProfile) -> RepriceTarget:
    prices = profile.prices
    price = Price(
        input_uncached=prices.input,
        input_cached=prices.cached_input,
        output=prices.output,
        version=f"sim-profile-{profile.name}",
    )
    return RepriceTarget(profile.name, "profile", price, profile.hardware, profile.precision)


def target_names(config: SpendgraphConfig | None) -> dict[str, list[str]]:
    """Every name ``--on`` accepts, by kind."""
    endpoints = [endpoint.name for endpoint in config.endpoints] if config else []
    pools = sorted({endpoint.pool for endpoint in config.endpoints}) if config else []
    return {"endpoints": endpoints, "pools": pools, "profiles": sorted(BUILTIN_PROFILES)}


def _unknown_message(name: str, config: SpendgraphConfig | None) -> str:
    names = target_names(config)
    everything = [name for group in names.values() for name in group]
    lines = [f"unknown reprice target {name!r}{did_you_mean(name, everything)}; expected one of:"]
    if config is None:
        lines.append("  endpoints, pools: none (no config found; pass --config FILE)")
    else:
        lines.append(f"  endpoints ({config.source}): {', '.join(names['endpoints'])}")
        lines.append(f"  pools: {', '.join(names['pools'])}")
    lines.append(f"  hardware profiles (simulator): {', '.join(names['profiles'])}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PoolTarget:
    """A pool of the config, as a re-price target -- or why it cannot be one."""

    pool: str
    target: RepriceTarget | None
    problem: str = ""


def pool_targets(config: SpendgraphConfig | None) -> list[PoolTarget]:
    """Every pool of the config in the order it first appears (the what-if's columns)."""
    endpoints = config.endpoints if config is not None else []
    pools = list(dict.fromkeys(endpoint.pool for endpoint in endpoints))
    found = []
    for pool in pools:
        try:
            target = _pool_target(pool, [e for e in endpoints if e.pool == pool])
        except CommandError as exc:
            found.append(PoolTarget(pool, None, str(exc)))
        else:
            found.append(PoolTarget(pool, target))
    return found
