"""Values the cluster decides once, in the database: whichever node asks first writes one, every other reads it."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CLUSTER_SETTINGS, ClusterSetting
from app.db.retry import retry_transient
from app.db.types import utcnow

WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 (the row's name, not a password)


async def _read(session: AsyncSession, name: str) -> str | None:
    value = await session.scalar(select(ClusterSetting.value).where(ClusterSetting.name == name))
    await session.commit()
    return value


@retry_transient
async def get_or_create(*, session: AsyncSession, name: str, make: Callable[[], str]) -> str:
    """The value named `name`; the first caller anywhere in the cluster stores `make()`, and every caller, racing
    ones included, gets that one value (the primary key decides which insert wins)."""
    if (value := await _read(session, name)) is not None:
        return value
    candidate = make()
    try:
        async with session.begin():
            await session.execute(insert(CLUSTER_SETTINGS).values(name=name, value=candidate, created_at=utcnow()))
    except IntegrityError:  # another node stored it first
        value = await _read(session, name)
        assert value is not None
        return value
    return candidate


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def webhook_secret(*, session: AsyncSession) -> str:
    """The cluster's webhook signing secret, made on first use (used where no secret is configured)."""
    return await get_or_create(session=session, name=WEBHOOK_SECRET, make=new_webhook_secret)
