"""Request bodies and query strings of the Organizer API: ESME's fields, rules and limits.

Unknown properties are refused (ESME's ``forbidNonWhitelisted``); update bodies have every
field optional, as ESME's code does (its published spec marks them required).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aidpost.core.validation import (
    DateTime,
    Email,
    IntId,
    Latitude,
    Longitude,
    OrganizerPassword,
    Phone,
    StrictId,
    Text,
    Url,
)

IssueStatus = Literal["to_do", "in_progress", "resolved", "cancelled"]
IssuePriority = Literal["low", "medium", "high"]
CLOSED_STATUSES = ("resolved", "cancelled")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Body):
    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # null is not "leave unchanged" on NOT NULL columns; refuse it instead of a 500.
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None and key in cls.model_fields and key not in cls.nullable():
                    raise ValueError(f"{key} should not be null")
        return data

    @classmethod
    def nullable(cls) -> set[str]:
        return set()

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def _password_match(password: str, confirm: str, name: str = "password") -> None:
    if password != confirm:
        raise ValueError(f"confirm{name[0].upper()}{name[1:]} must be equal to {name}")


class AgencyIn(Body):
    name: Text(200)  # type: ignore[valid-type]
    address: Text(400)  # type: ignore[valid-type]
    website: Url


class OwnerIn(Body):
    email: Email
    password: OrganizerPassword
    confirmPassword: Text(128, empty=True)  # type: ignore[valid-type]
    firstName: Text(100)  # type: ignore[valid-type]
    lastName: Text(100)  # type: ignore[valid-type]
    phoneNumber: Phone

    @model_validator(mode="after")
    def _match(self) -> OwnerIn:
        _password_match(self.password, self.confirmPassword)
        return self


class RegisterAgency(Body):
    agency: AgencyIn
    owner: OwnerIn


class UpdateAgency(Patch):
    name: Text(200) = None  # type: ignore[valid-type]
    address: Text(400) = None  # type: ignore[valid-type]
    website: Url = None  # type: ignore[assignment]


class VerifyAgency(Patch):
    approved: bool | None = None

    @field_validator("approved", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, bool):
            raise ValueError("approved must be a boolean value")
        return value


class UpdateProfile(Patch):
    firstName: Text(100) = None  # type: ignore[valid-type]
    lastName: Text(100) = None  # type: ignore[valid-type]
    phoneNumber: Phone = None  # type: ignore[assignment]


class SetAgency(Body):
    agencyId: StrictId | None = None


class CreateUser(Body):
    email: Email
    password: OrganizerPassword
    confirmPassword: Text(128, empty=True)  # type: ignore[valid-type]
    firstName: Text(100)  # type: ignore[valid-type]
    lastName: Text(100)  # type: ignore[valid-type]
    phoneNumber: Phone
    role: IntId

    @field_validator("role")
    @classmethod
    def _role(cls, value: int) -> int:
        if value not in (0, 1, 2, 3, 4):
            raise ValueError("role must be one of the following values: 0, 1, 2, 3, 4")
        return value

    @model_validator(mode="after")
    def _match(self) -> CreateUser:
        _password_match(self.password, self.confirmPassword)
        return self


class UpdateAdminUser(UpdateProfile):
    pass


class UpdateAgencyUser(UpdateProfile):
    role: IntId = None  # type: ignore[assignment]

    @field_validator("role")
    @classmethod
    def _role(cls, value: int | None) -> int | None:
        if value is not None and value not in (0, 1, 2, 3, 4):
            raise ValueError("role must be one of the following values: 0, 1, 2, 3, 4")
        return value


class CreateEvent(Body):
    name: Text(200)  # type: ignore[valid-type]
    description: Text(2000)  # type: ignore[valid-type]
    address: Text(400)  # type: ignore[valid-type]
    lat: Latitude
    lng: Longitude
    timeStart: DateTime
    timeEnd: DateTime

    @model_validator(mode="after")
    def _order(self) -> CreateEvent:
        if self.timeEnd < self.timeStart:
            raise ValueError("timeEnd must not be earlier than timeStart")
        return self


class UpdateEvent(Patch):
    name: Text(200) = None  # type: ignore[valid-type]
    description: Text(2000) = None  # type: ignore[valid-type]
    address: Text(400) = None  # type: ignore[valid-type]
    lat: Latitude = None  # type: ignore[assignment]
    lng: Longitude = None  # type: ignore[assignment]
    timeStart: DateTime = None  # type: ignore[assignment]
    timeEnd: DateTime = None  # type: ignore[assignment]


class CreateContact(Body):
    firstName: Text(100)  # type: ignore[valid-type]
    lastName: Text(100)  # type: ignore[valid-type]
    email: Email
    phoneNumber: Phone
    additionalNotes: Text(2000, empty=True)  # type: ignore[valid-type]
    eventId: IntId


class UpdateContact(Patch):
    firstName: Text(100) = None  # type: ignore[valid-type]
    lastName: Text(100) = None  # type: ignore[valid-type]
    email: Email = None  # type: ignore[assignment]
    phoneNumber: Phone = None  # type: ignore[assignment]
    additionalNotes: Text(2000, empty=True) = None  # type: ignore[valid-type]


class CreateIssue(Body):
    name: Text(200)  # type: ignore[valid-type]
    description: Text(20000)  # type: ignore[valid-type]
    priority: IssuePriority
    eventId: IntId


class UpdateIssue(Patch):
    name: Text(200) = None  # type: ignore[valid-type]
    description: Text(20000) = None  # type: ignore[valid-type]
    status: IssueStatus = None  # type: ignore[assignment]
    priority: IssuePriority = None  # type: ignore[assignment]


class CreateComment(Body):
    content: Text(2000)  # type: ignore[valid-type]
    issueId: IntId


class UpdateComment(Patch):
    content: Text(2000) = None  # type: ignore[valid-type]


class EventQuery(Body):
    eventId: IntId | None = None


class IssueQuery(Body):
    issueId: IntId | None = None


class UserQuery(Body):
    userId: IntId | None = None


class AdminChangelogQuery(Body):
    userId: IntId | None = None
    agencyId: IntId | None = None


class ApiEventsQuery(Body):
    query: Text(200) | None = None  # type: ignore[valid-type]
    # the API key may also travel in the query string (passport-http-bearer)
    access_token: str | None = Field(default=None, max_length=512)
    from_: DateTime | None = Field(default=None, alias="from")
    to: DateTime | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
