"""ESME's Organizer API under ``/organizer-api``: parse, authorize, call one service method."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from aidpost.core.deps import OrganizerPrincipal
from aidpost.core.errors import ApiError, BadRequest
from aidpost.core.validation import ascii_digits
from aidpost.organizer import schemas
from aidpost.organizer.access import ADMINS, SUPPORT
from aidpost.organizer.service import ADMIN_ROLES, AGENCY_ROLES, OrganizerService

Json = dict[str, Any]
router = APIRouter(prefix="/organizer-api")


async def _service(request: Request) -> OrganizerService:
    svc: OrganizerService = request.app.state.organizer
    return svc


Svc = Annotated[OrganizerService, Depends(_service)]


async def _id(id: Annotated[str, Path(max_length=20)]) -> int:
    text = id.strip()
    if not ascii_digits(text) or len(text) > 10 or int(text) >= 2**31:
        raise BadRequest(["id must be an integer number"])
    return int(text)


Id = Annotated[int, Depends(_id)]


def _query(model: type[schemas.Body]) -> Any:
    async def parse(request: Request) -> Any:
        from pydantic import ValidationError

        try:
            return model.model_validate(dict(request.query_params))
        except ValidationError as exc:
            from fastapi.exceptions import RequestValidationError

            errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]
            raise RequestValidationError(errors) from None

    return Depends(parse)


class ApiKeyError(ApiError):
    status_code = 401


async def _api_key(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        key = request.query_params.get("access_token", "")
    if not key:
        raise ApiKeyError("Unauthorized")
    expected: str = request.app.state.organizer_api_key
    if not hmac.compare_digest(key.strip().encode(), expected.encode()):
        raise ApiKeyError("invalid api key")


# -- profile -----------------------------------------------------------------------------------


@router.get("/profile", tags=["profile"], operation_id="getProfile")
async def get_profile(p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.profile(p)


@router.patch("/profile", tags=["profile"], operation_id="updateProfile")
async def update_profile(body: schemas.UpdateProfile, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.update_profile(p, body)


@router.patch("/profile/set-agency", tags=["profile"], operation_id="setAgency")
async def set_agency(body: schemas.SetAgency, p: OrganizerPrincipal, svc: Svc) -> Json:
    """Admins: preview an agency (its id), or leave the preview (null or nothing)."""
    return await svc.set_agency(p, body)


# -- admin -------------------------------------------------------------------------------------


@router.get("/admin/users/roles", tags=["admin users"], operation_id="adminUserRoles")
async def admin_user_roles(p: OrganizerPrincipal, svc: Svc) -> list[Json]:
    await svc.authorize(p, ADMINS)
    return ADMIN_ROLES


@router.get("/admin/users", tags=["admin users"], operation_id="adminListUsers")
async def admin_list_users(p: OrganizerPrincipal, svc: Svc) -> list[Json]:
    return await svc.admin_users(p)


@router.post("/admin/users", tags=["admin users"], operation_id="adminCreateUser", status_code=201)
async def admin_create_user(body: schemas.CreateUser, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.admin_create_user(p, body)


@router.get("/admin/users/{id}", tags=["admin users"], operation_id="adminGetUser")
async def admin_get_user(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.admin_user(p, id)


@router.patch("/admin/users/{id}", tags=["admin users"], operation_id="adminUpdateUser")
async def admin_update_user(
    id: Id, body: schemas.UpdateAdminUser, p: OrganizerPrincipal, svc: Svc
) -> Json:
    return await svc.admin_update_user(p, id, body)


@router.delete("/admin/users/{id}", tags=["admin users"], operation_id="adminDeleteUser")
async def admin_delete_user(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.admin_delete_user(p, id)


@router.get("/admin/agencies", tags=["admin agencies"], operation_id="adminListAgencies")
async def admin_list_agencies(p: OrganizerPrincipal, svc: Svc) -> list[Json]:
    return await svc.admin_agencies(p)


@router.get("/admin/agencies/{id}", tags=["admin agencies"], operation_id="adminGetAgency")
async def admin_get_agency(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.admin_agency(p, id)


@router.patch(
    "/admin/agencies/{id}/verify", tags=["admin agencies"], operation_id="adminVerifyAgency"
)
async def admin_verify_agency(
    id: Id, body: schemas.VerifyAgency, p: OrganizerPrincipal, svc: Svc
) -> Json:
    return await svc.verify_agency(p, id, body)


@router.get("/admin/changelogs", tags=["admin changelogs"], operation_id="adminListChangelogs")
async def admin_list_changelogs(
    p: OrganizerPrincipal,
    svc: Svc,
    q: schemas.AdminChangelogQuery = _query(schemas.AdminChangelogQuery),
) -> list[Json]:
    return await svc.admin_changelogs(p, q)


@router.get("/admin/changelogs/{id}", tags=["admin changelogs"], operation_id="adminGetChangelog")
async def admin_get_changelog(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.admin_changelog(p, id)


# -- agency ------------------------------------------------------------------------------------


@router.post("/agency", tags=["agency"], operation_id="registerAgency", status_code=201)
async def register_agency(body: schemas.RegisterAgency, svc: Svc) -> Json:
    """Public: register an agency and its owner; nobody in it can sign in until approved."""
    return await svc.register_agency(body)


@router.get("/agency", tags=["agency"], operation_id="getAgency")
async def get_agency(p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.agency(p)


@router.patch("/agency", tags=["agency"], operation_id="updateAgency")
async def update_agency(body: schemas.UpdateAgency, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.update_agency(p, body)


@router.delete("/agency", tags=["agency"], operation_id="deleteAgency")
async def delete_agency(p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.delete_agency(p)


@router.get("/agency/users/roles", tags=["agency users"], operation_id="agencyUserRoles")
async def agency_user_roles(p: OrganizerPrincipal, svc: Svc) -> list[Json]:
    await svc.authorize(p, SUPPORT)
    return AGENCY_ROLES


@router.get("/agency/users", tags=["agency users"], operation_id="agencyListUsers")
async def agency_list_users(p: OrganizerPrincipal, svc: Svc) -> list[Json]:
    return await svc.agency_users(p)


@router.post(
    "/agency/users", tags=["agency users"], operation_id="agencyCreateUser", status_code=201
)
async def agency_create_user(body: schemas.CreateUser, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.create_agency_user(p, body)


@router.get("/agency/users/{id}", tags=["agency users"], operation_id="agencyGetUser")
async def agency_get_user(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.agency_user(p, id)


@router.patch("/agency/users/{id}", tags=["agency users"], operation_id="agencyUpdateUser")
async def agency_update_user(
    id: Id, body: schemas.UpdateAgencyUser, p: OrganizerPrincipal, svc: Svc
) -> Json:
    return await svc.update_agency_user(p, id, body)


@router.delete("/agency/users/{id}", tags=["agency users"], operation_id="agencyDeleteUser")
async def agency_delete_user(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.delete_agency_user(p, id)


@router.get("/agency/events", tags=["events"], operation_id="listEvents")
async def list_events(p: OrganizerPrincipal, svc: Svc) -> list[Json]:
    return await svc.events(p)


@router.post("/agency/events", tags=["events"], operation_id="createEvent", status_code=201)
async def create_event(body: schemas.CreateEvent, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.create_event(p, body)


@router.get("/agency/events/{id}", tags=["events"], operation_id="getEvent")
async def get_event(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.event(p, id)


@router.patch("/agency/events/{id}", tags=["events"], operation_id="updateEvent")
async def update_event(id: Id, body: schemas.UpdateEvent, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.update_event(p, id, body)


@router.delete("/agency/events/{id}", tags=["events"], operation_id="deleteEvent")
async def delete_event(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.delete_event(p, id)


@router.get("/agency/contacts", tags=["contacts"], operation_id="listContacts")
async def list_contacts(
    p: OrganizerPrincipal, svc: Svc, q: schemas.EventQuery = _query(schemas.EventQuery)
) -> list[Json]:
    return await svc.contacts(p, q)


@router.post("/agency/contacts", tags=["contacts"], operation_id="createContact", status_code=201)
async def create_contact(body: schemas.CreateContact, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.create_contact(p, body)


@router.get("/agency/contacts/{id}", tags=["contacts"], operation_id="getContact")
async def get_contact(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.contact(p, id)


@router.patch("/agency/contacts/{id}", tags=["contacts"], operation_id="updateContact")
async def update_contact(
    id: Id, body: schemas.UpdateContact, p: OrganizerPrincipal, svc: Svc
) -> Json:
    return await svc.update_contact(p, id, body)


@router.delete("/agency/contacts/{id}", tags=["contacts"], operation_id="deleteContact")
async def delete_contact(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.delete_contact(p, id)


@router.get("/agency/issues", tags=["issues"], operation_id="listIssues")
async def list_issues(
    p: OrganizerPrincipal, svc: Svc, q: schemas.EventQuery = _query(schemas.EventQuery)
) -> list[Json]:
    return await svc.issues(p, q)


@router.post("/agency/issues", tags=["issues"], operation_id="createIssue", status_code=201)
async def create_issue(body: schemas.CreateIssue, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.create_issue(p, body)


@router.get("/agency/issues/{id}", tags=["issues"], operation_id="getIssue")
async def get_issue(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.issue(p, id)


@router.patch("/agency/issues/{id}", tags=["issues"], operation_id="updateIssue")
async def update_issue(id: Id, body: schemas.UpdateIssue, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.update_issue(p, id, body)


@router.delete("/agency/issues/{id}", tags=["issues"], operation_id="deleteIssue")
async def delete_issue(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.delete_issue(p, id)


@router.get("/agency/comments", tags=["comments"], operation_id="listComments")
async def list_comments(
    p: OrganizerPrincipal, svc: Svc, q: schemas.IssueQuery = _query(schemas.IssueQuery)
) -> list[Json]:
    return await svc.comments(p, q)


@router.post("/agency/comments", tags=["comments"], operation_id="createComment", status_code=201)
async def create_comment(body: schemas.CreateComment, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.create_comment(p, body)


@router.get("/agency/comments/{id}", tags=["comments"], operation_id="getComment")
async def get_comment(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.comment(p, id)


@router.patch("/agency/comments/{id}", tags=["comments"], operation_id="updateComment")
async def update_comment(
    id: Id, body: schemas.UpdateComment, p: OrganizerPrincipal, svc: Svc
) -> Json:
    """Only the comment's author may edit it."""
    return await svc.update_comment(p, id, body)


@router.delete("/agency/comments/{id}", tags=["comments"], operation_id="deleteComment")
async def delete_comment(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    """Only the comment's author may delete it (ESME forgot this check)."""
    return await svc.delete_comment(p, id)


@router.get("/agency/changelogs", tags=["changelogs"], operation_id="listAgencyChangelogs")
async def list_agency_changelogs(
    p: OrganizerPrincipal, svc: Svc, q: schemas.UserQuery = _query(schemas.UserQuery)
) -> list[Json]:
    return await svc.agency_changelogs(p, q)


@router.get("/agency/changelogs/{id}", tags=["changelogs"], operation_id="getAgencyChangelog")
async def get_agency_changelog(id: Id, p: OrganizerPrincipal, svc: Svc) -> Json:
    return await svc.agency_changelog(p, id)


# -- internal (API key) ------------------------------------------------------------------------


@router.get(
    "/api/events",
    tags=["internal"],
    operation_id="apiListEvents",
    dependencies=[Depends(_api_key)],
)
async def api_list_events(
    svc: Svc, q: schemas.ApiEventsQuery = _query(schemas.ApiEventsQuery)
) -> list[Json]:
    """Events of approved agencies: ``query`` matches name, description or address;
    ``from``/``to`` bound the start time (RFC 3339)."""
    return await svc.api_events(q)


@router.get(
    "/api/events/{id}",
    tags=["internal"],
    operation_id="apiGetEvent",
    dependencies=[Depends(_api_key)],
)
async def api_get_event(id: Id, svc: Svc) -> Json:
    return await svc.api_event(id)
