"""ESME's Messenger API under ``/messenger-api``: the REST archives (the WebSocket is the
gateway's, ``aidpost.messenger.gateway``)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from aidpost.core.errors import BadRequest, Unauthorized
from aidpost.core.tokens import Principal, Realm
from aidpost.messenger.service import MessengerService

router = APIRouter(prefix="/messenger-api", tags=["messenger"])
# ESME's chat socket: first frame ``{"Authorization": "Bearer <realm>:<jwt>"}``, then
# ``{type, payload}`` frames (docs/messenger.md). Served by the gateway ahead of the
# routing (``MessengerComponent.sockets``), not by this router.
CONNECT_PATH = "/messenger-api/connect"
Json = dict[str, Any]


async def _service(request: Request) -> MessengerService:
    svc: MessengerService = request.app.state.messenger
    return svc


Svc = Annotated[MessengerService, Depends(_service)]


async def _caller(request: Request, realm: Realm) -> Principal:
    """ESME's messenger words for token trouble: malformed, of the other kind, unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    prefix, sep, _jwt = token.partition(":")
    if scheme != "Bearer" or not sep or prefix not in ("organizer", "participant"):
        raise Unauthorized("malformed token")
    if prefix != realm:
        raise Unauthorized("invalid token type")
    try:
        principal: Principal = await request.app.state.runtime.verifier.verify(header, realm)
    except Unauthorized:
        raise Unauthorized("unknown user") from None
    return principal


async def _agency_of(request: Request, svc: MessengerService) -> int:
    principal = await _caller(request, "organizer")
    staff = await svc.staff(principal.user_id)
    if staff is None:
        raise Unauthorized("invalid role")
    return staff[1]


@router.get("/agency/chats", operation_id="agencyArchivedChats")
async def agency_chats(request: Request, svc: Svc) -> list[Json]:
    """The agency's ended chats, newest first, with the participants' details."""
    return await svc.archived_chats(agency_id=await _agency_of(request, svc))


@router.get("/agency/chats/{chatId}/messages", operation_id="agencyArchivedMessages")
async def agency_chat_messages(chatId: str, request: Request, svc: Svc) -> list[Json]:
    chat = await svc.archived_chat(chatId, agency_id=await _agency_of(request, svc))
    if chat is None:
        raise BadRequest("chat not found")
    return await svc.history(chat.id)


@router.get("/participant/chats", operation_id="participantArchivedChats")
async def participant_chats(request: Request, svc: Svc) -> list[Json]:
    principal = await _caller(request, "participant")
    return await svc.archived_chats(participant_id=principal.user_id)


@router.get("/participant/chats/{chatId}/messages", operation_id="participantArchivedMessages")
async def participant_chat_messages(chatId: str, request: Request, svc: Svc) -> list[Json]:
    principal = await _caller(request, "participant")
    chat = await svc.archived_chat(chatId, participant_id=principal.user_id)
    if chat is None:
        raise BadRequest("chat not found")
    return await svc.history(chat.id)


async def _api_key(request: Request) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    expected: str = request.app.state.runtime.settings.messenger.api_key
    if scheme != "Bearer" or not hmac.compare_digest(key.encode(), expected.encode()):
        raise Unauthorized("invalid api key")


@router.get(
    "/internal/chats/{chatId}/transcript",
    operation_id="chatTranscript",
    tags=["internal"],
    dependencies=[Depends(_api_key)],
)
async def chat_transcript(chatId: str, svc: Svc) -> Json:
    """An ended chat and its messages, for the mailer (``Bearer <AIDPOST_MESSENGER_API_KEY>``)."""
    transcript = await svc.transcript(chatId)
    if transcript is None:
        raise BadRequest("chat not found")
    return transcript
