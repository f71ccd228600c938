"""The strict base of every config model and the field types several of them share."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

NonEmptyStr = Annotated[str, Field(min_length=1)]


class ConfigModel(BaseModel):
    """Frozen, no unknown keys, no type coercion (``"5"`` is not 5, ``true`` is not 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


def as_decimal(value: Any) -> Any:
    """Let code pass ints and floats to Decimal fields; anything else meets the strict check.

    Use as a ``BeforeValidator``: TOML already gives ``Decimal`` (the loader
    parses floats that way), this is for configs built in code.
    """
    if isinstance(value, bool):
        return value  # rejected by the strict Decimal check, as it should be
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest repr, i.e. what was written
    return value
