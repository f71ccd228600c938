"""The audit web app: charts and tables over the ledger, served by ``spendgraph audit serve``.

``audit_app(ledger, views)`` is the ASGI app. It reads the ledger and never
writes it. Its JSON endpoints answer with what :class:`AuditViews` gives --
the ``--json`` output of ``audit summary``, ``queries``, ``show`` and
``reprice`` -- and its pages (``assets/``, shipped in the package, nothing
fetched from elsewhere) draw them.
"""

from spendgraph.serve.audit.app import LOOPBACK_HOSTS, AuditOptions, audit_app
from spendgraph.serve.audit.views import AmbiguousQuery, AuditViews, BadTarget, QueryNotFound

__all__ = [
    "LOOPBACK_HOSTS",
    "AmbiguousQuery",
    "AuditOptions",
    "AuditViews",
    "BadTarget",
    "QueryNotFound",
    "audit_app",
]
