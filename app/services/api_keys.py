"""API keys kept in the database: made and revoked from the command line, honoured by every API node within
`WHISPER_KEY_CACHE_SECONDS`, and the first admin key a server listening beyond loopback makes for itself.

Only the SHA-256 of a key is stored. A key is 32 random bytes, so its hash cannot be reversed or guessed, and no
slow password hash (bcrypt, Argon2) is needed: those protect secrets people choose, and would cost every request
their deliberate slowness. An unsalted hash also lets a request find its key by one indexed lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import API_KEYS, CLUSTER_SETTINGS, ApiKey, ClusterSetting
from app.db.retry import retry_transient
from app.db.types import utcnow
from app.errors import InvalidInput, KeyNameTaken, KeyNotFound
from app.services import cluster_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "wsk_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
FIRST_ADMIN_NAME = "admin"
KEYS_IN_USE = "api_keys_in_use"
"""A cluster setting, written with the first key this database ever held: from then on its API nodes never fall back
to open access (revoking the last key leaves every request refused), and no node makes a first admin key."""
USE_WRITE_SECONDS = 60.0
"""`last_used_at` is written at most this often per API node (it is a write; authentication should not be)."""


@dataclass(frozen=True)
class StoredKey:
    """A key in the database, without its secret."""

    name: str
    admin: bool
    created_at: datetime | None = None
    last_used_at: datetime | None = None


def new_key() -> str:
    """A fresh key: `wsk_` and 32 random bytes in URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What is stored of a key: its SHA-256, in hex (see the module's docstring for why no slow hash)."""
    return hashlib.sha256(key.encode()).hexdigest()


def is_admin_name(name: str) -> bool:
    """A name starting with `admin` marks an admin key, as in WHISPER_API_KEYS."""
    return name.startswith("admin")


def check_key_name(name: str, *, environment_names: Collection[str]) -> None:
    """Refuse a name that is not a usable tenant name, or that a key from the environment already has."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a key name: use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or "
            "digit (the name is the tenant that owns the key's tasks).",
            field="name",
        )
    if name in environment_names:
        raise KeyNameTaken(
            f"{name!r} is the name of a key from the environment (WHISPER_API_KEYS or ACCESS_TOKEN): choose another "
            "name, or remove that key from the environment first."
        )


@retry_transient
async def create_key(
    *, session: AsyncSession, name: str, admin: bool, environment_names: Collection[str] = ()
) -> tuple[str, StoredKey]:
    """Store a new key under `name`; returns the key (shown once, never stored) and what is kept of it."""
    check_key_name(name, environment_names=environment_names)
    await cluster_settings.get_or_create(session=session, name=KEYS_IN_USE, make=lambda: "yes")
    key, now = new_key(), utcnow()
    admin = admin or is_admin_name(name)
    try:
        async with session.begin():
            await session.execute(
                insert(API_KEYS).values(name=name, key_hash=hash_key(key), admin=admin, created_at=now)
            )
    except IntegrityError as exc:
        raise KeyNameTaken(
            f"A key named {name!r} exists already: revoke it first (`whisper-service keys revoke {name}`) to give "
            "that tenant a new key."
        ) from exc
    return key, StoredKey(name=name, admin=admin, created_at=now)


@retry_transient
async def list_keys(*, session: AsyncSession) -> list[StoredKey]:
    """The keys in the database, by name (never their secrets)."""
    rows = await session.execute(
        select(ApiKey.name, ApiKey.admin, ApiKey.created_at, ApiKey.last_used_at).order_by(ApiKey.name)
    )
    keys = [StoredKey(name, admin, created, used) for name, admin, created, used in rows]
    await session.commit()
    return keys


@retry_transient
async def revoke_key(*, session: AsyncSession, name: str) -> None:
    """Delete the key named `name` (every API node refuses it within its cache time); its tasks stay."""
    async with session.begin():
        result = await session.execute(delete(API_KEYS).where(API_KEYS.c.name == name))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise KeyNotFound(f"No key named {name!r} is in the database (`whisper-service keys list` shows them).")


@retry_transient
async def create_first_admin_key(*, session: AsyncSession) -> str | None:
    """The first admin key, named `admin`, when this database never held a key; else None.

    Once per database: the key and the mark that keys are in use are written in one transaction, and of nodes
    starting together only the first insert of the mark commits (the others wait on its primary key, then fail and
    make nothing).
    """
    key, now = new_key(), utcnow()
    try:
        async with session.begin():
            if await session.scalar(select(ClusterSetting.name).where(ClusterSetting.name == KEYS_IN_USE)):
                return None
            await session.execute(insert(CLUSTER_SETTINGS).values(name=KEYS_IN_USE, value="yes", created_at=now))
            await session.execute(
                insert(API_KEYS).values(name=FIRST_ADMIN_NAME, key_hash=hash_key(key), admin=True, created_at=now)
            )
    except IntegrityError:  # another node made it meanwhile
        return None
    return key


@dataclass(frozen=True)
class KeySnapshot:
    """The database's keys by hash, and whether it ever held one."""

    keys: dict[str, StoredKey]
    in_use: bool


@retry_transient
async def load_keys(*, session: AsyncSession) -> KeySnapshot:
    """Every key in the database, by hash, and whether keys are in use."""
    rows = await session.execute(select(ApiKey.key_hash, ApiKey.name, ApiKey.admin))
    keys = {key_hash: StoredKey(name, admin) for key_hash, name, admin in rows}
    in_use = await session.scalar(select(ClusterSetting.name).where(ClusterSetting.name == KEYS_IN_USE))
    await session.commit()
    return KeySnapshot(keys, in_use is not None)


@retry_transient
async def record_use(*, session: AsyncSession, used: Mapping[str, datetime]) -> None:
    """Write when keys (by hash) were last used."""
    async with session.begin():
        for key_hash, at in used.items():
            await session.execute(update(API_KEYS).where(API_KEYS.c.key_hash == key_hash).values(last_used_at=at))


class KeyCache:
    """The database's keys as one API node sees them: read again when older than `ttl` seconds, so a key made or
    revoked anywhere counts here within `ttl` seconds, and an unknown key costs no query."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.clock = clock
        self._snapshot = KeySnapshot({}, in_use=False)
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self._used: dict[str, datetime] = {}
        self._used_written_at = clock()

    def _fresh(self) -> bool:
        return self._loaded_at is not None and self.clock() - self._loaded_at < self.ttl

    async def snapshot(self) -> KeySnapshot:
        """The keys, read from the database when the copy here is older than `ttl`."""
        if self._fresh():
            return self._snapshot
        async with self._lock:  # one read at a time; requests that waited for it use its result
            if not self._fresh():
                async with self.sessions() as session:
                    self._snapshot = await load_keys(session=session)
                    self._loaded_at = self.clock()
                    await self._write_use(session)
        return self._snapshot

    async def find(self, key: str) -> StoredKey | None:
        """The stored key `key` is, if any; counts its use."""
        key_hash = hash_key(key)
        found = (await self.snapshot()).keys.get(key_hash)
        if found is not None:
            self._used[key_hash] = utcnow()
        return found

    async def _write_use(self, session: AsyncSession) -> None:
        if not self._used or self.clock() - self._used_written_at < USE_WRITE_SECONDS:
            return
        used, self._used = self._used, {}
        self._used_written_at = self.clock()
        try:
            await record_use(session=session, used=used)
        except Exception:  # only a statistic: never a reason to refuse a request
            log.warning("could not record when API keys were last used", exc_info=True)
