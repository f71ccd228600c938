"""ORM classes mapped onto the ledger's Core tables, for code that writes rows with a Session.

The ledger itself writes and reads with Core SQL (see :mod:`.tables`); this
module is only imported by code that wants ``session.add(Call(...))``, such
as the ORM baseline of ``benchmarks/ledger_throughput.py``, so the ORM never
loads for an audit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import registry

from spendgraph.providers.ledger.tables import CALL, QUERY

_REGISTRY = registry()


class _Row:
    """A mapped row built from column keyword arguments, like a SQLModel table class."""

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


class Query(_Row):
    """One ``query`` row."""


class Call(_Row):
    """One ``call`` row."""


_REGISTRY.map_imperatively(Query, QUERY)
_REGISTRY.map_imperatively(Call, CALL)
