"""API keys of the front door, kept in the ledger database: only digests are stored.

A key is ``sgk_`` plus 32 random bytes (URL-safe base64). It is shown once, when
created; the ``api_key`` table keeps its SHA-256 digest, a short prefix to tell
keys apart, the tenant (and optional user) it speaks for, and when it was
revoked. Looking a key up hashes what the client sent and compares digests, so a
leaked database holds nothing a client could send.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from spendgraph.providers.ledger.records import new_id, utcnow
from spendgraph.providers.ledger.store import WRITE_OPTION
from spendgraph.providers.ledger.tables import API_KEY

KEY_PREFIX = "sgk_"
# Enough of the key to tell keys apart in `keys list`, far too little to guess it.
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 6


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What the ledger knows about a key (never the key itself)."""

    id: str
    prefix: str
    tenant: str
    user: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def digest_of(key: str) -> str:
    """The stored form of ``key``: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    engine: Engine, *, tenant: str, user: str = "", name: str = ""
) -> tuple[str, ApiKeyInfo]:
    """A new key for ``tenant``: the key (show it once, store it nowhere) and its record."""
    if not tenant:
        raise ValueError("an API key needs a tenant")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    info = ApiKeyInfo(
        id=new_id(),
        prefix=key[:SHOWN_PREFIX_CHARS],
        tenant=tenant,
        user=user,
        name=name,
        created_at=utcnow(),
        revoked_at=None,
    )
    row = {field: getattr(info, field) for field in ApiKeyInfo.__dataclass_fields__}
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        conn.execute(insert(API_KEY).values(**row, digest=digest_of(key)))
    return key, info


def find_key(engine: Engine, key: str) -> ApiKeyInfo | None:
    """The active record of ``key``, or None when it is unknown or revoked."""
    stmt = select(*_info_columns()).where(API_KEY.c.digest == digest_of(key))
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    return ApiKeyInfo(**row)


def list_keys(engine: Engine, *, tenant: str | None = None) -> list[ApiKeyInfo]:
    """Every key (revoked ones too), oldest first; only ``tenant``'s when given."""
    stmt = select(*_info_columns()).order_by(API_KEY.c.created_at, API_KEY.c.id)
    if tenant is not None:
        stmt = stmt.where(API_KEY.c.tenant == tenant)
    with engine.connect() as conn:
        return [ApiKeyInfo(**row) for row in conn.execute(stmt).mappings()]


def revoke_key(engine: Engine, key_id_or_prefix: str) -> list[ApiKeyInfo]:
    """Revoke the active key whose id or shown prefix is ``key_id_or_prefix``.

    Returns the keys revoked (none when nothing matched). A prefix matching
    several active keys revokes none and returns them all, for the caller to report.
    """
    c = API_KEY.c
    match = (c.id == key_id_or_prefix) | (c.prefix == key_id_or_prefix)
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        found = (
            conn.execute(select(*_info_columns()).where(match, c.revoked_at.is_(None)))
            .mappings()
            .all()
        )
        if len(found) != 1:
            return [ApiKeyInfo(**row) for row in found]
        now = utcnow()
        conn.execute(update(API_KEY).where(c.id == found[0]["id"]).values(revoked_at=now))
    return [ApiKeyInfo(**{**found[0], "revoked_at": now})]


def _info_columns():
    return [API_KEY.c[name] for name in ApiKeyInfo.__dataclass_fields__]
