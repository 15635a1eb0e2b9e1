"""Request bodies of the Participant API (ESME's Go service: one message per error)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from aidpost.core.errors import BadRequest

M = TypeVar("M", bound=BaseModel)
PHONE = re.compile(r"^[+0-9 ()./-]{0,30}$")


class Body(BaseModel):
    # ESME's Go API ignores unknown fields; so do we, its clients may send extra ones.
    model_config = ConfigDict(extra="ignore", str_max_length=20_000)


def checked_text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters")
    if "\x00" in value or not _encodable(value):
        raise ValueError(f"{name} must be valid text")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _password(value: Any, name: str) -> str:
    text = checked_text(value, name, 128)
    if len(text) < 8:
        raise ValueError(f"{name} must be at least 8 characters")
    return text


def _email(value: Any) -> str:
    from email_validator import EmailNotValidError, validate_email

    text = checked_text(value, "email", 320)
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("invalid email address") from None
    return text.strip()


def _phone(value: Any) -> str:
    text = checked_text(value, "phoneNumber", 30)
    if not PHONE.match(text):
        raise ValueError("phoneNumber must be a phone number of at most 30 characters")
    return text


class SignUp(Body):
    email: Any = None
    password: Any = None
    confirmPassword: Any = None
    phoneNumber: Any = None

    @model_validator(mode="after")
    def _check(self) -> SignUp:
        self.email = _email(self.email)
        self.password = _password(self.password, "password")
        if self.password != self.confirmPassword:
            raise ValueError("confirmPassword must match password")
        self.phoneNumber = _phone(self.phoneNumber)
        return self


class SignIn(Body):
    email: Any = None
    password: Any = None

    @model_validator(mode="after")
    def _check(self) -> SignIn:
        self.email = _email(self.email)
        self.password = _password(self.password, "password")
        return self


class PasswordResetRequest(Body):
    email: Any = None

    @model_validator(mode="after")
    def _check(self) -> PasswordResetRequest:
        self.email = _email(self.email)
        return self


class PasswordTokenUse(Body):
    token: Any = None
    password: Any = None
    confirmPassword: Any = None

    @model_validator(mode="after")
    def _check(self) -> PasswordTokenUse:
        if not isinstance(self.token, str) or not 0 < len(self.token) <= 200:
            raise ValueError("invalid token")
        self.password = _password(self.password, "password")
        if self.password != self.confirmPassword:
            raise ValueError("confirmPassword must match password")
        return self


class ChangePassword(Body):
    oldPassword: Any = None
    newPassword: Any = None
    confirmNewPassword: Any = None

    @model_validator(mode="after")
    def _check(self) -> ChangePassword:
        self.oldPassword = _password(self.oldPassword, "oldPassword")
        self.newPassword = _password(self.newPassword, "newPassword")
        if self.newPassword != self.confirmNewPassword:
            raise ValueError("confirmNewPassword must match newPassword")
        if self.newPassword == self.oldPassword:
            raise ValueError("newPassword must be different from oldPassword")
        return self


class UpdateProfile(Body):
    phoneNumber: Any = None

    @field_validator("phoneNumber")
    @classmethod
    def _phone(cls, value: Any) -> str:
        return _phone(value)


class DeleteProfile(Body):
    password: Any = None

    @model_validator(mode="after")
    def _check(self) -> DeleteProfile:
        self.password = _password(self.password, "password")
        return self


def parse(model: type[M], raw: bytes) -> M:
    """Parse a body as ESME's Go handlers do: 400 with the first problem as one message."""
    import json

    from pydantic import ValidationError

    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid request body") from None
    if not isinstance(data, dict):
        raise BadRequest("invalid request body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        ctx = first.get("ctx") or {}
        raise BadRequest(str(ctx.get("error", first.get("msg", "invalid request body")))) from None


PROBLEM_TYPES = ("medical", "security", "other")


def _coordinate(value: Any, name: str, limit: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = float("inf")
    if number != number or abs(number) > limit:
        raise ValueError(f"{name} must be between -{limit:g} and {limit:g}")
    return number


def _id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise ValueError(f"{name} must be a positive integer")
    return value


class EventRef(Body):
    eventId: Any = None

    @model_validator(mode="after")
    def _check(self) -> EventRef:
        self.eventId = _id(self.eventId, "eventId")
        return self


class CreateHelpRequest(Body):
    """ESME's ``{eventId, description, lat?, lng?}`` plus aidpost's ``problemType`` and
    ``sendTranscript`` (email me the conversation when it ends)."""

    eventId: Any = None
    description: Any = None
    problemType: Any = None
    lat: Any = None
    lng: Any = None
    sendTranscript: Any = None

    @model_validator(mode="after")
    def _check(self) -> CreateHelpRequest:
        self.eventId = _id(self.eventId, "eventId")
        self.description = checked_text(self.description, "description", 2000)
        if self.problemType is None:
            self.problemType = "other"
        if self.problemType not in PROBLEM_TYPES:
            raise ValueError("problemType must be one of: medical, security, other")
        self.lat = _coordinate(self.lat, "lat", 90)
        self.lng = _coordinate(self.lng, "lng", 180)
        if (self.lat is None) != (self.lng is None):
            raise ValueError("lat and lng must be given together")
        if not self.description.strip() and self.problemType == "other":
            raise ValueError("description must not be empty when problemType is other")
        if self.sendTranscript is None:
            self.sendTranscript = False
        if not isinstance(self.sendTranscript, bool):
            raise ValueError("sendTranscript must be a boolean")
        return self


class ReleaseLock(Body):
    participantId: Any = None
    eventId: Any = None

    @model_validator(mode="after")
    def _check(self) -> ReleaseLock:
        self.participantId = _id(self.participantId, "participantId")
        self.eventId = _id(self.eventId, "eventId")
        return self


class UserIds(Body):
    ids: Any = None

    @model_validator(mode="after")
    def _check(self) -> UserIds:
        if not isinstance(self.ids, list) or not 0 < len(self.ids) <= 1000:
            raise ValueError("invalid request body")
        self.ids = [_id(v, "ids") for v in self.ids]
        return self
