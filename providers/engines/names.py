"""The engine names an endpoint's ``engine`` key accepts, and their spellings.

Kept free of imports so the config layer can validate against it without
loading the profiles.
"""

from __future__ import annotations

from typing import Literal, get_args

# Engines with their own profile (see :mod:`.profiles`); the simulator has a
# dialect of each (providers/local/sim/dialects.py).
EngineName = Literal[
    "vllm",
    "sglang",
    "trtllm",
    "dynamo",
    "nim",
    "llama-server",
    "llama-cpp-python",
    "ollama",
    "openai",
]
PROFILED: tuple[str, ...] = get_args(EngineName)
# Older names, still accepted as written: ``llamacpp`` is what the embedded
# endpoint (llama-cpp-python) has always been called; ``hosted`` and ``other``
# behave like plain OpenAI; ``sim`` is the fleet simulator.
LEGACY = ("llamacpp", "hosted", "sim", "other")
ENGINES = (*PROFILED, *LEGACY)

# Other spellings -> the canonical name stored in the config and the ledger.
ALIASES = {
    "tensorrt-llm": "trtllm",
    "tensorrt_llm": "trtllm",
    "trt-llm": "trtllm",
    "trtllm-serve": "trtllm",
    "llama.cpp": "llama-server",
    "llama-cpp": "llama-server",
    "llama_server": "llama-server",
    "llama_cpp_python": "llama-cpp-python",
    "nvidia-nim": "nim",
    "ai-dynamo": "dynamo",
}


def canonical_engine(value: str) -> str:
    """``value`` lower-cased and de-aliased (``"TensorRT-LLM"`` -> ``"trtllm"``); not checked."""
    lowered = value.strip().lower()
    return ALIASES.get(lowered, lowered)
