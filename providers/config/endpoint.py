"""One ``[[endpoints]]`` entry of ``spendgraph.toml``: where it is, what it serves, what
it costs; the hardware and engine vocabulary; ``${VAR}`` expansion in URLs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from spendgraph.providers.config.base import ConfigModel, NonEmptyStr, as_decimal
from spendgraph.providers.config.errors import did_you_mean, show
from spendgraph.providers.config.prices import PriceConfig
from spendgraph.providers.engines.names import ENGINES, canonical_engine
from spendgraph.providers.errors import ConfigError
from spendgraph.providers.usage import Price

# The openai client refuses an empty api_key; servers without auth ignore it.
NO_API_KEY = "not-needed"

# An attempt's default limits (seconds): the answer / first token / silence, a whole stream.
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_STREAM_TIMEOUT_S = 300.0

# How spendgraph.providers.tokens counts this endpoint's prompts offline: a
# tiktoken encoding (OpenAI's recipe, an estimate) or a model family whose chat
# template and vocabulary it renders exactly (providers/templates.py, harmony.py).
Tokenizer = Literal[
    "o200k_base", "o200k_harmony", "cl100k_base",
    "gpt-oss", "llama3", "llama3.1", "llama3.2", "qwen2.5", "qwen3",
]  # fmt: skip
TOKENIZER_ENCODINGS: tuple[str, ...] = get_args(Tokenizer)
# Canonical spellings; input is matched case-insensitively. "other" is the
# escape hatch for hardware not listed here (it still validates, so a typo
# such as "B20" is caught instead of silently becoming a new kind).
HARDWARE = (
    *("B200", "B300", "GB200", "GB300", "H100", "H200", "H20", "GH200"),
    *("A100", "A10G", "L40S", "L4", "MI300X", "MI325X", "MI355X", "cpu", "other"),
)
# Tokenizer endpoints ``tokenize_api`` can name; unset, the engine's profile picks one.
TokenizeApi = Literal["none", "vllm", "sglang", "trtllm", "llama-server", "llamacpp"]
TOKENIZE_APIS: tuple[str, ...] = get_args(TokenizeApi)
_HARDWARE_BY_LOWER = {name.lower(): name for name in HARDWARE}
_PRECISION = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _env(info: ValidationInfo) -> Mapping[str, str]:
    """The environment a loader passed in the validation context (else the process's)."""
    context = info.context or {}
    return context.get("env", os.environ)


def expand_env(text: str, env: Mapping[str, str] = os.environ) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (default when VAR is unset or empty).

    Raises ``ValueError`` naming the variable when one without a default is
    unset, or when a ``${`` is not a well-formed reference. A ``$`` not
    followed by ``{`` is kept as is.
    """
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match["name"])
        if match["default"] is not None and not value:
            return match["default"]
        if value is None:
            missing.append(match["name"])
            return ""
        return value

    expanded = _ENV_REFERENCE.sub(substitute, text)
    if "${" in _ENV_REFERENCE.sub("", text):
        raise ValueError("malformed ${...} reference; expected ${NAME} or ${NAME:-default}")
    if missing:
        name = missing[0]
        raise ValueError(
            f"environment variable {name} is not set; set it, or give a default: ${{{name}:-...}}"
        )
    return expanded


# -- endpoints ----------------------------------------------------------------


class EndpointConfig(ConfigModel):
    """One OpenAI-compatible endpoint: where it is, what it serves, what it costs."""

    name: str
    base_url: str
    model: NonEmptyStr
    serves: list[NonEmptyStr] = Field(default_factory=list)
    pool: str = ""
    api_key_env: str | None = None
    hardware: str = ""
    precision: str = ""
    engine: str = ""
    price: PriceConfig | None = None
    max_concurrency: Annotated[int, Field(ge=1)] | None = None
    # One attempt's wall-clock limits: timeout_s for a non-streamed answer, a
    # stream's first token and its longest silence; stream_timeout_s for a whole
    # stream (at least timeout_s). See README, "Timeouts".
    timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_TIMEOUT_S
    stream_timeout_s: Annotated[float, Field(gt=0)] | None = None
    tokenizer: Tokenizer = "o200k_base"
    # Unset: the engine's tokenizer endpoint (see providers/engines); "none" turns it off.
    tokenize_api: TokenizeApi = "none"
    # Under a budget, a prompt counted locally (no tokenize_api, or it failed) is
    # reserved as tiktoken's count x (1 + prompt_margin): the server's tokenizer
    # may count more than tiktoken does.
    prompt_margin: Annotated[Decimal, BeforeValidator(as_decimal), Field(ge=0, le=10)] = Decimal(
        "0.1"
    )
    tags: list[NonEmptyStr] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_pool(cls, data: Any) -> Any:
        # A lone endpoint is a pool of one; replicas opt into a shared pool.
        if isinstance(data, dict) and data.get("pool") in (None, "") and "name" in data:
            data = {**data, "pool": data["name"]}
        return data

    @model_validator(mode="after")
    def _check_stream_timeout(self) -> EndpointConfig:
        if self.stream_timeout_s is not None and self.stream_timeout_s < self.timeout_s:
            raise ValueError(
                f"stream_timeout_s ({self.stream_timeout_s:g}) must be >= "
                f"timeout_s ({self.timeout_s:g}): it caps a whole stream, "
                "timeout_s only its first token"
            )
        return self

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value or any(char.isspace() for char in value):
            raise ValueError(f"expected a non-empty name without spaces, got {show(value)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str, info: ValidationInfo) -> str:
        url = expand_env(value, _env(info))
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 -- raises ValueError for a non-numeric port
        except ValueError:
            valid = False
        if not valid:
            origin = f" (from {show(value)})" if url != value else ""
            raise ValueError(f"expected an http:// or https:// URL, got {show(url)}{origin}")
        if parts.username is not None or parts.password is not None:
            # The HTTP client logs every request's URL: a password in it would be in the logs.
            raise ValueError(
                "credentials in the URL are not allowed (the URL is logged); put the key in "
                "an environment variable and name it in api_key_env"
            )
        return url

    @field_validator("api_key_env")
    @classmethod
    def _check_api_key_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Never echo the value: a pasted key here is exactly what we must not print.
        if value is None:
            return None
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "expected the NAME of an environment variable (letters, digits, _), "
                "not the key itself"
            )
        # Only a loader checks the environment; code that builds an
        # EndpointConfig by hand learns about a missing key from api_key().
        if info.context and "env" in info.context and not info.context["env"].get(value):
            raise ValueError(
                f"environment variable {value} is not set (it should hold the API key)"
            )
        return value

    @field_validator("hardware")
    @classmethod
    def _normalise_hardware(cls, value: str) -> str:
        if not value:
            return ""
        canonical = _HARDWARE_BY_LOWER.get(value.strip().lower())
        if canonical is None:
            raise ValueError(
                f"expected one of {', '.join(HARDWARE)} (any case), "
                f"got {show(value)}{did_you_mean(value.upper(), HARDWARE)}"
            )
        return canonical

    @field_validator("precision")
    @classmethod
    def _normalise_precision(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered and not _PRECISION.fullmatch(lowered):
            raise ValueError(
                f"expected a precision name such as nvfp4, fp8, bf16 or q4_k_m, got {show(value)}"
            )
        return lowered

    @field_validator("engine")
    @classmethod
    def _normalise_engine(cls, value: str) -> str:
        lowered = canonical_engine(value)
        if lowered and lowered not in ENGINES:
            raise ValueError(
                f"expected one of {', '.join(ENGINES)}, got {show(value)}"
                f"{did_you_mean(lowered, ENGINES)}"
            )
        return lowered

    @field_validator("tokenize_api", mode="before")
    @classmethod
    def _normalise_tokenize_api(cls, value: Any) -> Any:
        aliases = {"llama-cpp-python": "llamacpp", "llama.cpp": "llama-server"}
        if not isinstance(value, str):
            return value
        lowered = value.strip().lower()
        return aliases.get(lowered, lowered)

    def tokenize_api_chosen(self) -> bool:
        """Whether ``tokenize_api`` was set in the config (else the engine's profile decides)."""
        return "tokenize_api" in self.model_fields_set

    def api_key(self, env: Mapping[str, str] = os.environ) -> str:
        """The API key from the variable named by ``api_key_env``, or ``"not-needed"``."""
        if self.api_key_env is None:
            return NO_API_KEY
        key = env.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"environment variable {self.api_key_env} is not set (it should hold the API key)",
                key=f"endpoints ({self.name}).api_key_env",
            )
        return key

    def stream_cap_s(self) -> float:
        """How long one streamed attempt may run in all: ``stream_timeout_s``, by
        default 300 s (or ``timeout_s`` if that is longer)."""
        if self.stream_timeout_s is not None:
            return self.stream_timeout_s
        return max(DEFAULT_STREAM_TIMEOUT_S, self.timeout_s)

    def names(self) -> frozenset[str]:
        """Every model or tier name this endpoint answers to: its model plus ``serves``."""
        return frozenset((self.model, *self.serves))

    def resolved_price(self) -> Price:
        """The endpoint's :class:`Price`; :meth:`Price.unknown` when it has none."""
        return self.price.to_price() if self.price is not None else Price.unknown()
