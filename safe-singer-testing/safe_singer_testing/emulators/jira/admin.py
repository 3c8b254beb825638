"""Administration endpoints. Those Atlassian documents for "Administer Jira" only answer 403
with Jira's message to a user without it (``JiraSettings.admin = False``); the license and
permission-scheme listings are open to any user on Cloud ("Permission to access Jira" /
"None"), so they answer everyone. Each route cites its operation's reference page; Server /
Data Center pages are under https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/
(paths below ``/rest/api/2``), and the Cloud-only endpoints answer 404 there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safe_singer_testing.emulators.jira.catalog import ROLES, admin_only, fault
from safe_singer_testing.emulators.jira.dataset import USERS
from safe_singer_testing.emulators.jira.render import FIELDS, Renderer
from safe_singer_testing.emulators.jira.routes import (
    ApiError,
    _cloud_only,
    _int,
    _paged,
    errors,
    route,
)

if TYPE_CHECKING:
    from safe_singer_testing.emulators.jira.server import JiraEmulator

AUDIT_RECORDS = 23
AUDIT_SPACING_MS = 600_000


def audit_times(em: JiraEmulator) -> dict[int, int]:
    """``{record id: created ms}``: one record every 10 minutes, the newest an hour old
    when the emulator was made, plus any a test added."""
    held: dict[int, int] | None = em.__dict__.get("_audit_times")
    if held is None:
        newest = em.now_ms() - 3_600_000
        held = {
            n + 1: newest - (AUDIT_RECORDS - 1 - n) * AUDIT_SPACING_MS for n in range(AUDIT_RECORDS)
        }
        em.__dict__["_audit_times"] = held
    return held


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-audit-records/#api-rest-api-3-auditing-record-get
@route("GET", r"/auditing/record")
def audit_records(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    if em.settings.deployment != "Cloud" and em.settings.dc_major_version >= 10:
        raise ApiError(404, errors("null for uri: /rest/api/2/auditing/record"))
    admin_only(em)
    since = _parse_from(p.get("from"))
    found = sorted(
        ((ms, rid) for rid, ms in audit_times(em).items() if since is None or ms >= since),
        reverse=True,
    )
    offset, limit = _int(p, "offset", 0), min(_int(p, "limit", 1000), 7)  # a small cap: page
    rows: list[dict[str, Any]] = [
        {
            "id": rid,
            "summary": f"User created {rid}",
            "created": r.time(ms),
            "category": "user management",
            "eventSource": "",
            "authorAccountId": USERS[rid % len(USERS)],
            "objectItem": {"id": f"u{rid}", "name": f"user {rid}", "typeName": "USER"},
            "changedValues": [],
            "associatedItems": [],
        }
        for ms, rid in found[offset : offset + limit]
    ]
    return {"offset": offset, "limit": limit, "total": len(found), "records": rows}


def _parse_from(value: str | None) -> int | None:
    from datetime import datetime

    if not value:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


# Permissions required: None; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-license-metrics/#api-rest-api-3-instance-license-get
@route("GET", r"/instance/license")
def license_(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/instance/license")
    return {"applications": [{"id": "jira-software", "plan": "PAID"}]}


SCHEMES = (("Default Permission Scheme", 0), ("Restricted", 1))


# Permissions required: Permission to access Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-permission-schemes/#api-rest-api-3-permissionscheme-get
@route("GET", r"/permissionscheme")
def permission_schemes(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return {
        "permissionSchemes": [
            {
                "id": 10_000 + n,
                "self": f"{r.base_url}/rest/api/{r.api}/permissionscheme/{10_000 + n}",
                "name": name,
                "description": f"{name}.",
                "permissions": grants(10_000 + n),
                "expand": "permissions,user,group,projectRole,field,all",
            }
            for name, n in SCHEMES
        ]
    }


def grants(scheme_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": scheme_id * 10 + n,
            "holder": {
                "type": "projectRole",
                "parameter": str(10_002 + n),
                "value": str(10_002 + n),
            },
            "permission": permission,
        }
        for n, permission in enumerate(("BROWSE_PROJECTS", "CREATE_ISSUES"))
    ]


# Permissions required: Permission to access Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-permission-schemes/#api-rest-api-3-permissionscheme-schemeid-permission-get
@route("GET", r"/permissionscheme/(\d+)/permission")
def scheme_grants(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    return {"permissions": grants(int(m.group(1)))}


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-project-role-actors/#api-rest-api-3-role-id-actors-get
@route("GET", r"/role/(\d+)/actors")
def role_actors(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    admin_only(em)
    fault(em, f"/role/{m.group(1)}/actors", p)
    role = int(m.group(1))
    if not 10_002 <= role < 10_002 + len(ROLES):
        raise ApiError(404, errors(f"Can not retrieve a role actor for a null project role {role}"))
    return {
        "actors": [
            {"id": role * 10 + n, "displayName": user, "type": "atlassian-user-role-actor"}
            | {"name": user, "actorUser": {"accountId": user}}
            for n, user in enumerate(USERS[: role - 10_000])
        ]
    }


# Permissions required: Administer Jira; references: Cloud (a page object, ``values``)
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-screens/#api-rest-api-3-screens-get
# and Server / Data Center ``getAllScreens`` (``startAt`` / ``maxResults``, a bare list)
# https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/screens-getAllScreens
@route("GET", r"/screens")
def screens(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    admin_only(em)
    fault(em, "/screens", p)
    rows = [{"id": n + 1, "name": f"Screen {n}", "description": ""} for n in range(5)]
    if em.settings.deployment == "Cloud":
        return _paged(rows, p, cap=2)
    start = _int(p, "startAt", 0)
    return rows[start : start + min(_int(p, "maxResults", 100), 100)]


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-screen-schemes/#api-rest-api-3-screenscheme-get
@route("GET", r"/screenscheme")
def screen_schemes(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/screenscheme")
    admin_only(em)
    rows = [{"id": n + 1, "name": f"Scheme {n}", "screens": {"default": n + 1}} for n in range(3)]
    return _paged(rows, p, cap=2)


WORKFLOWS = ("jira", "Software Simplified Workflow", "Bug flow")


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-workflows/#api-rest-api-3-workflow-search-get
@route("GET", r"/workflow/search")
def workflow_search(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/workflow/search")
    admin_only(em)
    rows = [
        {"id": {"name": name, "entityId": f"e-{n}"}, "description": f"{name}."}
        | {"isDefault": n == 0, "created": r.time(em.now_ms() - 86_400_000 * (n + 1))}
        for n, name in enumerate(WORKFLOWS)
    ]
    return _paged(rows, p, cap=2)


# Server/DC (a bare list; deprecated on Cloud, which the tap reads /workflow/search on):
# https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/#api/2/workflow-getAllWorkflows
@route("GET", r"/workflow")
def workflows_server(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    if em.settings.deployment == "Cloud":
        raise ApiError(404, errors("null for uri: /rest/api/3/workflow"))  # gone on Cloud
    admin_only(em)
    return [
        {"name": name, "description": f"{name}.", "steps": 3 + n, "default": n == 0}
        for n, name in enumerate(WORKFLOWS)
    ]


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-workflow-schemes/#api-rest-api-3-workflowscheme-get
@route("GET", r"/workflowscheme")
def workflow_schemes(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/workflowscheme")
    admin_only(em)
    rows = [
        {"id": 10_000 + n, "name": f"Workflow scheme {n}", "defaultWorkflow": WORKFLOWS[n]}
        | {"issueTypeMappings": {}, "draft": False}
        for n in range(3)
    ]
    return _paged(rows, p, cap=2)


def _custom_field(ident: str) -> dict[str, Any]:
    found = next((f for f in FIELDS if f["id"] == ident and f["custom"]), None)
    if found is None:
        raise ApiError(404, errors(f"The custom field was not found: {ident}"))
    return found


def contexts(field_id: str) -> list[dict[str, Any]]:
    number = int(field_id.rsplit("_", 1)[1])
    return [
        {"id": str(number * 10 + n), "name": f"Context {n}", "description": ""}
        | {"isGlobalContext": n == 0, "isAnyIssueType": n == 0}
        for n in range(2)
    ]


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-custom-field-contexts/#api-rest-api-3-field-fieldid-context-get
@route("GET", r"/field/([^/]+)/context")
def field_contexts(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/field/{id}/context")
    admin_only(em)
    _custom_field(m.group(1))
    return _paged(contexts(m.group(1)), p, cap=1)


def options(context_id: str) -> list[dict[str, Any]]:
    return [{"id": f"{context_id}{n}", "value": f"Team {n}", "disabled": n == 2} for n in range(3)]


# Permissions required: Administer Jira; reference:
# https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-custom-field-options/#api-rest-api-3-field-fieldid-context-contextid-option-get
@route("GET", r"/field/([^/]+)/context/(\d+)/option")
def field_options(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    _cloud_only(em, "/rest/api/2/field/{id}/context/{id}/option")
    admin_only(em)
    field = _custom_field(m.group(1))
    if not field["schema"]["custom"].endswith(":select"):
        raise ApiError(400, errors("The custom field doesn't support options."))
    return _paged(options(m.group(2)), p, cap=2)
