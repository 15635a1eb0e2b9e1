"""Request bodies of the auth endpoints (ESME's fields and limits)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from aidpost.core.validation import Email, OrganizerPassword, Text


class SignIn(BaseModel):
    """ESME's SignInDto: an email, a 16 to 128 character password, nothing else."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    password: OrganizerPassword


class OrganizerChangePassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oldPassword: OrganizerPassword
    newPassword: OrganizerPassword
    confirmNewPassword: Text(128, empty=True)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _check(self) -> OrganizerChangePassword:
        problems = []
        if self.newPassword == self.oldPassword:
            problems.append("newPassword must be different from oldPassword")
        if self.confirmNewPassword != self.newPassword:
            problems.append("confirmNewPassword must be equal to newPassword")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordTokenUse(BaseModel):
    """A reset or setup link used: the token from the link and the new password twice."""

    model_config = ConfigDict(extra="forbid")

    token: Text(200)  # type: ignore[valid-type]
    password: OrganizerPassword
    confirmPassword: Text(128, empty=True)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _check(self) -> PasswordTokenUse:
        if self.confirmPassword != self.password:
            raise ValueError("confirmPassword must be equal to password")
        return self


class TokenResponse(BaseModel):
    user: dict[str, Any]
    token: str
