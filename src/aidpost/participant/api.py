"""ESME's Participant API under ``/participant-api``, plus aidpost's help-request routes."""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from aidpost.core.deps import ParticipantPrincipal
from aidpost.core.errors import BadRequest, Unauthorized
from aidpost.core.validation import ascii_digits, parse_datetime
from aidpost.participant import schemas
from aidpost.participant.help import HelpService
from aidpost.participant.service import ParticipantService

Json = dict[str, Any]
router = APIRouter(prefix="/participant-api")


async def _service(request: Request) -> ParticipantService:
    svc: ParticipantService = request.app.state.participant
    return svc


async def _help(request: Request) -> HelpService:
    svc: HelpService = request.app.state.participant.help
    return svc


Svc = Annotated[ParticipantService, Depends(_service)]
Help = Annotated[HelpService, Depends(_help)]


async def _api_key(request: Request) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    expected: str = request.app.state.participant_api_key
    if scheme != "Bearer" or not hmac.compare_digest(key.encode(), expected.encode()):
        raise Unauthorized("invalid api key")


async def _route_id(id: str) -> int:
    if not ascii_digits(id) or len(id) > 9:
        raise BadRequest("invalid `id` route parameter")
    return int(id)


RouteId = Annotated[int, Depends(_route_id)]


def _time_filter(request: Request, name: str) -> dt.datetime | None:
    value = request.query_params.get(name, "")
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None or "T" not in value:
        raise BadRequest(f"invalid format of `{name}` filter value; RFC3339 required")
    return parsed


async def _body_or_query(request: Request, model: type[schemas.M]) -> schemas.M:
    """ESME's clients send some GET parameters as a JSON body; a query string works too."""
    raw = await request.body()
    if raw.strip():
        return schemas.parse(model, raw)
    import json

    params: dict[str, Any] = {}
    for key, value in request.query_params.items():
        params[key] = int(value) if ascii_digits(value) and len(value) < 10 else value
    return schemas.parse(model, json.dumps(params).encode())


# -- profile -----------------------------------------------------------------------------------


@router.get("/profile", tags=["participant profile"], operation_id="participantGetProfile")
async def get_profile(p: ParticipantPrincipal, svc: Svc) -> Json:
    return await svc.profile(p)


@router.patch("/profile", tags=["participant profile"], operation_id="participantUpdateProfile")
async def update_profile(request: Request, p: ParticipantPrincipal, svc: Svc) -> Json:
    """Change the phone number (the only editable field, as in ESME)."""
    body = schemas.parse(schemas.UpdateProfile, await request.body())
    return await svc.update_profile(p, body)


@router.delete("/profile", tags=["participant profile"], operation_id="participantDeleteProfile")
async def delete_profile(request: Request, p: ParticipantPrincipal, svc: Svc) -> Json:
    """Delete the account (``{password}`` confirms it); its waiting requests end."""
    body = schemas.parse(schemas.DeleteProfile, await request.body())
    return await svc.delete_account(p, body.password)


# -- events ------------------------------------------------------------------------------------


@router.get("/events", tags=["participant events"], operation_id="participantFindEvents")
async def find_events(request: Request, p: ParticipantPrincipal, svc: Svc) -> list[Json]:
    """Events of approved agencies that are not over: ``query`` matches name, description
    or address; ``from``/``to`` (RFC 3339) bound the start time."""
    query = request.query_params.get("query") or None
    if query is not None:
        try:
            query = schemas.checked_text(query, "query", 200)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return await svc.events(p, query, _time_filter(request, "from"), _time_filter(request, "to"))


@router.get("/events/{id}", tags=["participant events"], operation_id="participantGetEvent")
async def get_event(id: RouteId, p: ParticipantPrincipal, svc: Svc) -> Json:
    return await svc.event(p, id)


# -- help (chat) requests ----------------------------------------------------------------------


@router.get("/chat-requests", tags=["help requests"], operation_id="chatRequestExists")
async def chat_request_exists(request: Request, p: ParticipantPrincipal, help: Help) -> Json:
    """ESME: ``{eventId}`` (as a JSON body, or ``?eventId=``) -> ``{result}``."""
    body = await _body_or_query(request, schemas.EventRef)
    return {"result": await help.lock_exists(p, body.eventId)}


@router.post("/chat-requests", tags=["help requests"], operation_id="createChatRequest")
async def create_chat_request(request: Request, p: ParticipantPrincipal, help: Help) -> Json:
    """Ask for help at an event: ``{eventId, description, problemType?, lat?, lng?}``.
    Answers with the request, its place in the queue and the estimated wait."""
    body = schemas.parse(schemas.CreateHelpRequest, await request.body())
    return await help.create(p, body)


@router.delete(
    "/chat-requests",
    tags=["internal"],
    operation_id="releaseChatRequestLock",
    dependencies=[Depends(_api_key)],
)
async def release_chat_request_lock(request: Request, help: Help) -> Response:
    """Internal (API key): the chat is over; the participant may ask again at the event."""
    body = schemas.parse(schemas.ReleaseLock, await request.body())
    await help.release_lock(body.participantId, body.eventId)
    return Response(status_code=200, media_type="application/json")


@router.get("/help-requests", tags=["help requests"], operation_id="listHelpRequests")
async def list_help_requests(p: ParticipantPrincipal, help: Help) -> list[Json]:
    """The caller's requests, newest first, with queue position and estimated wait."""
    return await help.mine(p)


@router.get("/help-requests/{id}", tags=["help requests"], operation_id="getHelpRequest")
async def get_help_request(id: RouteId, p: ParticipantPrincipal, help: Help) -> Json:
    return await help.one(p, id)


@router.delete("/help-requests/{id}", tags=["help requests"], operation_id="cancelHelpRequest")
async def cancel_help_request(id: RouteId, p: ParticipantPrincipal, help: Help) -> Json:
    """Withdraw a request that is still waiting (this releases the event's lock)."""
    return await help.cancel(p, id)


# -- internal: users ---------------------------------------------------------------------------


@router.get(
    "/users", tags=["internal"], operation_id="participantUsers", dependencies=[Depends(_api_key)]
)
async def users(request: Request, svc: Svc) -> dict[str, Json]:
    """Internal (API key): ``{ids: [...]}`` (JSON body, or ``?ids=1,2``) -> map id -> user."""
    raw = await request.body()
    if not raw.strip() and "ids" in request.query_params:
        parts = request.query_params["ids"].split(",")
        if not all(ascii_digits(p.strip()) and len(p.strip()) < 10 for p in parts):
            raise BadRequest("invalid request body")
        raw = ('{"ids": [' + ",".join(p.strip() for p in parts) + "]}").encode()
    try:
        body = schemas.parse(schemas.UserIds, raw)
    except BadRequest:
        raise BadRequest("invalid request body") from None
    return await svc.users(body.ids)
