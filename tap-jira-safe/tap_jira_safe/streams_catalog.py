"""Site-wide reference lists any Jira user may read (full table).

Endpoints and answer shapes from Atlassian's REST references: Cloud
https://developer.atlassian.com/cloud/jira/platform/rest/v3/ and Server / Data Center
https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/ (paths below ``/rest/api/N``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.listing import ListingStream, schema


class ServerInfoStream(ListingStream):
    """``GET /serverInfo``: one row, the site's version and clock."""

    name, cloud_path, dc_path, single = "server_info", "/serverInfo", "/serverInfo", True
    primary_keys = ("baseUrl",)
    times = ("buildDate", "serverTime")
    schema = schema(
        ("baseUrl",),
        baseUrl="string",
        displayUrl="string",
        displayUrlServicedeskHelpCenter="string",
        displayUrlConfluence="string",
        version="string",
        versionNumbers="array",
        deploymentType="string",
        buildNumber="integer",
        buildDate="date-time",
        serverTime="date-time",
        scmInfo="string",
        serverTitle="string",
        healthChecks="array",
        defaultLocale="object",
        serverTimeZone="object",
    )


class WorkflowStatusesStream(ListingStream):
    """Cloud ``GET /statuses/search`` (paged): statuses with their scope and usages; needs
    Administer projects or Administer Jira. Server/DC's ``/status/page`` answers the same
    beans as ``/status`` (the ``statuses`` stream), without scope or usages."""

    name, cloud_path, items_key, paged = "workflow_statuses", "/statuses/search", "values", True
    permission = "Administer projects (or Administer Jira)"
    primary_keys = ("id",)
    extra_params = {"expand": "usages,workflowUsages"}
    schema = schema(
        ("id",),
        id="string",
        name="string",
        description="string",
        statusCategory="string",
        scope="object",
        usages="array",
        workflowUsages="array",
    )


class PermissionsStream(ListingStream):
    """``GET /permissions``: every permission, a map keyed by permission key."""

    name, cloud_path, dc_path, items_key = (
        "permissions",
        "/permissions",
        "/permissions",
        "permissions",
    )
    primary_keys = ("key",)
    schema = schema(  # Jira's UserPermission
        ("key",),
        key="string",
        id="string",
        name="string",
        type="string",
        description="string",
        havePermission="boolean",
        deprecatedKey="boolean",
    )

    @override
    def items(self, body: Any, endpoint: str) -> Iterable[dict[str, Any]]:
        found = body.get("permissions") if isinstance(body, dict) else None
        if isinstance(found, dict):
            return list(found.values())
        return super().items({}, endpoint)


class ProjectRolesStream(ListingStream):
    """``GET /role``: the site's project roles (a bare list); Cloud documents it for
    Administer Jira only (Server/DC states no permission)."""

    name, cloud_path, dc_path = "project_roles", "/role", "/role"
    permission = "Administer Jira"
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="integer",
        name="string",
        description="string",
        self="string",
        actors="array",
        scope="object",
        translatedName="string",
        currentUserRole="boolean",
        admin="boolean",
        roleConfigurable="boolean",
        default="boolean",
    )

    @override
    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"role_id": record["id"]}


class DashboardsStream(ListingStream):
    """``GET /dashboard`` (startAt paging, ``dashboards``)."""

    name, cloud_path, dc_path, items_key, paged = (
        "dashboards",
        "/dashboard",
        "/dashboard",
        "dashboards",
        True,
    )
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="string",
        name="string",
        description="string",
        isFavourite="boolean",
        owner="object",
        popularity="integer",
        rank="integer",
        self="string",
        view="string",
        sharePermissions="array",
        editPermissions="array",
        automaticRefreshMs="integer",
        isWritable="boolean",
        systemDashboard="boolean",
    )


class FiltersStream(ListingStream):
    """Cloud ``GET /filter/search`` (paged, expanded); Server/DC lists only the user's
    favourite filters, not all, so it has no ``filters`` stream."""

    name, cloud_path, items_key, paged = "filters", "/filter/search", "values", True
    primary_keys = ("id",)
    times = ("approximateLastUsed",)
    extra_params = {
        "expand": "description,owner,jql,viewUrl,searchUrl,favourite,favouritedCount,"
        "sharePermissions,editPermissions,isWritable,approximateLastUsed,subscriptions"
    }
    schema = schema(
        ("id",),
        id="string",
        self="string",
        name="string",
        description="string",
        owner="object",
        jql="string",
        viewUrl="string",
        searchUrl="string",
        favourite="boolean",
        favouritedCount="integer",
        sharePermissions="array",
        editPermissions="array",
        isWritable="boolean",
        approximateLastUsed="date-time",
        subscriptions="array",
        expand="string",
    )


class FilterDefaultShareScopesStream(ListingStream):
    """``GET /filter/defaultShareScope``: one row, ``{"scope": "PRIVATE"}``."""

    name, single = "filter_default_share_scopes", True
    cloud_path = dc_path = "/filter/defaultShareScope"
    primary_keys = ("scope",)
    schema = schema(("scope",), scope="string")


class GroupsStream(ListingStream):
    """Cloud ``GET /group/bulk`` (paged); Server/DC ``GET /groups/picker`` (one answer,
    asked for up to 100,000 groups; fewer than its ``total`` stops the run)."""

    name, cloud_path, dc_path = "groups", "/group/bulk", "/groups/picker"
    primary_keys = ("name",)
    permission = "Browse users and groups"
    schema = schema(
        ("name",), name="string", groupId="string", self="string", html="string", labels="array"
    )

    @property
    def items_key(self) -> str:  # type: ignore[override]
        return "values" if self.cloud else "groups"

    @property
    def paged(self) -> bool:  # type: ignore[override]
        return self.cloud

    @property
    def extra_params(self) -> dict[str, Any]:  # type: ignore[override]
        return {} if self.cloud else {"maxResults": 100_000}

    @override
    def items(self, body: Any, endpoint: str) -> Iterable[dict[str, Any]]:
        found = list(super().items(body, endpoint))
        if not self.cloud and int(body.get("total", len(found))) > len(found):
            return super().items({"cut": f"{len(found)} of {body['total']} groups"}, endpoint)
        return found


class IssueLinkTypesStream(ListingStream):
    """``GET /issueLinkType``: ``{"issueLinkTypes": [...]}``."""

    name, items_key = "issue_link_types", "issueLinkTypes"
    cloud_path = dc_path = "/issueLinkType"
    primary_keys = ("id",)
    schema = schema(
        ("id",), id="string", name="string", inward="string", outward="string", self="string"
    )


class ProjectCategoriesStream(ListingStream):
    """``GET /projectCategory`` (a bare list)."""

    name = "project_categories"
    cloud_path = dc_path = "/projectCategory"
    primary_keys = ("id",)
    schema = schema(("id",), id="string", name="string", description="string", self="string")


class LabelsStream(ListingStream):
    """Cloud ``GET /label`` (paged list of strings); Server/DC has no label listing."""

    name, cloud_path, items_key, paged = "labels", "/label", "values", True
    primary_keys = ("label",)
    schema = schema(("label",), label="string")

    @override
    def items(self, body: Any, endpoint: str) -> Iterable[dict[str, Any]]:
        return [{"label": label} for label in super().items(body, endpoint)]
