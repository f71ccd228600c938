"""Errors of the graph layer, rooted in :class:`~spendgraph.providers.errors.SpendgraphError`."""

from __future__ import annotations

from spendgraph.providers.errors import SpendgraphError


class GraphBuildError(SpendgraphError, ValueError):
    """A graph builder was given inputs it cannot build from.

    Raised at build time -- duplicate or reserved agent names, an empty list of
    specialists, an unknown route, contradictory options -- never mid-run.
    """
