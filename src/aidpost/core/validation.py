"""Field types with ESME's (class-validator's) rules and wording, for request schemas.

A ``ValueError`` raised here reaches the client verbatim in the 400 message list, so each
message starts with the field name, as class-validator's do.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

_URL = re.compile(
    r"^(?:(?:https?|ftp)://)?"  # scheme is optional, as validator.js allows
    r"(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}"  # host with a top-level domain
    r"(?::\d{1,5})?(?:[/?#][^\s]*)?$"
)


def ascii_digits(text: str) -> bool:
    """Only 0-9 (``str.isdigit`` also accepts superscripts, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def rule(text: str) -> PydanticCustomError:
    """A broken rule; the 400 message puts the field's full path before ``text``
    (``owner.email must be an email``), as class-validator does for nested objects."""
    return PydanticCustomError("esme_rule", "{rule}", {"rule": text})


def clean(value: str) -> str:
    """Refuse text no database can store: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise rule("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise rule("must be valid Unicode text") from None
    return value


def _string(value: Any, info: ValidationInfo) -> str:
    if not isinstance(value, str):
        raise rule("must be a string")
    return clean(value)


def _email(raw: Any, info: ValidationInfo) -> str:
    value = _string(raw, info)
    if len(value) > 320:
        raise rule("must be shorter than or equal to 320 characters")
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise rule("must be an email") from None
    return value.strip()


def _phone(raw: Any, info: ValidationInfo) -> str:
    value = _string(raw, info)
    if len(value) > 30:
        raise rule("must be shorter than or equal to 30 characters")
    try:
        ok = phonenumbers.is_valid_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        ok = False
    if not ok:
        raise rule("must be a valid phone number")
    return value


def _url(raw: Any, info: ValidationInfo) -> str:
    value = _string(raw, info)
    if len(value) > 400 or not _URL.match(value):
        raise rule("must be a URL address")
    return value


def _coordinate(limit: float, word: str) -> Any:
    def check(value: Any, info: ValidationInfo) -> float:
        number: float | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                number = None
        elif isinstance(value, str) and len(value) <= 40:
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number) or abs(number) > limit:
            raise rule(f"must be a {word} string or number")
        return number

    return check


def parse_datetime(value: Any) -> dt.datetime:
    """ISO 8601; a time without an offset is taken as UTC (ESME's UI sends local strings)."""
    if isinstance(value, str) and len(value) <= 40:
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            parsed = dt.datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            parsed.astimezone(dt.UTC)  # an offset may push it out of range
        except (ValueError, OverflowError):
            parsed = None
        if parsed is not None and 2 <= parsed.year <= 9998:
            return parsed
    raise ValueError("not an ISO 8601 date string")


def _datetime(value: Any, info: ValidationInfo) -> dt.datetime:
    try:
        return parse_datetime(value)
    except ValueError:
        raise rule("must be a valid ISO 8601 date string") from None


def _strict_int(value: Any, info: ValidationInfo) -> int:
    """A JSON number that is a whole number in range (ESME's IsInt, without parseInt)."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise rule("must be an integer number")
    return value


def _int(value: Any, info: ValidationInfo) -> int:
    """ESME parses ids with parseInt; we accept an integer or a string of digits only."""
    if isinstance(value, bool):
        raise rule("must be an integer number")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        number = int(value)
    else:
        raise rule("must be an integer number")
    if not -(2**31) <= number < 2**31:
        raise rule("must be an integer number")
    return number


def Text(max_length: int, *, empty: bool = False) -> Any:
    return Annotated[
        str,
        BeforeValidator(_string),
        Field(min_length=0 if empty else 1, max_length=max_length),
    ]


Email = Annotated[str, BeforeValidator(_email)]
Phone = Annotated[str, BeforeValidator(_phone)]
Url = Annotated[str, BeforeValidator(_url)]
Latitude = Annotated[float, BeforeValidator(_coordinate(90, "latitude"))]
Longitude = Annotated[float, BeforeValidator(_coordinate(180, "longitude"))]
DateTime = Annotated[dt.datetime, BeforeValidator(_datetime)]
IntId = Annotated[int, BeforeValidator(_int)]
StrictId = Annotated[int, BeforeValidator(_strict_int)]
OrganizerPassword = Annotated[str, BeforeValidator(_string), Field(min_length=16, max_length=128)]


def schema_problem(schema: dict[str, Any], data: Any, top: str = "(top level)") -> str | None:
    """The first way ``data`` breaks a JSON schema, as "at <place>: <reason>", or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].absolute_path) or top
    return f"at {where}: {errors[0].message}"
