"""The audit web app: one page (``assets/``) and the JSON endpoints it draws from.

``GET /`` is the page; ``/assets/...`` its script and styles; ``/api/meta``,
``/api/summary``, ``/api/timeline``, ``/api/queries``, ``/api/queries/{id}``,
``/api/reprice`` and ``/api/whatif`` the data (see :class:`AuditViews`). The
app only reads. Ledger reads are blocking, so they run in the thread pool.
A bad parameter is a 400 naming it, an unknown query a 404, both JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from spendgraph.providers.errors import LedgerError, SpendgraphError
from spendgraph.providers.ledger import GroupBy, Ledger, LedgerFilter, QuerySort
from spendgraph.serve.audit import params
from spendgraph.serve.audit.params import FILTERS, BadParameter
from spendgraph.serve.audit.timeline import timeline
from spendgraph.serve.audit.views import AmbiguousQuery, AuditViews, BadTarget, QueryNotFound

_PACKAGE = "spendgraph.serve.audit"
_DEFAULT_LIMIT = 50
# Nothing but this origin: no CDN, no fonts, no beacons (users run this behind firewalls).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Timeline lanes: dimensions of calls (a day per bucket would be a bucket of buckets).
_TIMELINE_BY = tuple(member for member in GroupBy if member is not GroupBy.DAY)
# Host headers (without the port) that name this machine's loopback.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """``defaults``: the filters a request starts from (``audit serve --app ...``);
    ``allowed_hosts``: the ``Host`` headers served (None: any), which keeps a web
    page elsewhere from reading a loopback audit through DNS rebinding."""

    defaults: LedgerFilter = field(default_factory=LedgerFilter)
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS


def audit_app(ledger: Ledger, views: AuditViews, options: AuditOptions | None = None) -> Starlette:
    """The ASGI app over ``ledger``; ``views`` make its JSON (see :class:`AuditViews`)."""
    chosen = options or AuditOptions()
    api = _Api(ledger, views, chosen.defaults)
    assets = StaticFiles(packages=[(_PACKAGE, "assets")])
    routes = [
        Route("/", _page),
        Mount("/assets", app=assets, name="assets"),
        Route("/api/meta", api.meta),
        Route("/api/summary", api.summary),
        Route("/api/timeline", api.timeline),
        Route("/api/queries", api.queries),
        Route("/api/queries/{query_id:path}", api.show),
        Route("/api/reprice", api.reprice),
        Route("/api/whatif", api.whatif),
        Route("/api/{rest:path}", _no_such_endpoint),
    ]
    middleware = [Middleware(_Guard, allowed_hosts=chosen.allowed_hosts)]
    return Starlette(routes=routes, middleware=middleware)


async def _page(request: Request) -> Response:
    return FileResponse(Path(str(files(_PACKAGE) / "assets" / "index.html")))


async def _no_such_endpoint(request: Request) -> Response:
    return _error(404, f"no endpoint {request.url.path}")


class _Api:
    """The JSON endpoints: parse the parameters, run the view in the thread pool."""

    def __init__(self, ledger: Ledger, views: AuditViews, defaults: LedgerFilter) -> None:
        self._ledger, self._views, self._defaults = ledger, views, defaults

    async def meta(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            params.only(_query(request), ())
            return self._views.meta()

        return await _answer(work)

    async def summary(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            query = params.only(_query(request), (*FILTERS, "by"))
            by = params.choice(query, "by", GroupBy, GroupBy.AGENT)
            return self._views.summary(params.filters(query, self._defaults), by)

        return await _answer(work)

    async def timeline(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            query = params.only(_query(request), (*FILTERS, "by"))
            by = params.choice(query, "by", GroupBy, GroupBy.AGENT)
            if by not in _TIMELINE_BY:
                raise BadParameter("by", str(by), f"expected one of {', '.join(_TIMELINE_BY)}")
            filters = params.filters(query, self._defaults)
            return timeline(self._views.summary_of, self._ledger, filters, by)

        return await _answer(work)

    async def queries(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            query = params.only(_query(request), (*FILTERS, "sort", "limit"))
            sort = params.choice(query, "sort", QuerySort, QuerySort.TIME)
            limit = params.count(query, "limit", _DEFAULT_LIMIT)
            return self._views.queries(params.filters(query, self._defaults), sort, limit)

        return await _answer(work)

    async def show(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            params.only(_query(request), ())
            return self._views.show(request.path_params["query_id"])

        return await _answer(work)

    async def reprice(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            query = params.only(_query(request), (*FILTERS, "on", "limit"))
            on = params.required(query, "on")
            limit = params.count(query, "limit", _DEFAULT_LIMIT)
            return self._views.reprice(params.filters(query, self._defaults), on, limit)

        return await _answer(work)

    async def whatif(self, request: Request) -> Response:
        def work() -> dict[str, Any]:
            query = params.only(_query(request), (*FILTERS, "limit"))
            limit = params.count(query, "limit", _DEFAULT_LIMIT)
            return self._views.whatif(params.filters(query, self._defaults), limit)

        return await _answer(work)


def _query(request: Request) -> dict[str, str]:
    """The parameters by name; one given twice is ambiguous, so a 400."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in found:
            raise BadParameter(name, value, f"given more than once (also as {found[name]!r})")
        found[name] = value
    return found


async def _answer(work: Callable[[], dict[str, Any]]) -> Response:
    """Run ``work`` off the event loop; map what it raises to an HTTP status."""
    try:
        return JSONResponse(await run_in_threadpool(work))
    except BadParameter as exc:
        return _error(400, str(exc), parameter=exc.parameter, value=exc.value)
    except QueryNotFound as exc:
        return _error(404, str(exc), parameter="query_id")
    except (AmbiguousQuery, BadTarget) as exc:
        parameter = "on" if isinstance(exc, BadTarget) else "query_id"
        return _error(400, str(exc), parameter=parameter)
    except LedgerError as exc:
        return _error(503, f"the ledger cannot be read: {exc}")
    except SpendgraphError as exc:  # anything else the audit commands would print as error:
        return _error(500, str(exc))


def _error(status: int, message: str, **detail: str) -> JSONResponse:
    return JSONResponse({"error": message, **detail}, status_code=status)


class _Guard:
    """Security headers on every response; a request for another host is refused."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str] | None) -> None:
        self.app, self.allowed_hosts = app, allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _host(scope)
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            refused = _error(400, f"this audit is served on loopback only, not for host {host!r}")
            await refused(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in _HEADERS.items()]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host(scope: Scope) -> str:
    """The Host header's name without its port (``[::1]`` keeps its brackets)."""
    raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip().lower()
    if raw.startswith("["):
        return raw.split("]")[0] + "]"
    return raw.split(":")[0]
