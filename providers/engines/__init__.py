"""Engine profiles: what each serving engine (vLLM, SGLang, TensorRT-LLM, Dynamo, NIM,
llama.cpp, llama-cpp-python, Ollama) sends and accepts, where its usage, tokenizer
and metrics are. See :mod:`.profiles` for the server code each profile follows."""

from spendgraph.providers.engines.counting import MeasuredCounts, prompt_key
from spendgraph.providers.engines.names import ENGINES, canonical_engine
from spendgraph.providers.engines.profiles import (
    PROFILES,
    EngineProfile,
    MetricNames,
    TokenizerApi,
    profile_for,
    tokenizer_for,
    usage_from_timings,
)

__all__ = [
    "ENGINES",
    "PROFILES",
    "EngineProfile",
    "MeasuredCounts",
    "MetricNames",
    "TokenizerApi",
    "canonical_engine",
    "profile_for",
    "prompt_key",
    "tokenizer_for",
    "usage_from_timings",
]
