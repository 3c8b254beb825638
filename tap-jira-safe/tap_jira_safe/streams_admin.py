"""Administration data: most endpoints here need Administer Jira (a 403 skips the stream with
a WARNING); the license and permission-scheme listings are open to any Cloud user.

Endpoints, paging and answer shapes from Atlassian's REST references: Cloud
https://developer.atlassian.com/cloud/jira/platform/rest/v3/ and Server / Data Center
https://docs.atlassian.com/software/jira/docs/api/REST/9.12.0/.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.errors import JiraNotFound
from tap_jira_safe.listing import ListingStream, OffsetLimitPaginator, schema
from tap_jira_safe.streams import FieldsStream
from tap_jira_safe.streams_catalog import ProjectRolesStream
from tap_jira_safe.timeutil import iso_utc

ADMIN = "Administer Jira"
OPTION_FIELDS = ("select", "multiselect", "radiobuttons", "multicheckboxes", "cascadingselect")


class AuditRecordsStream(ListingStream):
    """``GET /auditing/record`` (offset / limit paging, newest first), read from the
    bookmark minus the lookback with ``from``: incremental on ``created``."""

    name, items_key, permission = "audit_records", "records", ADMIN
    cloud_path = dc_path = "/auditing/record"
    primary_keys = ("id",)
    replication_key = "created"
    is_sorted = False
    times = ("created",)
    schema = schema(
        ("id",),
        id="integer",
        summary="string",
        remoteAddress="string",
        authorKey="string",
        authorAccountId="string",
        created="date-time",
        category="string",
        eventSource="string",
        description="string",
        objectItem="object",
        changedValues="array",
        associatedItems="array",
    )

    @override
    def get_new_paginator(self) -> OffsetLimitPaginator:
        return OffsetLimitPaginator(self.page_size, "records")

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Jira Data Center 10 removed this endpoint (JRASERVER-78785): its 404 on the
        first page means no audit records here, not a failed run."""
        rows = iter(super().get_records(context))
        try:
            first = next(rows, None)
        except JiraNotFound:
            if self.cloud:
                raise
            self.logger.info(
                "audit_records: this Jira Data Center has no %s (Jira 10 removed it for "
                "/rest/auditing/1.0/events, which this tap does not read); skipped",
                self.path,
            )
            return
        if first is not None:
            yield first
            yield from rows

    @override
    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"offset": next_page_token or 0, "limit": self.page_size}
        start = self.get_starting_timestamp(context)
        if start is not None:
            lookback = timedelta(minutes=self.settings.lookback_minutes)
            params["from"] = iso_utc(start - lookback)
        return params


class LicensesStream(ListingStream):
    """Cloud ``GET /instance/license``: ``{"applications": [{"id", "plan"}]}``, open to any
    user ("Permissions required: None"). Server/DC has no public REST license listing
    (JRASERVER-65774)."""

    name, cloud_path, items_key = "licenses", "/instance/license", "applications"
    primary_keys = ("id",)
    schema = schema(("id",), id="string", plan="string")


class PermissionSchemesStream(ListingStream):
    """``GET /permissionscheme?expand=all``: ``{"permissionSchemes": [...]}``; Cloud
    documents it open to any user ("Permission to access Jira")."""

    name, items_key = "permission_schemes", "permissionSchemes"
    cloud_path = dc_path = "/permissionscheme"
    primary_keys = ("id",)
    extra_params = {"expand": "all"}
    schema = schema(
        ("id",),
        id="integer",
        self="string",
        name="string",
        description="string",
        scope="object",
        permissions="array",
        expand="string",
    )

    @override
    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"scheme_id": record["id"]}


class PermissionHoldersStream(ListingStream):
    """``GET /permissionscheme/{id}/permission``: every grant (holder and permission);
    Cloud: "Permission to access Jira"."""

    name, items_key = "permission_holders", "permissions"
    parent_stream_type = PermissionSchemesStream
    cloud_path = dc_path = "/permissionscheme/{scheme_id}/permission"
    primary_keys = ("id",)
    state_partitioning_keys: list[str] = []
    parent_keys = ("scheme_id",)
    schema = schema(
        ("id",),
        id="integer",
        scheme_id="integer",
        self="string",
        holder="object",
        permission="string",
    )


class ProjectRoleActorsStream(ListingStream):
    """``GET /role/{id}/actors``: a role's default actors, ``{"actors": [...]}``."""

    name, items_key, permission = "project_role_actors", "actors", ADMIN
    parent_stream_type = ProjectRolesStream
    cloud_path = dc_path = "/role/{role_id}/actors"
    primary_keys = ("role_id", "id")
    state_partitioning_keys: list[str] = []
    parent_keys = ("role_id",)
    schema = schema(
        ("role_id", "id"),
        role_id="integer",
        id="integer",
        displayName="string",
        type="string",
        name="string",
        avatarUrl="string",
        actorUser="object",
        actorGroup="object",
    )


class ScreensStream(ListingStream):
    """``GET /screens``, ``startAt`` paged: Cloud answers a page object (``values``),
    Server/DC a bare list of screens (its ``getAllScreens``)."""

    name, paged, permission = "screens", True, ADMIN
    cloud_path = dc_path = "/screens"
    primary_keys = ("id",)
    schema = schema(
        ("id",), id="integer", name="string", description="string", scope="object", expand="string"
    )

    @property
    def items_key(self) -> str | None:  # type: ignore[override]
        return "values" if self.cloud else None


class ScreenSchemesStream(ListingStream):
    """Cloud ``GET /screenscheme`` (paged)."""

    name, cloud_path, items_key, paged = "screen_schemes", "/screenscheme", "values", True
    permission = ADMIN
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="integer",
        name="string",
        description="string",
        screens="object",
        issueTypeScreenSchemes="object",
    )


class WorkflowsStream(ListingStream):
    """Cloud ``GET /workflow/search`` (paged; ``id`` is ``{"name", "entityId"}``);
    Server/DC ``GET /workflow`` (a bare list keyed by ``name``)."""

    name, cloud_path, dc_path, permission = "workflows", "/workflow/search", "/workflow", ADMIN
    primary_keys = ("name",)
    times = ("created", "updated")
    extra_params = {"expand": "transitions,statuses,default,schemes,projects,hasDraftWorkflow"}
    schema = schema(
        ("name",),
        name="string",
        id="object",
        description="string",
        transitions="array",
        statuses="array",
        isDefault="boolean",
        schemes="array",
        projects="array",
        hasDraftWorkflow="boolean",
        operations="object",
        created="date-time",
        updated="date-time",
        lastModifiedDate="string",
        lastModifiedUser="string",
        lastModifiedUserAccountId="string",
        steps="integer",
        scope="object",
        default="boolean",
    )

    @property
    def items_key(self) -> str | None:  # type: ignore[override]
        return "values" if self.cloud else None

    @property
    def paged(self) -> bool:  # type: ignore[override]
        return self.cloud

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row.setdefault("name", (row.get("id") or {}).get("name"))
        return super().post_process(row, context)


class WorkflowSchemesStream(ListingStream):
    """Cloud ``GET /workflowscheme`` (paged); Server/DC reads schemes only one by one."""

    name, cloud_path, items_key, paged = "workflow_schemes", "/workflowscheme", "values", True
    permission = ADMIN
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="integer",
        name="string",
        description="string",
        defaultWorkflow="string",
        issueTypeMappings="object",
        originalDefaultWorkflow="string",
        originalIssueTypeMappings="object",
        draft="boolean",
        lastModifiedUser="object",
        lastModified="string",
        self="string",
        updateDraftIfNeeded="boolean",
        issueTypes="object",
        scope="object",
    )


class CustomFieldContextsStream(ListingStream):
    """Cloud ``GET /field/{fieldId}/context`` (paged), for each custom field."""

    name, cloud_path, items_key, paged = (
        "custom_field_contexts",
        "/field/{field_id}/context",
        "values",
        True,
    )
    permission = ADMIN
    parent_stream_type = FieldsStream
    primary_keys = ("field_id", "id")
    state_partitioning_keys: list[str] = []
    parent_keys = ("field_id",)
    schema = schema(
        ("field_id", "id"),
        field_id="string",
        id="string",
        name="string",
        description="string",
        isGlobalContext="boolean",
        isAnyIssueType="boolean",
    )

    @override
    def generate_child_contexts(
        self, record: dict[str, Any], context: Context | None
    ) -> Iterable[Context | None]:
        """Options exist only for option fields: others answer 400."""
        if str((context or {}).get("field_type", "")).rsplit(":", 1)[-1] in OPTION_FIELDS:
            yield {"field_id": record["field_id"], "context_id": record["id"]}


class CustomFieldOptionsStream(ListingStream):
    """Cloud ``GET /field/{fieldId}/context/{contextId}/option`` (paged)."""

    name, items_key, paged, permission = "custom_field_options", "values", True, ADMIN
    cloud_path = "/field/{field_id}/context/{context_id}/option"
    parent_stream_type = CustomFieldContextsStream
    primary_keys = ("context_id", "id")
    state_partitioning_keys: list[str] = []
    parent_keys = ("field_id", "context_id")
    schema = schema(
        ("context_id", "id"),
        field_id="string",
        context_id="string",
        id="string",
        value="string",
        optionId="string",
        disabled="boolean",
    )
