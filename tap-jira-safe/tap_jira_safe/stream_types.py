"""Every stream the tap offers, parents before their children."""

from __future__ import annotations

from tap_jira_safe.client import JiraStream
from tap_jira_safe.issues import IssuesStream
from tap_jira_safe.reference import (
    IssueTypesStream,
    PrioritiesStream,
    ResolutionsStream,
    StatusesStream,
)
from tap_jira_safe.streams import (
    ComponentsStream,
    FieldsStream,
    IssueChangelogsStream,
    IssueCommentsStream,
    IssueWorklogsStream,
    ProjectsStream,
    UsersStream,
    VersionsStream,
)
from tap_jira_safe.streams_admin import (
    AuditRecordsStream,
    CustomFieldContextsStream,
    CustomFieldOptionsStream,
    LicensesStream,
    PermissionHoldersStream,
    PermissionSchemesStream,
    ProjectRoleActorsStream,
    ScreenSchemesStream,
    ScreensStream,
    WorkflowSchemesStream,
    WorkflowsStream,
)
from tap_jira_safe.streams_agile import (
    BoardIssuesStream,
    BoardsStream,
    SprintIssuesStream,
    SprintsStream,
)
from tap_jira_safe.streams_catalog import (
    DashboardsStream,
    FilterDefaultShareScopesStream,
    FiltersStream,
    GroupsStream,
    IssueLinkTypesStream,
    LabelsStream,
    PermissionsStream,
    ProjectCategoriesStream,
    ProjectRolesStream,
    ServerInfoStream,
    WorkflowStatusesStream,
)
from tap_jira_safe.streams_issue_extras import (
    IssueRemoteLinksStream,
    IssueVotesStream,
    IssueWatchersStream,
)

STREAM_TYPES: list[type[JiraStream]] = [
    ServerInfoStream,
    ProjectsStream,
    VersionsStream,
    ComponentsStream,
    ProjectCategoriesStream,
    StatusesStream,
    WorkflowStatusesStream,
    PrioritiesStream,
    ResolutionsStream,
    IssueTypesStream,
    IssueLinkTypesStream,
    LabelsStream,
    UsersStream,
    GroupsStream,
    FieldsStream,
    CustomFieldContextsStream,
    CustomFieldOptionsStream,
    PermissionsStream,
    PermissionSchemesStream,
    PermissionHoldersStream,
    ProjectRolesStream,
    ProjectRoleActorsStream,
    DashboardsStream,
    FiltersStream,
    FilterDefaultShareScopesStream,
    ScreensStream,
    ScreenSchemesStream,
    WorkflowsStream,
    WorkflowSchemesStream,
    AuditRecordsStream,
    LicensesStream,
    BoardsStream,
    BoardIssuesStream,
    SprintsStream,
    SprintIssuesStream,
    IssuesStream,
    IssueCommentsStream,
    IssueChangelogsStream,
    IssueWorklogsStream,
    IssueWatchersStream,
    IssueVotesStream,
    IssueRemoteLinksStream,
]
