"""The organizer's use cases. Each public method is one transaction.

Handlers pass the caller's ``Principal``; the service loads the caller (``access``), checks
the guard, does the work through ``Changes`` (entity + changelog + bus event together)
and returns ESME's JSON view.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.auth import credentials
from aidpost.auth.passwords import Passwords
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from aidpost.core.outbox import first_time
from aidpost.core.tokens import Principal
from aidpost.organizer import schemas, views
from aidpost.organizer.access import (
    ADMINS,
    ANY,
    MANAGER,
    OWNER,
    SUPPORT,
    Actor,
    check_seniority,
    load_actor,
)
from aidpost.organizer.changes import Changes
from aidpost.organizer.models import (
    Agency,
    Changelog,
    Comment,
    Contact,
    Event,
    Issue,
    Role,
    User,
    inbox,
)

T = TypeVar("T")
Json = dict[str, Any]

ADMIN_ROLES = [
    {"key": r.value, "value": label}
    for r, label in (
        (Role.admin, "Admin"),
        (Role.agencyOwner, "Agency owner"),
        (Role.agencyManager, "Agency manager"),
        (Role.agencySupport, "Agency support"),
    )
]
AGENCY_ROLES = ADMIN_ROLES[1:]


class OrganizerService:
    def __init__(
        self, db: Database, clock: Clock, passwords: Passwords, on_commit: Any = lambda: None
    ) -> None:
        self.db, self.clock, self.passwords, self.on_commit = db, clock, passwords, on_commit

    # -- plumbing ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _unit(
        self, principal: Principal, allowed: frozenset[Role]
    ) -> AsyncIterator[tuple[AsyncSession, Actor, Changes]]:
        async with self.db.transaction() as session:
            actor = await load_actor(session, principal, allowed)
            yield session, actor, Changes(session, actor.user, self.clock)
        self.on_commit()

    @asynccontextmanager
    async def _read(
        self, principal: Principal, allowed: frozenset[Role]
    ) -> AsyncIterator[tuple[AsyncSession, Actor]]:
        async with self.db.session() as session:
            yield session, await load_actor(session, principal, allowed)

    @staticmethod
    async def _all(session: AsyncSession, stmt: Select[T]) -> Sequence[T]:
        return (await session.scalars(stmt)).all()

    @staticmethod
    async def _in_agency(
        session: AsyncSession, model: type[T], entity_id: int, agency_id: int, label: str
    ) -> T:
        entity = await session.get(model, entity_id)
        if entity is None or getattr(entity, "agencyId", None) != agency_id:
            raise NotFound(f"{label} with id {entity_id} not found in agency {agency_id}")
        return entity

    async def _email_free(self, session: AsyncSession, email: str, message: str) -> None:
        taken = await session.scalar(
            select(func.count()).select_from(User).where(func.lower(User.email) == email.lower())
        )
        if taken or await credentials.email_taken(session, email):
            raise BadRequest(message)

    async def _new_user(
        self, session: AsyncSession, changes: Changes, body: Any, role: int, agency_id: int | None
    ) -> User:
        now = self.clock.now()
        user = User(
            email=body.email,
            firstName=body.firstName,
            lastName=body.lastName,
            phoneNumber=body.phoneNumber,
            timeCreated=now,
            timeSignOut=now,
            role=role,
            agencyId=agency_id,
        )
        await changes.insert(user)
        await credentials.create(
            session, user.id, body.email, await self.passwords.hash(body.password)
        )
        return user

    async def _delete_users(
        self, session: AsyncSession, changes: Changes, users: Sequence[User]
    ) -> None:
        for user in users:
            await changes.delete(user)
        await credentials.remove(session, [u.id for u in users])

    async def authorize(self, principal: Principal, allowed: frozenset[Role]) -> None:
        async with self._read(principal, allowed):
            pass

    # -- superadmin, sign-in profile ---------------------------------------------------------

    async def ensure_superadmin(self, email: str, password: str) -> None:
        """Create the superadmin from settings if there is none (ESME does this at start)."""
        async with self.db.transaction() as session:
            existing = await session.scalar(select(User).where(User.role == Role.superAdmin))
            if existing is not None:
                # Announced at every start, so components that keep people (the mailer's
                # platform administrators) know the superadmin also on older installations.
                await Changes(session, None, self.clock).announce(
                    "update", existing, views.of(existing)
                )
                return
            now = self.clock.now()
            user = User(
                email=email,
                firstName="Super",
                lastName="Admin",
                phoneNumber="+48123456789",
                timeCreated=now,
                timeSignOut=now,
                role=Role.superAdmin,
                agencyId=None,
            )
            session.add(user)
            await session.flush()
            await credentials.create(session, user.id, email, await self.passwords.hash(password))
            # Other components (the mailer's platform administrators) learn of it too.
            await Changes(session, None, self.clock).announce("insert", user, views.of(user))

    async def note_sign_out(self, event_id: str, user_id: int, when: dt.datetime) -> None:
        """Keep ``timeSignOut`` (shown in user views) in step with auth's revocations."""
        async with self.db.transaction() as session:
            if not await first_time(session, inbox, event_id):
                return
            user = await session.get(User, user_id)
            if user is not None and when > user.timeSignOut:
                user.timeSignOut = when
                await Changes(session, user, self.clock).update(user)

    # -- profile ---------------------------------------------------------------------------

    async def profile(self, principal: Principal) -> Json:
        async with self._read(principal, ANY) as (_s, actor):
            return views.user(actor.user)

    async def update_profile(self, principal: Principal, body: schemas.UpdateProfile) -> Json:
        async with self._unit(principal, ANY) as (_s, actor, changes):
            for key, value in body.changes().items():
                setattr(actor.user, key, value)
            await changes.update(actor.user)
            return views.user(actor.user)

    async def set_agency(self, principal: Principal, body: schemas.SetAgency) -> Json:
        async with self._unit(principal, ADMINS) as (session, actor, changes):
            if body.agencyId:
                if await session.get(Agency, body.agencyId) is None:
                    raise NotFound(f"Agency with id {body.agencyId} not found")
                actor.user.agencyId = body.agencyId
            else:
                actor.user.agencyId = None
            await changes.update(actor.user)
            return views.user(actor.user)

    # -- admin: users ------------------------------------------------------------------------

    async def admin_users(self, principal: Principal) -> list[Json]:
        async with self._read(principal, ADMINS) as (session, _a):
            stmt = (
                select(User).where(User.role.in_([Role.superAdmin, Role.admin])).order_by(User.id)
            )
            return [views.user(u) for u in await self._all(session, stmt)]

    async def _any_user(self, session: AsyncSession, user_id: int) -> User:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"User with id {user_id} not found")
        return user

    async def admin_user(self, principal: Principal, user_id: int) -> Json:
        async with self._read(principal, ADMINS) as (session, _a):
            return views.user(await self._any_user(session, user_id))

    async def admin_create_user(self, principal: Principal, body: schemas.CreateUser) -> Json:
        async with self._unit(principal, ADMINS) as (session, actor, changes):
            await self._email_free(session, body.email, "Email is already taken")
            check_seniority("create", body.role, actor.user)
            agency_id = None if body.role in ADMINS else actor.user.agencyId
            if body.role not in ADMINS and agency_id is None:
                raise BadRequest("Agency users must belong to an agency: preview one first")
            user = await self._new_user(session, changes, body, body.role, agency_id)
            return views.user(user)

    async def admin_update_user(
        self, principal: Principal, user_id: int, body: schemas.UpdateAdminUser
    ) -> Json:
        async with self._unit(principal, ADMINS) as (session, actor, changes):
            user = await self._any_user(session, user_id)
            check_seniority("update", user.role, actor.user)
            for key, value in body.changes().items():
                setattr(user, key, value)
            await changes.update(user)
            return views.user(user)

    async def admin_delete_user(self, principal: Principal, user_id: int) -> Json:
        async with self._unit(principal, ADMINS) as (session, actor, changes):
            user = await self._any_user(session, user_id)
            check_seniority("delete", user.role, actor.user)
            view = views.user(user)
            await self._delete_users(session, changes, [user])
            return view

    # -- admin: agencies ---------------------------------------------------------------------

    async def admin_agencies(self, principal: Principal) -> list[Json]:
        async with self._read(principal, ADMINS) as (session, _a):
            return [
                views.agency(a)
                for a in await self._all(session, select(Agency).order_by(Agency.id))
            ]

    async def _agency(self, session: AsyncSession, agency_id: int) -> Agency:
        agency = await session.get(Agency, agency_id)
        if agency is None:
            raise NotFound(f"Agency with id {agency_id} not found")
        return agency

    async def admin_agency(self, principal: Principal, agency_id: int) -> Json:
        async with self._read(principal, ADMINS) as (session, _a):
            return views.agency(await self._agency(session, agency_id))

    async def verify_agency(
        self, principal: Principal, agency_id: int, body: schemas.VerifyAgency
    ) -> Json:
        async with self._unit(principal, ADMINS) as (session, _a, changes):
            agency = await self._agency(session, agency_id)
            if body.approved is not None:
                agency.approved = body.approved
            await changes.update(agency)
            return views.agency(agency)

    # -- changelogs --------------------------------------------------------------------------

    async def admin_changelogs(
        self, principal: Principal, query: schemas.AdminChangelogQuery
    ) -> list[Json]:
        async with self._read(principal, ADMINS) as (session, _a):
            stmt = select(Changelog).order_by(Changelog.id)
            if query.userId is not None:
                stmt = stmt.where(Changelog.userId == query.userId)
            if query.agencyId is not None:
                stmt = stmt.where(Changelog.agencyId == query.agencyId)
            return [views.changelog(c) for c in await self._all(session, stmt)]

    async def admin_changelog(self, principal: Principal, changelog_id: int) -> Json:
        async with self._read(principal, ADMINS) as (session, _a):
            row = await session.get(Changelog, changelog_id)
            if row is None:
                raise NotFound(f"Changelog with id {changelog_id} not found")
            return views.changelog(row)

    async def agency_changelogs(self, principal: Principal, query: schemas.UserQuery) -> list[Json]:
        async with self._read(principal, SUPPORT) as (session, actor):
            stmt = (
                select(Changelog)
                .where(Changelog.agencyId == actor.agency_id)
                .order_by(Changelog.id)
            )
            if query.userId is not None:
                stmt = stmt.where(Changelog.userId == query.userId)
            return [views.changelog(c) for c in await self._all(session, stmt)]

    async def agency_changelog(self, principal: Principal, changelog_id: int) -> Json:
        async with self._read(principal, SUPPORT) as (session, actor):
            row = await self._in_agency(
                session, Changelog, changelog_id, actor.agency_id, "Changelog"
            )
            return views.changelog(row)

    # -- agency ------------------------------------------------------------------------------

    async def register_agency(self, body: schemas.RegisterAgency) -> Json:
        """Public self-registration: the agency and its owner, in one transaction, unapproved."""
        async with self.db.transaction() as session:
            taken = await session.scalar(
                select(func.count()).select_from(Agency).where(Agency.name == body.agency.name)
            )
            if taken:
                raise BadRequest("Agency name is already taken")
            await self._email_free(session, body.owner.email, "Owner email is already taken")
            agency = Agency(
                name=body.agency.name,
                address=body.agency.address,
                website=body.agency.website,
                approved=False,
            )
            session.add(agency)
            await session.flush()
            changes = Changes(session, None, self.clock)
            owner = await self._new_user(session, changes, body.owner, Role.agencyOwner, agency.id)
            changes.actor = owner
            await changes.log("insert", agency, views.agency(agency))
            result = views.agency(agency)
        self.on_commit()
        return result

    async def agency(self, principal: Principal) -> Json:
        async with self._read(principal, SUPPORT) as (_s, actor):
            actor.agency_id  # noqa: B018 - raises for an admin who is not previewing
            assert actor.agency is not None
            return views.agency(actor.agency)

    async def update_agency(self, principal: Principal, body: schemas.UpdateAgency) -> Json:
        async with self._unit(principal, OWNER) as (session, actor, changes):
            agency = await self._agency(session, actor.agency_id)
            values = body.changes()
            if "name" in values and values["name"] != agency.name:
                clash = await session.scalar(select(Agency.id).where(Agency.name == values["name"]))
                if clash is not None:
                    raise BadRequest("Agency name is already taken")
            for key, value in values.items():
                setattr(agency, key, value)
            await changes.update(agency)
            return views.agency(agency)

    async def delete_agency(self, principal: Principal) -> Json:
        """Remove the agency, its staff and everything it owns; admins previewing it stay."""
        async with self._unit(principal, OWNER) as (session, actor, changes):
            agency = await self._agency(session, actor.agency_id)
            staff = await self._all(
                session,
                select(User).where(
                    User.agencyId == agency.id, User.role.not_in([Role.superAdmin, Role.admin])
                ),
            )
            view = views.agency(agency)
            for event in await self._all(session, select(Event).where(Event.agencyId == agency.id)):
                await changes.delete(event)
            await self._delete_users(session, changes, staff)
            await changes.delete(agency)
            return view

    # -- agency users ------------------------------------------------------------------------

    async def agency_users(self, principal: Principal) -> list[Json]:
        async with self._read(principal, SUPPORT) as (session, actor):
            stmt = select(User).where(User.agencyId == actor.agency_id).order_by(User.id)
            return [views.user(u) for u in await self._all(session, stmt)]

    async def agency_user(self, principal: Principal, user_id: int) -> Json:
        async with self._read(principal, SUPPORT) as (session, actor):
            return views.user(
                await self._in_agency(session, User, user_id, actor.agency_id, "User")
            )

    async def create_agency_user(self, principal: Principal, body: schemas.CreateUser) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            agency_id = actor.agency_id
            await self._email_free(session, body.email, "Email is already taken")
            check_seniority("create", body.role, actor.user)
            if body.role in ADMINS:
                raise Forbidden("Not allowed to create user with same role or senior")
            user = await self._new_user(session, changes, body, body.role, agency_id)
            return views.user(user)

    async def update_agency_user(
        self, principal: Principal, user_id: int, body: schemas.UpdateAgencyUser
    ) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            user = await self._in_agency(session, User, user_id, actor.agency_id, "User")
            check_seniority("update", user.role, actor.user)
            values = body.changes()
            if "role" in values:
                # ESME let anyone set any role here; the new role must be junior too.
                check_seniority("update", values["role"], actor.user)
                if values["role"] in ADMINS:
                    raise Forbidden("Not allowed to update user with same role or senior")
            for key, value in values.items():
                setattr(user, key, value)
            await changes.update(user)
            return views.user(user)

    async def delete_agency_user(self, principal: Principal, user_id: int) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            user = await self._in_agency(session, User, user_id, actor.agency_id, "User")
            check_seniority("delete", user.role, actor.user)
            view = views.user(user)
            await self._delete_users(session, changes, [user])
            return view

    # -- events ------------------------------------------------------------------------------

    async def _event_name_free(
        self, session: AsyncSession, name: str, except_id: int | None = None
    ) -> None:
        stmt = select(Event.id).where(Event.name == name)
        if except_id is not None:
            stmt = stmt.where(Event.id != except_id)
        if await session.scalar(stmt) is not None:
            raise BadRequest("Name is already taken")

    async def events(self, principal: Principal) -> list[Json]:
        async with self._read(principal, SUPPORT) as (session, actor):
            stmt = select(Event).where(Event.agencyId == actor.agency_id).order_by(Event.id)
            return [views.event(e) for e in await self._all(session, stmt)]

    async def event(self, principal: Principal, event_id: int) -> Json:
        async with self._read(principal, SUPPORT) as (session, actor):
            return views.event(
                await self._in_agency(session, Event, event_id, actor.agency_id, "Event")
            )

    async def create_event(self, principal: Principal, body: schemas.CreateEvent) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            agency_id = actor.agency_id
            await self._event_name_free(session, body.name)
            event = Event(**body.model_dump(), agencyId=agency_id)
            await changes.insert(event)
            return views.event(event)

    async def update_event(
        self, principal: Principal, event_id: int, body: schemas.UpdateEvent
    ) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            event = await self._in_agency(session, Event, event_id, actor.agency_id, "Event")
            values = body.changes()
            if "name" in values:
                await self._event_name_free(session, values["name"], event.id)
            for key, value in values.items():
                setattr(event, key, value)
            if event.timeEnd < event.timeStart:
                raise BadRequest(["timeEnd must not be earlier than timeStart"])
            await changes.update(event)
            return views.event(event)

    async def delete_event(self, principal: Principal, event_id: int) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            event = await self._in_agency(session, Event, event_id, actor.agency_id, "Event")
            view = views.event(event)
            await changes.delete(event)
            return view

    # -- contacts ----------------------------------------------------------------------------

    async def _contact(self, session: AsyncSession, contact_id: int, agency_id: int) -> Contact:
        contact = await session.get(Contact, contact_id)
        if contact is None or contact.agencyId != agency_id:
            raise NotFound(f"Contact with id {contact_id} not found")
        return contact

    async def contacts(self, principal: Principal, query: schemas.EventQuery) -> list[Json]:
        async with self._read(principal, SUPPORT) as (session, actor):
            stmt = select(Contact).where(Contact.agencyId == actor.agency_id).order_by(Contact.id)
            if query.eventId is not None:
                stmt = stmt.where(Contact.eventId == query.eventId)
            return [views.contact(c) for c in await self._all(session, stmt)]

    async def contact(self, principal: Principal, contact_id: int) -> Json:
        async with self._read(principal, SUPPORT) as (session, actor):
            return views.contact(await self._contact(session, contact_id, actor.agency_id))

    async def create_contact(self, principal: Principal, body: schemas.CreateContact) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            agency_id = actor.agency_id
            await self._in_agency(session, Event, body.eventId, agency_id, "Event")
            contact = Contact(**body.model_dump(), agencyId=agency_id)
            await changes.insert(contact)
            return views.contact(contact)

    async def update_contact(
        self, principal: Principal, contact_id: int, body: schemas.UpdateContact
    ) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            contact = await self._contact(session, contact_id, actor.agency_id)
            for key, value in body.changes().items():
                setattr(contact, key, value)
            await changes.update(contact)
            return views.contact(contact)

    async def delete_contact(self, principal: Principal, contact_id: int) -> Json:
        async with self._unit(principal, MANAGER) as (session, actor, changes):
            contact = await self._contact(session, contact_id, actor.agency_id)
            view = views.contact(contact)
            await changes.delete(contact)
            return view

    # -- issues ------------------------------------------------------------------------------

    async def issues(self, principal: Principal, query: schemas.EventQuery) -> list[Json]:
        async with self._read(principal, SUPPORT) as (session, actor):
            stmt = select(Issue).where(Issue.agencyId == actor.agency_id).order_by(Issue.id)
            if query.eventId is not None:
                stmt = stmt.where(Issue.eventId == query.eventId)
            return [views.issue(i) for i in await self._all(session, stmt)]

    async def issue(self, principal: Principal, issue_id: int) -> Json:
        async with self._read(principal, SUPPORT) as (session, actor):
            return views.issue(
                await self._in_agency(session, Issue, issue_id, actor.agency_id, "Issue")
            )

    async def create_issue(self, principal: Principal, body: schemas.CreateIssue) -> Json:
        async with self._unit(principal, SUPPORT) as (session, actor, changes):
            agency_id = actor.agency_id
            await self._in_agency(session, Event, body.eventId, agency_id, "Event")
            issue = Issue(
                **body.model_dump(),
                status="to_do",
                timeCreated=self.clock.now(),
                timeClosed=None,
                authorId=actor.user.id,
                agencyId=agency_id,
            )
            await changes.insert(issue)
            return views.issue(issue)

    async def update_issue(
        self, principal: Principal, issue_id: int, body: schemas.UpdateIssue
    ) -> Json:
        async with self._unit(principal, SUPPORT) as (session, actor, changes):
            issue = await self._in_agency(session, Issue, issue_id, actor.agency_id, "Issue")
            values = body.changes()
            was_closed = issue.status in schemas.CLOSED_STATUSES
            for key, value in values.items():
                setattr(issue, key, value)
            closed = issue.status in schemas.CLOSED_STATUSES
            if closed and not was_closed:
                issue.timeClosed = self.clock.now()
            elif not closed:
                issue.timeClosed = None
            await changes.update(issue)
            return views.issue(issue)

    async def delete_issue(self, principal: Principal, issue_id: int) -> Json:
        async with self._unit(principal, SUPPORT) as (session, actor, changes):
            issue = await self._in_agency(session, Issue, issue_id, actor.agency_id, "Issue")
            view = views.issue(issue)
            await changes.delete(issue)
            return view

    # -- comments ----------------------------------------------------------------------------

    async def comments(self, principal: Principal, query: schemas.IssueQuery) -> list[Json]:
        async with self._read(principal, SUPPORT) as (session, actor):
            stmt = (
                select(Comment)
                .where(Comment.agencyId == actor.agency_id)
                .order_by(Comment.timeCreated.desc(), Comment.id.desc())
            )
            if query.issueId is not None:
                stmt = stmt.where(Comment.issueId == query.issueId)
            return [views.comment(c) for c in await self._all(session, stmt)]

    async def comment(self, principal: Principal, comment_id: int) -> Json:
        async with self._read(principal, SUPPORT) as (session, actor):
            row = await self._in_agency(session, Comment, comment_id, actor.agency_id, "Comment")
            return views.comment(row)

    async def create_comment(self, principal: Principal, body: schemas.CreateComment) -> Json:
        async with self._unit(principal, SUPPORT) as (session, actor, changes):
            agency_id = actor.agency_id
            await self._in_agency(session, Issue, body.issueId, agency_id, "Issue")
            comment = Comment(
                content=body.content,
                issueId=body.issueId,
                timeCreated=self.clock.now(),
                authorId=actor.user.id,
                agencyId=agency_id,
            )
            await changes.insert(comment)
            return views.comment(comment)

    async def _own_comment(
        self, session: AsyncSession, actor: Actor, comment_id: int, action: str
    ) -> Comment:
        comment = await self._in_agency(session, Comment, comment_id, actor.agency_id, "Comment")
        if comment.authorId != actor.user.id:
            raise Unauthorized(f"Only the author can {action} his comment")
        return comment

    async def update_comment(
        self, principal: Principal, comment_id: int, body: schemas.UpdateComment
    ) -> Json:
        async with self._unit(principal, SUPPORT) as (session, actor, changes):
            comment = await self._own_comment(session, actor, comment_id, "update")
            for key, value in body.changes().items():
                setattr(comment, key, value)
            await changes.update(comment)
            return views.comment(comment)

    async def delete_comment(self, principal: Principal, comment_id: int) -> Json:
        async with self._unit(principal, SUPPORT) as (session, actor, changes):
            comment = await self._own_comment(session, actor, comment_id, "delete")
            view = views.comment(comment)
            await changes.delete(comment)
            return view

    # -- internal API (API key) --------------------------------------------------------------

    async def api_events(self, query: schemas.ApiEventsQuery) -> list[Json]:
        """Events of approved agencies, by text (name, description, address) and start time."""
        async with self.db.session() as session:
            stmt = (
                select(Event)
                .join(Agency, Agency.id == Event.agencyId)
                .where(Agency.approved.is_(True))
                .order_by(Event.timeStart, Event.id)
            )
            if query.query:
                pattern = "%" + _escape_like(query.query.lower()) + "%"
                stmt = stmt.where(
                    or_(
                        func.lower(Event.name).like(pattern, escape="\\"),
                        func.lower(Event.description).like(pattern, escape="\\"),
                        func.lower(Event.address).like(pattern, escape="\\"),
                    )
                )
            if query.from_ is not None:
                stmt = stmt.where(Event.timeStart >= query.from_)
            if query.to is not None:
                stmt = stmt.where(Event.timeStart <= query.to)
            return [views.event(e) for e in await self._all(session, stmt)]

    async def api_event(self, event_id: int) -> Json:
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(Event)
                    .join(Agency, Agency.id == Event.agencyId)
                    .where(Event.id == event_id, Agency.approved.is_(True))
                )
            ).scalar_one_or_none()
            if row is None:
                raise NotFound(f"Event with id {event_id} not found")
            return views.event(row)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
