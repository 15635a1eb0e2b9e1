"""Who is calling and what they may do: ESME's guards and seniority rule.

Every request reloads its user and agency, so a deleted user, a revoked approval or a
changed role takes effect on the next request, whatever tokens are out there.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core.errors import Forbidden
from aidpost.core.tokens import Principal
from aidpost.organizer.models import Agency, Role, User

ADMINS = frozenset({Role.superAdmin, Role.admin})
OWNER = frozenset({Role.agencyOwner})
MANAGER = frozenset({Role.agencyOwner, Role.agencyManager})
SUPPORT = frozenset({Role.agencyOwner, Role.agencyManager, Role.agencySupport})
ANY = frozenset(Role)


@dataclass
class Actor:
    user: User
    agency: Agency | None

    @property
    def is_admin(self) -> bool:
        return self.user.role in ADMINS

    @property
    def agency_id(self) -> int:
        """The agency this actor works in; admins must be previewing one."""
        if self.user.agencyId is None or self.agency is None:
            raise Forbidden("Choose an agency to preview first")
        return self.user.agencyId


async def load_actor(
    session: AsyncSession, principal: Principal, allowed: frozenset[Role]
) -> Actor:
    """The authentication guard plus one role guard (admins always pass role guards)."""
    user = await session.get(User, principal.user_id)
    if user is None:
        raise Forbidden()
    agency = await session.get(Agency, user.agencyId) if user.agencyId is not None else None
    actor = Actor(user, agency)
    if actor.is_admin:
        return actor
    if agency is None or not agency.approved or user.role not in allowed:
        raise Forbidden()
    return actor


def check_seniority(action: str, target_role: int, actor: User) -> None:
    """Only users junior to you (a higher role number) may be created, changed or deleted."""
    if target_role <= actor.role:
        raise Forbidden(f"Not allowed to {action} user with same role or senior")
