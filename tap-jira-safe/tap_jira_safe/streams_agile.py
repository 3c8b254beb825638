"""Jira Software (Agile REST 1.0, the same on Cloud and Server/DC): boards, their sprints and
issues, sprint membership. https://developer.atlassian.com/cloud/jira/software/rest/ and
https://docs.atlassian.com/jira-software/REST/9.12.0/; every list pages with ``startAt``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_jira_safe.errors import JiraApiError
from tap_jira_safe.listing import ListingStream, schema
from tap_jira_safe.timeutil import jira_to_iso

AGILE = "/rest/agile/1.0"


class BoardsStream(ListingStream):
    name, items_key, paged = "boards", "values", True
    cloud_path = dc_path = f"{AGILE}/board"
    primary_keys = ("id",)
    schema = schema(
        ("id",),
        id="integer",
        name="string",
        type="string",
        self="string",
        location="object",
        isPrivate="boolean",
        favourite="boolean",
        admins="object",
        canEdit="boolean",
    )

    @override
    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"board_id": record["id"], "board_type": record.get("type")}


class SprintsStream(ListingStream):
    name, items_key, paged = "sprints", "values", True
    parent_stream_type = BoardsStream
    cloud_path = dc_path = f"{AGILE}/board/{{board_id}}/sprint"
    primary_keys = ("id",)
    state_partitioning_keys: list[str] = []
    times = ("startDate", "endDate", "completeDate", "createdDate")
    schema = schema(
        ("id",),
        id="integer",
        board_id="integer",
        originBoardId="integer",
        name="string",
        state="string",
        goal="string",
        startDate="date-time",
        endDate="date-time",
        completeDate="date-time",
        createdDate="date-time",
        self="string",
    )

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Kanban boards have no sprints (Jira answers 400): not asked. Other non-scrum
        boards may have them if the sprints feature is on: a 400 there means none."""
        board_type = (context or {}).get("board_type")
        if board_type == "kanban":
            return
        try:
            yield from super().get_records(context)
        except JiraApiError as exc:
            if board_type == "scrum" or exc.status != 400:
                raise
            board = (context or {}).get("board_id")
            self.logger.info("sprints: board %s (%s) has no sprints", board, board_type)

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        row["board_id"] = (context or {}).get("board_id")
        return super().post_process(row, context)

    @override
    def get_child_context(self, record: dict[str, Any], context: Context | None) -> Context:
        return {"sprint_id": record["id"], "board_id": record.get("board_id")}


class SprintIssuesStream(ListingStream):
    """Sprint membership: one row per (sprint, issue), from ``/sprint/{id}/issue``."""

    name, items_key, paged = "sprint_issues", "issues", True
    parent_stream_type = SprintsStream
    cloud_path = dc_path = f"{AGILE}/sprint/{{sprint_id}}/issue"
    primary_keys = ("sprint_id", "issue_id")
    state_partitioning_keys: list[str] = []
    extra_params = {"fields": "id"}
    schema = schema(
        ("sprint_id", "issue_id"),
        sprint_id="integer",
        issue_id="string",
        issue_key="string",
        board_id="integer",
    )

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        return {
            "sprint_id": (context or {})["sprint_id"],
            "issue_id": str(row["id"]),
            "issue_key": row.get("key"),
            "board_id": (context or {}).get("board_id"),
        }


class BoardIssuesStream(ListingStream):
    """A board's issues (its filter's), one row per (board, issue), from
    ``/board/{id}/issue`` with only ``updated`` asked for."""

    name, items_key, paged = "board_issues", "issues", True
    parent_stream_type = BoardsStream
    cloud_path = dc_path = f"{AGILE}/board/{{board_id}}/issue"
    primary_keys = ("board_id", "issue_id")
    state_partitioning_keys: list[str] = []
    extra_params = {"fields": "updated"}
    schema = schema(
        ("board_id", "issue_id"),
        board_id="integer",
        issue_id="string",
        issue_key="string",
        updated="date-time",
    )

    @override
    def post_process(self, row: dict[str, Any], context: Context | None = None) -> dict[str, Any]:
        return {
            "board_id": (context or {})["board_id"],
            "issue_id": str(row["id"]),
            "issue_key": row.get("key"),
            "updated": jira_to_iso((row.get("fields") or {}).get("updated")),
        }
