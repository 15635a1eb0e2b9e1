"""Request bodies of the auth endpoints (ESME's fields and limits)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ORGANIZER_PASSWORD = {"min_length": 16, "max_length": 128}


class SignIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=128)


class OrganizerChangePassword(BaseModel):
    oldPassword: str = Field(min_length=16, max_length=128)
    newPassword: str = Field(min_length=16, max_length=128)
    confirmNewPassword: str = Field(max_length=128)

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


class TokenResponse(BaseModel):
    user: dict[str, Any]
    token: str
