"""Hardware profiles: how fast and how expensive one simulated replica is.

A profile describes one serving replica (a node running one engine instance) of
the *large* reference model (a big mixture-of-experts model in the class of
DeepSeek-R1 / Kimi-K2 / gpt-oss-120b). Smaller models scale these figures with
their own ``time_factor`` and ``price_factor`` (see :mod:`.fleet`).

The figures are approximate and *relative*: they were taken by hand from public
material (NVIDIA's Blackwell / InferenceMAX / Dynamo blog posts, the
SemiAnalysis InferenceMAX dashboard write-ups, and the vLLM / SGLang
performance posts for H100 / H200). Nobody browsed while writing this file, so
treat every number as "the right order of magnitude and the right ratio
between generations", not as a benchmark result. The seed figures are:

* cost per million tokens of a large MoE model: about $0.20 on Hopper, $0.10 on
  Blackwell FP8 and $0.05 on Blackwell NVFP4 (NVIDIA blog "Leading inference
  providers cut AI costs by up to 10x with open source models on Blackwell");
* Blackwell delivers roughly 2.5x the throughput per dollar of Hopper
  (SemiAnalysis InferenceMAX, NVIDIA GTC material) — our FP8 and NVFP4 prices
  bracket that ratio (2x and 4x);
* cached input is typically billed at 1/4 to 1/10 of uncached input (public
  price lists of hosted providers of open models).

Input and output are priced at the same blended figure so the seed numbers
carry over unchanged; real price lists usually charge output at a premium.

TTFTs are chosen so that a 400 ms first-token target (voice agents) is met by
the Blackwell pools for short prompts and by all pools for ~1k-token prompts,
but missed on Hopper for long (~8k-token) prompts: TTFT = base + prompt /
prefill rate, e.g. H100 8k tokens = 150 ms + 8000 / 10000 s = 950 ms, B200
NVFP4 8k tokens = 60 ms + 8000 / 50000 s = 220 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from spendgraph.providers.tokens import DEFAULT_ENCODING


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal

    def scaled(self, factor: Decimal) -> Prices:
        """These prices multiplied by ``factor`` (for a smaller model on the same hardware)."""
        return Prices(self.input * factor, self.cached_input * factor, self.output * factor)


@dataclass(frozen=True)
class HardwareProfile:
    """Speed, capacity and price of one replica serving the large reference model."""

    name: str
    hardware: str
    precision: str
    prefill_tokens_per_s: float
    ttft_base_ms: float
    inter_token_ms: float
    max_seqs: int
    cache_blocks: int
    prices: Prices
    block_size: int = 16
    encoding: str = DEFAULT_ENCODING
    engine: str = "sim"


def _prices(input_: str, cached: str, output: str) -> Prices:
    return Prices(Decimal(input_), Decimal(cached), Decimal(output))


# Read-only on purpose: fleet files add or override profiles in their own
# mapping, they never mutate this one.
BUILTIN_PROFILES: MappingProxyType[str, HardwareProfile] = MappingProxyType(
    {
        # Hopper H100 SXM, FP8 (vLLM / SGLang). Seed: ~$0.20 per million tokens.
        # ~30 ms per output token for a large MoE at moderate batch (vLLM and
        # SGLang H100 DeepSeek posts); prefill ~10k tokens/s per sequence.
        "H100-FP8": HardwareProfile(
            name="H100-FP8",
            hardware="H100",
            precision="fp8",
            prefill_tokens_per_s=10_000,
            ttft_base_ms=150,
            inter_token_ms=30,
            max_seqs=64,
            cache_blocks=20_000,
            prices=_prices("0.20", "0.05", "0.20"),
        ),
        # Hopper H200: same compute as H100, ~1.4x memory bandwidth and 141 GB,
        # so faster decode and a larger KV cache (NVIDIA H200 product brief).
        "H200-FP8": HardwareProfile(
            name="H200-FP8",
            hardware="H200",
            precision="fp8",
            prefill_tokens_per_s=12_000,
            ttft_base_ms=130,
            inter_token_ms=22,
            max_seqs=96,
            cache_blocks=32_000,
            prices=_prices("0.18", "0.045", "0.18"),
        ),
        # Blackwell B200, FP8 (TensorRT-LLM / Dynamo). Seed: ~$0.10 per million
        # tokens; ~3x the per-GPU prefill of Hopper (NVIDIA Blackwell blog).
        "B200-FP8": HardwareProfile(
            name="B200-FP8",
            hardware="B200",
            precision="fp8",
            prefill_tokens_per_s=30_000,
            ttft_base_ms=80,
            inter_token_ms=12,
            max_seqs=128,
            cache_blocks=48_000,
            prices=_prices("0.10", "0.02", "0.10"),
        ),
        # Blackwell B200, NVFP4 (TensorRT-LLM / Dynamo). Seed: ~$0.05 per
        # million tokens (NVIDIA "up to 10x lower cost" blog, InferenceMAX).
        "B200-NVFP4": HardwareProfile(
            name="B200-NVFP4",
            hardware="B200",
            precision="nvfp4",
            prefill_tokens_per_s=50_000,
            ttft_base_ms=60,
            inter_token_ms=8,
            max_seqs=256,
            cache_blocks=80_000,
            prices=_prices("0.05", "0.01", "0.05"),
        ),
        # Grace-Blackwell GB200 NVL72, NVFP4 with Dynamo disaggregated serving:
        # a bit better than B200 NVFP4 (NVIDIA Dynamo / GB200 NVL72 posts).
        "GB200-NVFP4": HardwareProfile(
            name="GB200-NVFP4",
            hardware="GB200",
            precision="nvfp4",
            prefill_tokens_per_s=60_000,
            ttft_base_ms=50,
            inter_token_ms=6,
            max_seqs=256,
            cache_blocks=96_000,
            prices=_prices("0.04", "0.008", "0.04"),
        ),
    }
)
