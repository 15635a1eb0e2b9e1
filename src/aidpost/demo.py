"""Demo data: a superadmin, an approved agency with owner, manager and support staff, an
event running now, and (once the participant component exists) a participant.

Idempotent: seeding twice changes nothing. Passwords are for local demos only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from aidpost.auth import credentials
from aidpost.core.settings import Settings
from aidpost.organizer.changes import Changes
from aidpost.organizer.models import Agency, Event, Role, User
from aidpost.runtime import Runtime

DEMO_PASSWORD = "demo-password-1234"
AGENCY = "Demo Festival Safety"
STAFF = (
    ("owner@demo.aidpost.local", "Olivia", "Owner", Role.agencyOwner),
    ("manager@demo.aidpost.local", "Mark", "Manager", Role.agencyManager),
    ("support@demo.aidpost.local", "Sam", "Support", Role.agencySupport),
)


async def seed_organizer(rt: Runtime) -> list[tuple[str, str, str]]:
    """Create the demo agency, staff and event if missing; return (who, email, password)."""
    from aidpost.auth.component import passwords_from

    db = rt.database(rt.settings.organizer_db)
    passwords = passwords_from(rt)
    now = rt.clock.now()
    async with db.transaction() as session:
        agency = await session.scalar(select(Agency).where(Agency.name == AGENCY))
        changes = Changes(session, None, rt.clock)
        if agency is None:
            agency = Agency(
                name=AGENCY,
                address="Festival Park 1, 00-001 Warsaw",
                website="https://demo.aidpost.local",
                approved=True,
            )
            await changes.insert(agency)
        for email, first, last, role in STAFF:
            if await session.scalar(select(User.id).where(User.email == email)) is None:
                user = User(
                    email=email,
                    firstName=first,
                    lastName=last,
                    phoneNumber="+48600100200",
                    timeCreated=now,
                    timeSignOut=now,
                    role=role,
                    agencyId=agency.id,
                )
                await changes.insert(user)
                hashed = await passwords.hash(DEMO_PASSWORD)
                await credentials.create(session, user.id, email, hashed)
        if await session.scalar(select(Event.id).where(Event.agencyId == agency.id)) is None:
            await changes.insert(
                Event(
                    name="Demo Summer Festival",
                    description="Three stages, food court and camping. First aid near stage A.",
                    address="Festival Park 1, 00-001 Warsaw",
                    lat=52.2297,
                    lng=21.0122,
                    timeStart=now - dt.timedelta(hours=2),
                    timeEnd=now + dt.timedelta(days=2),
                    agencyId=agency.id,
                )
            )
    return [(role.name, email, DEMO_PASSWORD) for email, _f, _l, role in STAFF]


def describe(settings: Settings, accounts: list[tuple[str, str, str]]) -> str:
    lines = ["aidpost demo data is ready. Sign in (POST /organizer-api/auth/sign-in) as:"]
    lines.append(
        f"  superAdmin  {settings.auth.superadmin_email}  {settings.auth.superadmin_password}"
    )
    lines += [f"  {who:<11} {email}  {password}" for who, email, password in accounts]
    return "\n".join(lines)


async def seed(settings: Settings) -> str:
    """Run the organizer component's start (migrations, superadmin), then seed."""
    from aidpost.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        accounts = await seed_organizer(app.state.runtime)
    return describe(settings, accounts)


def seed_after_start(app: FastAPI, settings: Settings) -> None:
    """Wrap the app's lifespan so that demo data is seeded once the components started."""
    inner = app.router.lifespan_context

    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            accounts = await seed_organizer(a.state.runtime)
            print(describe(settings, accounts), flush=True)
            yield state

    app.router.lifespan_context = lifespan


if __name__ == "__main__":  # pragma: no cover
    print(asyncio.run(seed(Settings())))
