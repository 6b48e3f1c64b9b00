"""Dependencies injected into routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services.auth import KeyRing, Principal, RateLimiter
from app.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


bearer = HTTPBearer(auto_error=False, description="An API key from WHISPER_API_KEYS (when keys are configured).")


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """Authenticate the caller (when keys are configured) and count the request against its rate limit."""
    keyring: KeyRing = request.app.state.keyring
    limiter: RateLimiter = request.app.state.limiter
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    principal = keyring.authenticate(header)
    limiter.check(principal.name or (request.client.host if request.client else "anonymous"))
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
