"""What a query workflow is started with: the app, the input and how the run is recorded."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """One query as it travels through Temporal (JSON values only).

    ``query_id`` is also the workflow id. ``budget_usd`` is a decimal string.
    ``base_checkpoint`` is set by the workflow: the thread's checkpoint before
    the query (``None``: a new thread), from which every delivery of the graph
    driver starts. ``heartbeat_s``: how long a silent worker is trusted.
    """

    query_id: str
    app: str
    text: str
    thread_id: str
    user: str = ""
    tenant: str = ""
    budget_usd: str | None = None
    budget_tokens: int | None = None
    store_text: bool | None = None
    stream_tokens: bool = True
    recursion_limit: int | None = None
    heartbeat_s: float | None = None
    base_checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuerySpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def budget(self) -> Decimal | None:
        return None if self.budget_usd is None else Decimal(self.budget_usd)
