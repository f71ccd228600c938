"""Who is asking: a bearer API key mapped to its tenant and user.

Keys are looked up by digest in the ledger's ``api_key`` table; answers are
cached for a few seconds so a busy worker does not pay a database round trip
per request, which is also how long a revoked key may still be accepted.
The key itself is never logged, stored or echoed in an error.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from spendgraph.providers.ledger.keys import digest_of, find_key
from spendgraph.serve.runner import Caller

CACHE_SECONDS = 5.0


class Unauthorized(Exception):
    """No key, or a key that is unknown or revoked (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class _Cached:
    caller: Caller | None
    until: float


class KeyAuth:
    """Turns an ``Authorization`` header into a :class:`Caller`, or raises :class:`Unauthorized`.

    ``required=False`` serves without keys (local use): every request is an
    anonymous caller whose user is the request's ``user`` field.
    """

    def __init__(self, engine: Engine, *, required: bool = True, cache_s: float = CACHE_SECONDS):
        self.required = required
        self._engine = engine
        self._cache_s = cache_s
        self._cache: dict[str, _Cached] = {}

    async def caller(self, authorization: str | None) -> Caller:
        if not self.required:
            return Caller()
        key = _bearer(authorization)
        if key is None:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        digest = digest_of(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached.until < now:
            info = await asyncio.to_thread(find_key, self._engine, key)
            caller = None if info is None else Caller(tenant=info.tenant, user=info.user)
            if len(self._cache) > 10_000:  # bounded: unknown keys must not grow it forever
                self._cache.clear()
            cached = self._cache[digest] = _Cached(caller, now + self._cache_s)
        if cached.caller is None:
            raise Unauthorized("invalid API key (unknown or revoked)")
        return cached.caller


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None
