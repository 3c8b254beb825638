"""The pieces of the ``issues`` window that need no stream: keyset paging, delete versions,
per-issue bookkeeping."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests
from singer_sdk.pagination import BaseAPIPaginator
from typing_extensions import override

from tap_jira_safe import reconcile
from tap_jira_safe.client import decoded
from tap_jira_safe.timeutil import iso_utc, parse_jira_time, to_ms
from tap_jira_safe.tokens import PageTokens

ONE_MS = timedelta(milliseconds=1)
Cursor = tuple[int | None, str | int | None]  # (anchor ms, page token or startAt)


def delete_version(server_time: datetime, newest_updated: datetime | None) -> str:
    """A reconciled delete's ``updated``: the sync's Jira server time, or 1 ms past the
    newest ``updated`` emitted for the issue if that is later; never the tap host's clock."""
    if newest_updated is None:
        return iso_utc(server_time)
    return iso_utc(max(server_time, newest_updated + ONE_MS))


class KeysetPaginator(BaseAPIPaginator[Cursor]):
    """``(anchor, cursor)``: restart at the newest ``updated`` of each page; follow the
    server's token (Cloud) or ``startAt`` (Server/DC) only inside a tie group."""

    def __init__(self, lower_ms: int | None, cloud: bool) -> None:
        super().__init__((lower_ms, None))
        self.cloud = cloud
        self.tokens = PageTokens("issue search")

    @override
    def has_more(self, response: requests.Response) -> bool:
        body = decoded(response)
        issues = reconcile.page_issue_ids(body, "issue search")
        if self.cloud:
            return bool(body.get("nextPageToken")) and body.get("isLast") is not True
        return bool(issues) and int(body["startAt"]) + len(issues) < int(body["total"])

    @override
    def continue_if_empty(self, response: requests.Response) -> bool:
        return self.has_more(response)

    @override
    def get_next(self, response: requests.Response) -> Cursor:
        body = decoded(response)
        anchor, cursor = self.current_value
        times = [to_ms(parse_jira_time(i["fields"]["updated"])) for i in body["issues"]]
        newest = max(times, default=anchor)
        if newest is not None and (anchor is None or newest > anchor):
            return (newest, None)
        if not self.cloud:
            return (anchor, int(cursor or 0) + len(times))
        return (anchor, self.tokens.next(body["nextPageToken"]))


def note_updated(newest: dict[int, datetime], row: dict[str, Any]) -> datetime | None:
    """Record a row's ``updated`` as its issue's newest if it is; returns it."""
    text = (row.get("fields") or {}).get("updated")
    if not text:
        return None
    moment = parse_jira_time(text)
    issue_id = int(row["id"])
    if issue_id not in newest or moment > newest[issue_id]:
        newest[issue_id] = moment
    return moment


def complete_list(embedded: dict[str, Any], items: str) -> list[dict[str, Any]] | None:
    """An embedded sub-list if search returned all of it (``total`` says), else None."""
    rows = embedded.get(items)
    if not isinstance(rows, list) or len(rows) < int(embedded.get("total", len(rows))):
        return None
    return rows
