"""The credential store of a realm, used inside the realm's own transactions.

Organizer and participant services create, re-address and delete users; they call these
functions in the same transaction so that a user never exists without its credential (or
the reverse). Only hashes are stored; hashing happens in ``Passwords`` off the event loop.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.auth.models import credentials


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create(session: AsyncSession, user_id: int, email: str, password_hash: str) -> None:
    await session.execute(
        credentials.insert().values(
            user_id=user_id, email=normalize_email(email), password_hash=password_hash
        )
    )


async def email_taken(session: AsyncSession, email: str, except_user: int | None = None) -> bool:
    stmt = select(credentials.c.user_id).where(
        func.lower(credentials.c.email) == normalize_email(email)
    )
    if except_user is not None:
        stmt = stmt.where(credentials.c.user_id != except_user)
    return (await session.execute(stmt)).first() is not None


async def change_email(session: AsyncSession, user_id: int, email: str) -> None:
    await session.execute(
        update(credentials)
        .where(credentials.c.user_id == user_id)
        .values(email=normalize_email(email))
    )


async def set_hash(
    session: AsyncSession, user_id: int, password_hash: str, signed_out_at: dt.datetime | None
) -> None:
    values: dict[str, object] = {"password_hash": password_hash}
    if signed_out_at is not None:
        values["time_sign_out"] = signed_out_at
    await session.execute(
        update(credentials).where(credentials.c.user_id == user_id).values(**values)
    )


async def remove(session: AsyncSession, user_ids: list[int]) -> None:
    if user_ids:
        await session.execute(delete(credentials).where(credentials.c.user_id.in_(user_ids)))


async def by_email(session: AsyncSession, email: str) -> Row[Any, Any] | None:
    return (
        await session.execute(
            select(credentials.c.user_id, credentials.c.password_hash).where(
                credentials.c.email == normalize_email(email)
            )
        )
    ).first()


async def hash_of(session: AsyncSession, user_id: int) -> str | None:
    return (
        await session.execute(
            select(credentials.c.password_hash).where(credentials.c.user_id == user_id)
        )
    ).scalar_one_or_none()
