"""Dependencies injected into routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import InvalidInput, Unauthorized
from app.services.auth import Authenticator, Principal, RateLimiter, presented_key
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


KEY_SOURCES = "WHISPER_API_KEYS, ACCESS_TOKEN or `whisper-service keys create`"
bearer = HTTPBearer(auto_error=False, description=f"An API key ({KEY_SOURCES}), when the server has keys.")
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="X-API-Key", auto_error=False, description="The same API key in this header."
)
token_header = APIKeyHeader(
    name="X-Token",
    scheme_name="X-Token",
    auto_error=False,
    description="The same API key in this header (as Whisper Local Server's clients send it).",
)


async def get_principal(
    request: Request,
    # Declared for the OpenAPI schema (any one of them will do); the key is read from the headers themselves.
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    _api_key: Annotated[str | None, Depends(api_key_header)],
    _token: Annotated[str | None, Depends(token_header)],
) -> Principal:
    """Authenticate the caller (when the server has keys) and count the request against its rate limit."""
    authenticator: Authenticator = request.app.state.authenticator
    limiter: RateLimiter = request.app.state.limiter
    failures: RateLimiter = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    presented = presented_key(
        authorization=request.headers.get("authorization"),
        x_api_key=request.headers.get("x-api-key"),
        x_token=request.headers.get("x-token"),
    )
    if await authenticator.required():
        failures.refuse_if_full(address)  # before the key is compared: a blocked address learns nothing
    try:
        principal = await authenticator.authenticate(presented)
    except Unauthorized:
        if presented is not None:  # a wrong key is a guess; no key at all (a client not yet set up) is not
            failures.count(address)
        raise
    limiter.check(principal.name or address)
    return principal


def _declared_query(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    for param in dependant.query_params:
        annotation = param.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a model of query parameters
            names |= {field.alias or name for name, field in annotation.model_fields.items()}
        names.add(param.alias)
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """A GET or DELETE with a query parameter the route does not take is refused (422 naming it), not ignored."""
    route = request.scope.get("route")
    if request.method not in ("GET", "DELETE") or not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _declared_query(route.dependant))
    if unknown:
        raise InvalidInput(f"Unknown query parameter {unknown[0]!r}.", field=unknown[0])


async def reject_unknown_fields(request: Request) -> None:
    """A form route's field or query parameter that it does not take is refused (naming it), not ignored."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    form_fields = {param.alias for param in route.dependant.body_params}
    query = _declared_query(route.dependant)
    misplaced = sorted(set(request.query_params) & form_fields - query)
    if misplaced:  # OpenAI takes these only as form fields; honouring them here would differ from it
        raise InvalidInput(
            f"{misplaced[0]!r} is a form field: send it in the multipart body, not the query string.",
            field=misplaced[0],
        )
    form = set((await request.form()).keys())
    misplaced = sorted(form & query - form_fields)
    if misplaced:  # the route reads these from the query string only: in the form they would go unread
        raise InvalidInput(
            f"{misplaced[0]!r} is a query parameter: send it in the query string (?{misplaced[0]}=...), "
            "not in the multipart body.",
            field=misplaced[0],
        )
    known = query | form_fields
    given = set(request.query_params) | form
    unknown = sorted(given - known)
    if unknown:
        raise InvalidInput(f"Unknown parameter {unknown[0]!r}.", field=unknown[0])


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
TaskId = Annotated[str, Path(description="Task id.", examples=["6f1c2a9e-3d7b-4a53-9a51-0b7f3f6f2c11"], max_length=64)]
