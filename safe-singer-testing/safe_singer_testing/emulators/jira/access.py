"""What the API user may browse: ``GET /mypermissions`` and ``GET /project/{idOrKey}``.

Jira Cloud REST v3 "Get my permissions" (https://developer.atlassian.com/cloud/jira/platform/
rest/v3/api-group-permissions/#api-rest-api-3-mypermissions-get): ``permissions`` is required
(a comma-separated list of keys; without it a 400), ``projectId`` wins over ``projectKey``,
each asked key answers ``havePermission``; a 404 is "Returned if the project or issue is not
found or the user does not have permission to view the project or issue". Which of the two a
project the user lost Browse Projects on gets is not documented, so each deployment here takes
one: Cloud answers ``havePermission: false``, Server/Data Center a 404 (a tap must read both
as "not browsable"). ``GET /project/{idOrKey}`` answers 404 for such a project on both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safe_singer_testing.emulators.jira.catalog import PERMISSIONS
from safe_singer_testing.emulators.jira.render import Renderer
from safe_singer_testing.emulators.jira.routes import ApiError, errors, route

if TYPE_CHECKING:
    from safe_singer_testing.emulators.jira.server import JiraEmulator


def _known(em: JiraEmulator, id_or_key: str) -> str | None:
    """The key of the project with this id or key, whether the user may browse it or not."""
    projects = em.settings.projects
    by_id = {str(10_000 + n): key for n, key in enumerate(projects)}
    key = by_id.get(id_or_key, id_or_key)
    return key if key in projects else None


def _not_found(id_or_key: str) -> ApiError:
    return ApiError(404, errors(f"No project could be found with id or key '{id_or_key}'."))


@route("GET", r"/project/([^/]+)")
def project(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    key = _known(em, m.group(1))
    if key is None or key in em.dataset.unbrowsable:
        raise _not_found(m.group(1))
    return r.project(key, em.settings.projects.index(key))


@route("GET", r"/mypermissions")
def my_permissions(em: JiraEmulator, r: Renderer, p: dict[str, str], b: Any, m: Any) -> Any:
    cloud = em.settings.deployment == "Cloud"
    asked = [k.strip() for k in str(p.get("permissions") or "").split(",") if k.strip()]
    if not asked and cloud:
        raise ApiError(400, errors("The 'permissions' query parameter is required."))
    unknown = [k for k in asked if k not in PERMISSIONS]
    if unknown:
        raise ApiError(400, errors(f"Unrecognized permission key: {unknown[0]}"))
    browsable = True
    ref = p.get("projectId") or p.get("projectKey")
    if ref is not None:
        key = _known(em, ref)
        browsable = key is not None and key not in em.dataset.unbrowsable
        if key is None or not (browsable or cloud):
            raise _not_found(ref)
    answer = {}
    for n, (key, (name, kind)) in enumerate(PERMISSIONS.items()):
        if asked and key not in asked:
            continue
        have = browsable if kind == "PROJECT" else (em.settings.admin or key != "ADMINISTER")
        answer[key] = {
            "id": str(10 + n),
            "key": key,
            "name": name,
            "type": kind,
            "description": f"{name}.",
            "havePermission": have,
        }
    return {"permissions": answer}
