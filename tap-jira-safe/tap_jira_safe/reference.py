"""Reference data streams (full table): statuses, priorities, resolutions, issue types,
project versions and components (children of ``projects``)."""

from __future__ import annotations

from typing import Any

from singer_sdk import typing as th
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.client import JiraStream

NAMED = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("name", th.StringType),
    th.Property("description", th.StringType),
    th.Property("self", th.StringType),
    th.Property("iconUrl", th.StringType),
    th.Property("statusCategory", th.ObjectType(additional_properties=True)),
    th.Property("statusColor", th.StringType),
    th.Property("subtask", th.BooleanType),
).to_dict()


class ListStream(JiraStream):
    """A site-wide list endpoint of the REST API (``{api}/<resource>``, one unpaged list)."""

    resource: str
    primary_keys = ("id",)
    schema = NAMED

    @property
    @override
    def path(self) -> str:  # type: ignore[override]
        return f"{self.api}/{self.resource}"


class StatusesStream(ListStream):
    name, resource = "statuses", "status"


class PrioritiesStream(ListStream):
    name, resource = "priorities", "priority"


class ResolutionsStream(ListStream):
    name, resource = "resolutions", "resolution"


class IssueTypesStream(ListStream):
    name, resource = "issue_types", "issuetype"


class ProjectPartStream(JiraStream):
    """A list per project (``{api}/project/{id}/<resource>``), child of ``projects``."""

    resource: str
    primary_keys = ("id",)
    state_partitioning_keys: list[str] = []
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property("projectId", th.IntegerType),
        th.Property("name", th.StringType),
        th.Property("description", th.StringType),
        th.Property("released", th.BooleanType),
        th.Property("archived", th.BooleanType),
        th.Property("releaseDate", th.StringType),
        th.Property("lead", th.ObjectType(additional_properties=True)),
        th.Property("self", th.StringType),
    ).to_dict()

    @property
    @override
    def path(self) -> str:  # type: ignore[override]
        return f"{self.api}/project/{{project_id}}/{self.resource}"

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["projectId"] = int((context or {})["project_id"])
        return row
