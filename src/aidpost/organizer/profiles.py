"""What the organizer realm tells auth at sign-in (the organizer's side of that contract)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.auth.service import SignInProfile
from aidpost.organizer import views
from aidpost.organizer.access import ADMINS
from aidpost.organizer.models import Agency, User

AGENCY_NOT_APPROVED = "your agency is not approved by administrators"


async def sign_in_profile(session: AsyncSession, user_id: int) -> SignInProfile | None:
    user = await session.get(User, user_id)
    if user is None:
        return None
    if user.role not in ADMINS:
        agency = await session.get(Agency, user.agencyId) if user.agencyId is not None else None
        if agency is None or not agency.approved:
            return SignInProfile(views.user(user), refusal=AGENCY_NOT_APPROVED)
    return SignInProfile(views.user(user))
