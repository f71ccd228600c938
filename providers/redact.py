"""Scrubbing secrets out of what a server sends back, before it reaches an error, a row or a log.

Servers echo credentials more often than one would hope: ``401 Incorrect API
key provided: Bearer sk-...``, a proxy's 500 page quoting the request headers.
Everything spendgraph takes from a server to put in a message (an error body,
an HTML page, an error event in a stream) goes through :meth:`Redactor.scrub`
at the boundary (:mod:`spendgraph.providers.endpoint`), so no later layer --
the exception text, the ledger's ``query.error``, the CLI, a log -- ever holds
a key.

Two nets: every key spendgraph knows (the endpoint's own, and the one the
failing request carried), in full or by its first characters (servers often
echo ``sk-abc1****wxyz``); and anything shaped like a credential whoever it
belongs to (``Bearer ...``, ``Basic ...``, ``sk-...``, ``nvapi-...``, ``hf_...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# An Authorization value as servers echo it, and token shapes of the common
# providers (OpenAI ``sk-``/``sk-proj-``, NVIDIA ``nvapi-``, Hugging Face ``hf_``).
_CREDENTIAL = re.compile(
    r"(?i:\bbearer\s+)[^\s\"',;]+"
    r"|(?i:\bbasic\s+)[A-Za-z0-9+/=]{8,}"
    r"|\b(?:sk|nvapi)-[A-Za-z0-9_*.-]{6,}"
    r"|\bhf_[A-Za-z0-9]{8,}"
)
# A known key is also scrubbed where it starts a longer masked echo (``sk-abc1****``).
_PREFIX_CHARS = 8
# Shorter values are not scrubbed by themselves: a 3-letter "key" would eat ordinary words.
_MIN_SECRET_CHARS = 4
# Placeholder spendgraph sends to servers without auth (see config.endpoint.NO_API_KEY).
_NOT_SECRET = frozenset({"not-needed", ""})


class Redactor:
    """Replaces known secrets and credential-shaped tokens with ``[redacted]``."""

    __slots__ = ("_pattern", "secrets")

    def __init__(self, secrets: Iterable[str | None] = ()):
        self.secrets: tuple[str, ...] = tuple(
            sorted(
                {s for s in secrets if s and s not in _NOT_SECRET and len(s) >= _MIN_SECRET_CHARS},
                key=len,
                reverse=True,  # the longest first, so a key containing another goes whole
            )
        )
        parts = [re.escape(s) for s in self.secrets]
        parts += [
            re.escape(s[:_PREFIX_CHARS]) + r"\S*" for s in self.secrets if len(s) > _PREFIX_CHARS
        ]
        self._pattern = re.compile("|".join(parts)) if parts else None

    def with_secrets(self, secrets: Iterable[str | None]) -> Redactor:
        """This redactor's secrets plus ``secrets`` (e.g. the key a failed request carried)."""
        extra = [s for s in secrets if s and s not in self.secrets]
        return Redactor((*self.secrets, *extra)) if extra else self

    def scrub(self, text: str) -> str:
        """``text`` without any known secret or credential-shaped token."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _CREDENTIAL.sub(_mask_credential, text)


def _mask_credential(match: re.Match[str]) -> str:
    # Keep the scheme word ("Bearer [redacted]") so the message still says what was echoed.
    scheme = re.match(r"(?i)(bearer|basic)\s+", match.group(0))
    return (scheme.group(0) if scheme else "") + REDACTED


def authorization_secret(header: str | None) -> str | None:
    """The credential inside an ``Authorization`` header value (``Bearer X`` -> ``X``)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() or scheme


#: Scrubs credential-shaped tokens only; for messages with no key at hand.
GENERIC = Redactor()
