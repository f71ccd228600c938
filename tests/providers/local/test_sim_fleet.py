"""Fleet files and hardware profiles: the shipped fleet, custom fleets, clear errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spendgraph.providers.errors import ConfigError
from spendgraph.providers.local.sim.fleet import load_fleet, parse_fleet
from spendgraph.providers.local.sim.profiles import BUILTIN_PROFILES
from spendgraph.providers.local.sim.replica import Prefill
from spendgraph.providers.local.sim.server import run_simulator
from spendgraph.providers.local.sim.state import SimState


def test_default_fleet_replicas_and_models():
    fleet = load_fleet()
    names = [spec.name for spec in fleet.replicas]
    assert names == [
        *(f"b200-nvfp4-{i}" for i in range(4)),
        "b200-fp8-0",
        "b200-fp8-1",
        "h200-fp8-0",
        "h200-fp8-1",
        "h100-fp8-0",
        "h100-fp8-1",
    ]
    assert all(spec.models == ("sim-large", "sim-small") for spec in fleet.replicas)
    assert fleet.replica("h200-fp8-1").profile.name == "H200-FP8"
    assert fleet.models["sim-small"].time_factor == 0.25


def test_profile_prices_follow_the_seed_figures():
    price = {name: profile.prices for name, profile in BUILTIN_PROFILES.items()}
    assert price["H100-FP8"].input == Decimal("0.20")
    assert price["B200-FP8"].input == Decimal("0.10")
    assert price["B200-NVFP4"].input == Decimal("0.05")
    for prices in price.values():
        assert prices.input / 10 <= prices.cached_input <= prices.input / 4


@pytest.mark.parametrize(
    ("replica", "prompt_tokens", "meets_400ms"),
    [
        ("b200-nvfp4-0", 500, True),
        ("b200-fp8-0", 500, True),
        ("h100-fp8-0", 1_000, True),
        ("b200-nvfp4-0", 8_000, True),
        ("h200-fp8-0", 8_000, False),
        ("h100-fp8-0", 8_000, False),
    ],
)
def test_ttft_against_a_400ms_target(replica, prompt_tokens, meets_400ms):
    state = SimState()
    timing = state.replicas[replica].timing("sim-large", Prefill(prompt_tokens, 0))
    assert (timing.ttft < 0.4) is meets_400ms


def test_small_model_prefills_four_times_faster():
    replica = SimState().replicas["h100-fp8-0"]
    large = replica.timing("sim-large", Prefill(8_000, 0))
    small = replica.timing("sim-small", Prefill(8_000, 0))
    base = replica.spec.profile.ttft_base_ms / 1000
    assert small.ttft - base == pytest.approx((large.ttft - base) / 4)
    assert small.inter_token == pytest.approx(large.inter_token / 4)


def test_custom_profile_from_a_base_and_replica_options():
    fleet = parse_fleet(
        """
        [models.m]
        [models.n]
        price_factor = 0.5
        [profiles.SLOW-H100]
        base = "H100-FP8"
        inter_token_ms = 90
        price_output = "0.30"
        [[replicas]]
        name = "slow"
        count = 2
        profile = "SLOW-H100"
        models = ["n"]
        stream_usage = "cumulative"
        """
    )
    spec = fleet.replica("slow-1")
    assert spec.profile.inter_token_ms == 90 and spec.profile.max_seqs == 64
    assert spec.profile.prices.output == Decimal("0.30")
    assert spec.models == ("n",) and spec.stream_usage == "cumulative"
    assert fleet.prices(spec, "n").input == Decimal("0.10")


_REPLICA = '[models.m]\n[[replicas]]\nname = "x"\nprofile = "H100-FP8"\n'
BAD_FLEETS = [
    ("bad-toml", "[models.m\n", "line 1", "not valid TOML"),
    ("unknown-top-level-key", "colour = 1\n" + _REPLICA, "colour", "unknown key"),
    ("unknown-replica-key", _REPLICA + "speed = 2\n", "replicas[0].speed", "unknown key"),
    (
        "unknown-fault-key",
        _REPLICA + "[replicas.faults]\nrate_404 = 0.1\n",
        "replicas[0].faults.rate_404",
        "unknown key",
    ),
    ("unknown-profile", _REPLICA.replace("H100-FP8", "TPU-v9"), "replicas[0].profile", "TPU-v9"),
    ("unknown-model", _REPLICA + 'models = ["zz"]\n', "replicas[0].models", "zz"),
    ("wrong-type", _REPLICA + "count = 'many'\n", "replicas[0].count", "many"),
    (
        "rate-above-one",
        _REPLICA + "[replicas.faults]\nrate_500 = 1.5\n",
        "replicas[0].faults.rate_500",
        "1.5",
    ),
    (
        "rates-sum-above-one",
        _REPLICA + "[replicas.faults]\nrate_500 = 0.6\nrate_503 = 0.6\n",
        "replicas[0].faults",
        "more than 1",
    ),
    (
        "duplicate-replica",
        _REPLICA + '[[replicas]]\nname = "x"\nprofile = "B200-FP8"\n',
        "replicas",
        "duplicate",
    ),
    ("bad-replica-name", _REPLICA.replace('"x"', '"a/b"'), "replicas[0].name", "a/b"),
    ("bad-stream-usage", 'stream_usage = "sometimes"\n' + _REPLICA, "stream_usage", "sometimes"),
    ("no-models", '[[replicas]]\nname = "x"\nprofile = "H100-FP8"\n', "models", "missing"),
    (
        "profile-missing-fields",
        _REPLICA + '[profiles.NEW]\nhardware = "B300"\n',
        "profiles.NEW.precision",
        "without `base`",
    ),
    ("unknown-base", _REPLICA + '[profiles.NEW]\nbase = "A100"\n', "profiles.NEW.base", "A100"),
    (
        "unknown-encoding",
        _REPLICA + '[profiles.NEW]\nbase = "H100-FP8"\nencoding = "llama3"\n',
        "profiles.NEW.encoding",
        "llama3",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [case[1:] for case in BAD_FLEETS],
    ids=[case[0] for case in BAD_FLEETS],
)
def test_bad_fleet_file_names_file_and_key(fleet_file, text, key, message):
    path = fleet_file(text)
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    error = caught.value
    assert error.source == str(path) and error.key == key
    assert message in str(error) and str(path) in str(error)


def test_missing_fleet_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_fleet(tmp_path / "absent.toml")
    assert caught.value.source == str(tmp_path / "absent.toml")


def test_run_simulator_rejects_a_bad_fleet_before_serving(fleet_file):
    with pytest.raises(ConfigError), run_simulator(fleet_file("nonsense = [")):
        pass
