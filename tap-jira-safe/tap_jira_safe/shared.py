"""What the tap hands every stream it builds: settings, the site, and the side data the
``issues`` stream leaves for its child streams (an explicit object: children never reach
into the parent stream)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tap_jira_safe.settings import Settings
from tap_jira_safe.site import Site

Rows = list[dict[str, Any]]


class IssueSideData:
    """Per issue, what the search response already held for the child streams: each
    complete embedded sub-list (``comments``, ``histories``) and the comment count. Each
    child takes its part once; what it does not take is dropped with the next batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._embedded: dict[tuple[str, str], Rows | None] = {}
        self._comment_counts: dict[str, int] = {}
        self._summaries: dict[tuple[str, str], dict[str, Any] | None] = {}

    def put_embedded(self, issue_id: str, items: str, rows: Rows | None) -> None:
        with self._lock:
            self._embedded[(issue_id, items)] = rows

    def put_summary(self, issue_id: str, field: str, summary: dict[str, Any] | None) -> None:
        """A summary field of the issue (``watches``, ``votes``): its counts say whether
        the per-issue read is needed at all."""
        with self._lock:
            self._summaries[(issue_id, field)] = summary

    def take_summary(self, issue_id: str, field: str) -> dict[str, Any] | None:
        with self._lock:
            return self._summaries.pop((issue_id, field), None)

    def put_comment_count(self, issue_id: str, count: int) -> None:
        with self._lock:
            self._comment_counts[issue_id] = count

    def take_embedded(self, issue_id: str, items: str) -> Rows | None:
        """An issue's ``comments`` or ``histories`` from the search response, if complete."""
        with self._lock:
            return self._embedded.pop((issue_id, items), None)

    def take_comment_count(self, issue_id: str) -> int:
        with self._lock:
            return self._comment_counts.pop(issue_id, 0)


@dataclass(frozen=True)
class TapParts:
    """Built once per run by the tap; every stream gets the same one."""

    settings: Settings
    site: Site
    issue_side: IssueSideData = field(default_factory=IssueSideData)
