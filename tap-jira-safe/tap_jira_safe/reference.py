"""Reference data streams (full table): statuses, priorities, resolutions, issue types,
project versions and components (children of ``projects``). Same paths on Cloud (v3) and
Server/DC (v2); fields as Atlassian's references document each answer."""

from __future__ import annotations

from typing import Any

from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.listing import ListingStream, schema

NAMED = schema(
    ("id",),
    id="string",
    name="string",
    untranslatedName="string",
    description="string",
    self="string",
    iconUrl="string",
    statusCategory="object",
    statusColor="string",
    subtask="boolean",
    hierarchyLevel="integer",
    avatarId="integer",
    entityId="string",
    isDefault="boolean",
    scope="object",
)


class ListStream(ListingStream):
    """A site-wide list endpoint of the REST API (``{api}/<resource>``, one unpaged list)."""

    primary_keys = ("id",)
    schema = NAMED


class StatusesStream(ListStream):
    name, cloud_path, dc_path = "statuses", "/status", "/status"


class PrioritiesStream(ListStream):
    name, cloud_path, dc_path = "priorities", "/priority", "/priority"


class ResolutionsStream(ListStream):
    name, cloud_path, dc_path = "resolutions", "/resolution", "/resolution"


class IssueTypesStream(ListStream):
    name, cloud_path, dc_path = "issue_types", "/issuetype", "/issuetype"


class ProjectPartStream(ListingStream):
    """A list per project (``{api}/project/{id}/<resource>``), child of ``projects``."""

    primary_keys = ("id",)
    state_partitioning_keys: list[str] = []

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["projectId"] = int((context or {})["project_id"])
        return super().post_process(row, context)


VERSION = schema(
    ("id",),
    id="string",
    projectId="integer",
    name="string",
    description="string",
    released="boolean",
    archived="boolean",
    overdue="boolean",
    releaseDate="string",
    startDate="string",
    userReleaseDate="string",
    userStartDate="string",
    moveUnfixedIssuesTo="string",
    operations="array",
    issuesStatusForFixVersion="object",
    driver="string",
    approvers="array",
    expand="string",
    self="string",
)
COMPONENT = schema(
    ("id",),
    id="string",
    projectId="integer",
    project="string",
    name="string",
    description="string",
    lead="object",
    leadAccountId="string",
    leadUserName="string",
    assigneeType="string",
    assignee="object",
    realAssigneeType="string",
    realAssignee="object",
    isAssigneeTypeValid="boolean",
    componentBean="object",
    ari="string",
    metadata="object",
    self="string",
)
