"""ESME's error shape, ``{statusCode, message, error}``, for every error a component returns."""

from __future__ import annotations

import errno
import socket
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

try:  # Redis is an extra: the embedded shape runs without it
    from redis.exceptions import AuthenticationError, AuthorizationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    _REDIS_AWAY: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeout)
    _REDIS_REFUSED: tuple[type[Exception], ...] = (AuthenticationError, AuthorizationError)
except ImportError:  # pragma: no cover - installed everywhere the tests run
    _REDIS_AWAY = _REDIS_REFUSED = ()
_NETWORK_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


class ApiError(Exception):
    """An error a service raises on purpose; the transport maps it to ESME's shape."""

    status_code = 400

    def __init__(self, message: str | list[str], status_code: int | None = None) -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, message: str = "Unauthorized") -> None:
        super().__init__(message)


class Forbidden(ApiError):
    status_code = 403

    def __init__(self, message: str = "Forbidden resource") -> None:
        super().__init__(message)


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, message: str = "Too many requests, try again later") -> None:
        super().__init__(message)


def error_body(status_code: int, message: str | list[str]) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    return {"statusCode": status_code, "message": message, "error": phrase}


def error_response(
    status_code: int, message: str | list[str], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status_code, message), status_code=status_code, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "body"


def _message(err: Any) -> str:
    """class-validator's wording (ESME's clients show these strings to people)."""
    field = _field(tuple(err.get("loc", ())))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "esme_rule":
        return f"{field} {ctx.get('rule', 'is invalid')}"
    if kind == "missing":
        return f"{field} should not be empty"
    if kind == "extra_forbidden":
        parent, _, name = field.rpartition(".")
        return f"{parent + '.' if parent else ''}property {name} should not exist"
    if kind in ("string_too_short", "too_short"):
        if ctx.get("min_length") == 1:
            return f"{field} should not be empty"
        return f"{field} must be longer than or equal to {ctx.get('min_length')} characters"
    if kind in ("string_too_long", "too_long"):
        return f"{field} must be shorter than or equal to {ctx.get('max_length')} characters"
    if kind in ("string_type", "string_unicode"):
        return f"{field} must be a string"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be an integer number"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{field} must be within the allowed range"
    if kind in ("bool_type", "bool_parsing"):
        return f"{field} must be a boolean value"
    if kind in ("float_type", "float_parsing"):
        return f"{field} must be a number"
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{field} must be one of the following values: {expected}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{field} must be an object"
    if kind in ("list_type",):
        return f"{field} must be an array"
    if kind == "json_invalid":
        return "Unexpected token in JSON body"
    if kind == "value_error":
        text = str(ctx.get("error", err.get("msg", "")))
        # a nested object's own rule (owner's passwords must match) names its path
        if field != "body" and not text.startswith(field.rsplit(".", 1)[-1]):
            return f"{field}.{text}"
        return text
    return f"{field}: {err.get('msg', 'is invalid')}"


def validation_messages(exc: RequestValidationError) -> list[str]:
    """One message per problem, like ESME's class-validator list."""
    return [_message(err) for err in exc.errors()]


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message)


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str | list) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"Cannot {_request.method} {_request.url.path}"
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return error_response(400, "Unexpected token in JSON body")
    return error_response(400, validation_messages(exc))


async def unhandled_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    if service_away(exc):
        # Not the request's fault and not a bug: the database (or the way to it) went away.
        response = error_response(503, "The database is unavailable; try again in a moment.")
        response.headers["Retry-After"] = "1"
        return response
    return error_response(500, "Internal server error")


def service_away(exc: BaseException) -> bool:
    """What a component needs cannot be reached, or is too busy, as opposed to a request
    it refused: a database connection lost or refused, a server starting, shutting down
    or out of connections, SQLite's lock; the bus or hub (Redis) unreachable. Not the
    request's fault and not a bug: the same request may succeed in a moment."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        code = str(getattr(exc.orig, "sqlstate", "") or "")
        # connection exception; server shutting down; insufficient resources (too many
        # connections, out of memory or disk)
        if code.startswith(("08", "57P", "53")):
            return True
        return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)
    if isinstance(exc, SQLAlchemyTimeout):  # no pooled connection came free in time
        return True
    if isinstance(exc, _REDIS_REFUSED):  # a password or ACL wrong: configuration, not away
        return False
    if isinstance(exc, _REDIS_AWAY):
        return True
    # asyncpg's connect errors reach the caller as they are (refused, timed out, a host
    # not resolved or not reachable while it restarts).
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


async def client_gone_handler(_request: Request, _exc: Exception) -> JSONResponse:
    """The client went away (or was refused mid-body): nobody will read an answer."""
    return error_response(400, "client disconnected")
