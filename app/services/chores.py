"""Cluster-wide chores one worker at a time does, through a row per chore: a turn is a lease on that row.

Taking a turn is one conditional UPDATE (free, expired, or already ours), so two workers never hold one at once on
any database; a holder that dies loses its turn when its lease runs out. Every transaction that does a piece of the
chore first renews the lease under the same condition (`keep_turn`), so a holder that was frozen past its lease and
replaced changes nothing when it wakes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import CHORES
from app.db.retry import retry_transient
from app.db.types import utcnow

RETENTION = "retention"
"""Deleting tasks past their retention (app/services/retention.py)."""


@retry_transient
async def take_turn(
    *, session: AsyncSession, chore: str, holder: str, lease_seconds: float, now: datetime | None = None
) -> bool:
    """Hold `chore` for `lease_seconds` unless another holder's lease is still running; whether `holder` holds it."""
    now = now or utcnow()
    async with session.begin():
        result = await session.execute(
            update(CHORES)
            .where(
                CHORES.c.name == chore,
                or_(CHORES.c.holder == holder, CHORES.c.expires_at.is_(None), CHORES.c.expires_at < now),
            )
            .values(holder=holder, expires_at=now + timedelta(seconds=lease_seconds))
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def keep_turn(
    *, session: AsyncSession, chore: str, holder: str, lease_seconds: float, now: datetime, done: int = 0
) -> bool:
    """Renew `holder`'s lease on `chore` and count `done` more items, part of the caller's transaction (whose row
    lock keeps any other taker out until it commits); False, changing nothing, if the turn is no longer its own."""
    result = await session.execute(
        update(CHORES)
        .where(CHORES.c.name == chore, CHORES.c.holder == holder, CHORES.c.expires_at >= now)
        .values(expires_at=now + timedelta(seconds=lease_seconds), done=CHORES.c.done + done)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def done(*, session: AsyncSession, chore: str) -> int:
    """How many items `chore` has done in all, by every holder."""
    return int(await session.scalar(select(CHORES.c.done).where(CHORES.c.name == chore)) or 0)
