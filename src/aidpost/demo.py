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
    ("owner@demo.aidpost.example", "Olivia", "Owner", Role.agencyOwner),
    ("manager@demo.aidpost.example", "Mark", "Manager", Role.agencyManager),
    ("support@demo.aidpost.example", "Sam", "Support", Role.agencySupport),
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
                website="https://demo.aidpost.example",
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


PARTICIPANT = "participant@demo.aidpost.example"


async def seed_participant(rt: Runtime) -> list[tuple[str, str, str]]:
    """A participant who can sign in to the Participant API."""
    from aidpost.auth.component import passwords_from
    from aidpost.participant.service import create

    db = rt.database(rt.settings.participant_db)
    async with db.transaction() as session:
        if not await credentials.email_taken(session, PARTICIPANT):
            user = await create(session, PARTICIPANT, "+48600300400", rt.clock.now())
            hashed = await passwords_from(rt).hash(DEMO_PASSWORD)
            await credentials.create(session, user.id, PARTICIPANT, hashed)
    return [("participant", PARTICIPANT, DEMO_PASSWORD)]


async def seed_all(rt: Runtime) -> list[tuple[str, str, str]]:
    return await seed_organizer(rt) + await seed_participant(rt)


def describe(settings: Settings, accounts: list[tuple[str, str, str]]) -> str:
    lines = [
        "aidpost demo data is ready. Staff sign in at POST /organizer-api/auth/sign-in,",
        "participants at POST /participant-api/auth/sign-in:",
    ]
    admin = settings.auth
    lines.append(f"  {'superAdmin':<14} {admin.superadmin_email}  {admin.superadmin_password}")
    lines += [f"  {who:<14} {email}  {password}" for who, email, password in accounts]
    return "\n".join(lines)


async def seed(settings: Settings) -> str:
    """Run the organizer component's start (migrations, superadmin), then seed."""
    from aidpost.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        accounts = await seed_all(app.state.runtime)
    return describe(settings, accounts)


def seed_after_start(app: FastAPI, settings: Settings) -> None:
    """Wrap the app's lifespan so that demo data is seeded once the components started."""
    inner = app.router.lifespan_context

    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            accounts = await seed_all(a.state.runtime)
            for relay in ("organizer_relay", "participant_relay"):
                if hasattr(a.state, relay):
                    getattr(a.state, relay).kick()  # publish the demo's changes now
            print(describe(settings, accounts), flush=True)
            yield state

    app.router.lifespan_context = lifespan


if __name__ == "__main__":  # pragma: no cover
    print(asyncio.run(seed(Settings())))
