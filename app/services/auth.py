"""API keys: who is calling, what they may see, and how often they may call."""

from __future__ import annotations

import hmac
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from app.errors import RateLimited, Unauthorized
from app.services.api_keys import KeyCache, is_admin_name
from app.settings import Settings, parse_api_key


@dataclass(frozen=True)
class Principal:
    """The caller: the key's name, and whether it sees every task."""

    name: str
    admin: bool

    @property
    def scope(self) -> str | None:
        """The owner whose tasks this caller sees; None for all."""
        return None if self.admin else self.name


ANONYMOUS = Principal(name="", admin=True)
"""While no key is required (see Authenticator), every caller is this one."""


ACCEPTED_HEADERS = "`Authorization: Bearer <key>`, `X-API-Key: <key>` or `X-Token: <key>`"
"""The headers a key may come in, as error messages name them."""


@dataclass(frozen=True)
class PresentedKey:
    """The key a request sent, and the header it came in."""

    key: str
    header: str


def presented_key(*, authorization: str | None, x_api_key: str | None, x_token: str | None) -> PresentedKey | None:
    """The key from `Authorization: Bearer`, else `X-API-Key`, else `X-Token` (the headers other Whisper servers'
    clients send); None when none holds one (another Authorization scheme, such as Basic, holds none)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return PresentedKey(token.strip(), "Authorization")
    for header, value in (("X-API-Key", x_api_key), ("X-Token", x_token)):
        if value and value.strip():
            return PresentedKey(value.strip(), header)
    return None


@dataclass(frozen=True)
class KeyRing:
    """The keys configured in the environment, by secret."""

    keys: tuple[tuple[str, bytes], ...]  # (name, secret)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Parse `name:key` / `key` items; the seed's ACCESS_TOKEN is the key named `default`."""
        keys = []
        for i, item in enumerate(settings.api_keys):
            name, secret = parse_api_key(item)
            keys.append((name or f"key{i + 1}", secret.encode()))
        if settings.access_token is not None:
            keys.append(("default", settings.access_token.get_secret_value().encode()))
        return cls(tuple(keys))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self.keys)

    @property
    def names(self) -> list[str]:
        """The configured keys' names (tenants)."""
        return [name for name, _ in self.keys]

    def find(self, key: str) -> Principal | None:
        """The principal whose key this is; compares against every key in constant time."""
        given = key.encode()
        found: str | None = None
        for name, secret in self.keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(given, secret):
                found = name
        return None if found is None else Principal(name=found, admin=is_admin_name(found))


class Authenticator:
    """Keys from the environment and from the database (read through a short cache); anonymous access only while
    the environment holds no key, the database never held one, and the server listens on loopback only."""

    def __init__(self, keyring: KeyRing, stored: KeyCache | None, *, require_key: bool) -> None:
        self.keyring = keyring
        self.stored = stored
        self.require_key = require_key

    async def required(self) -> bool:
        """Whether a request needs a key."""
        return self.require_key or self.keyring.enabled or bool(self.stored and (await self.stored.snapshot()).in_use)

    async def authenticate(self, presented: PresentedKey | None) -> Principal:
        """The principal for the key a request sent; raises Unauthorized naming the accepted headers."""
        if not await self.required():
            return ANONYMOUS
        if presented is None:
            raise Unauthorized(f"Missing API key: send {ACCEPTED_HEADERS}.")
        principal = self.keyring.find(presented.key)
        if principal is None and self.stored is not None:
            # Looked up by its SHA-256: timing tells nothing usable about a stored key (see services/api_keys.py).
            stored = await self.stored.find(presented.key)
            principal = None if stored is None else Principal(name=stored.name, admin=stored.admin)
        if principal is None:
            raise Unauthorized(f"Invalid API key (sent in {presented.header}); send {ACCEPTED_HEADERS}.")
        return principal


class RateLimiter:
    """Sliding one-minute window of event times per key (an API key's name, or a client address), in this process."""

    MAX_TRACKED = 10_000  # past this many keys, idle ones are dropped: many addresses must not grow memory forever

    def __init__(self, per_minute: int, *, what: str = "requests per minute for this key") -> None:
        self.per_minute = per_minute
        self.what = what
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> None:
        """Count a request, or raise RateLimited with the seconds until one is allowed."""
        self.refuse_if_full(key)
        self.count(key)

    def refuse_if_full(self, key: str) -> None:
        """Raise RateLimited when `key` has used its minute, without counting anything."""
        if self.per_minute <= 0 or key not in self._hits:
            return
        now = time.monotonic()
        hits = self._hits[key]
        while hits and hits[0] <= now - 60:
            hits.popleft()
        if len(hits) >= self.per_minute:
            wait = max(1, math.ceil(60 - (now - hits[0])))
            raise RateLimited(f"More than {self.per_minute} {self.what}.", retry_after=wait)

    def count(self, key: str) -> None:
        """Record one event for `key`."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        if len(self._hits) >= self.MAX_TRACKED and key not in self._hits:
            for idle in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - 60]:
                del self._hits[idle]
        self._hits[key].append(now)
