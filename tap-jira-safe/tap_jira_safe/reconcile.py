"""Deletes only when proven: list live ids, stop on a suspicious listing, look the rest up.

Jira has no tombstones. Each run lists the ids of every issue in scope (ids only, token or
``startAt`` paging of a project-bounded JQL: no id arithmetic, which Jira does not have). A
known id missing from that listing is not yet a delete: the listing may have drifted (pages
are offsets), the search index lags, the issue may be archived (out of search, still
readable) or moved out of the configured projects. So each missing id is read directly:
``issue/bulkfetch`` on Cloud (not-found issues are simply absent there; ``issueErrors`` means
"try again"), then ``GET issue/{id}`` for what bulkfetch did not return: only a 404 proves a
delete. Before any of that, a listing that is malformed, empty while issues are known, or
missing more than ``max_delete_fraction`` of the known issues stops the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk.exceptions import FatalAPIError

if TYPE_CHECKING:
    from tap_jira_safe.issues import IssuesStream

BULK = 100


class ReconcileRefused(RuntimeError):
    """The listing cannot be trusted to delete anything: stop, emit nothing, keep state."""


def encode_ids(ids: Iterable[int]) -> list[list[int]]:
    """Sorted ids as ``[first, last]`` runs: Jira ids are dense, so state stays small."""
    runs: list[list[int]] = []
    for value in sorted(ids):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs


def decode_ids(runs: list[list[int]]) -> set[int]:
    return {value for first, last in runs for value in range(first, last + 1)}


def page_issue_ids(body: Any, endpoint: str) -> list[int]:
    """The ids of one search page; anything but ``{"issues": [{"id": ...}, ...]}`` is an
    error (``{}`` must never read as "no issues left")."""
    issues = body.get("issues") if isinstance(body, dict) else None
    if not isinstance(issues, list):
        raise ReconcileRefused(f"{endpoint} answered without an `issues` list: {str(body)[:200]}")
    try:
        return [int(issue["id"]) for issue in issues]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReconcileRefused(f"{endpoint} answered an issue without a numeric id") from exc


def check_listing(known: set[int], listed: set[int], max_fraction: float) -> set[int]:
    """The known ids the listing lacks, or :class:`ReconcileRefused` if it looks wrong."""
    if known and not listed:
        raise ReconcileRefused(
            f"issues: the listing of live issues is empty while {len(known)} are known; "
            "no delete emitted and state not advanced. Check the token's permissions and "
            "the `projects`/`jql` settings."
        )
    missing = known - listed
    if len(missing) > max_fraction * len(known):
        raise ReconcileRefused(
            f"issues: the listing of live issues lacks {len(missing)} of {len(known)} known "
            f"issues ({len(missing) / len(known):.1%}), more than max_delete_fraction="
            f"{max_fraction:.1%}; no delete emitted and state not advanced. If that many "
            "issues really went, run once with a higher max_delete_fraction."
        )
    return missing


@dataclass
class Verdicts:
    """What the direct lookups proved about ids the listing lacked."""

    deleted: list[int] = field(default_factory=list)
    archived: list[dict[str, Any]] = field(default_factory=list)  # raw issues
    left_scope: list[dict[str, Any]] = field(default_factory=list)  # raw issues, moved out
    kept: set[int] = field(default_factory=set)  # exist in scope, or not provable this run


def prove(stream: IssuesStream, missing: set[int]) -> Verdicts:
    """Read each missing id directly and sort it into a verdict."""
    verdicts = Verdicts()
    unread = sorted(missing)
    if stream.cloud:
        unread = _bulkfetch(stream, unread, verdicts)
    for issue_id in unread:
        try:
            raw = stream.call("GET", f"{stream.api}/issue/{issue_id}", params={"fields": "*all"})
        except FatalAPIError as exc:
            if " 404 " not in str(exc):
                raise
            verdicts.deleted.append(issue_id)
            continue
        _classify(stream, raw, verdicts)
    return verdicts


def _bulkfetch(stream: IssuesStream, ids: list[int], verdicts: Verdicts) -> list[int]:
    """Bulk-read ``ids``; returns those bulkfetch did not return (deleted, archived or hidden)."""
    absent: list[int] = []
    for chunk, body in stream.bulkfetch(ids):
        returned = {int(raw["id"]): raw for raw in body.get("issues") or []}
        retry = {int(err["id"]) for err in body.get("issueErrors") or [] if "id" in err}
        verdicts.kept |= retry  # "a retriable error": not provable this run
        for issue_id in chunk:
            if issue_id in returned:
                _classify(stream, returned[issue_id], verdicts)
            elif issue_id not in retry:
                absent.append(issue_id)
    return absent


def _classify(stream: IssuesStream, raw: dict[str, Any], verdicts: Verdicts) -> None:
    fields = raw.get("fields") or {}
    if fields.get("archiveddate"):
        verdicts.archived.append(raw)
    elif stream.in_scope(raw):
        verdicts.kept.add(int(raw["id"]))  # the listing drifted or lags: not gone
    else:
        verdicts.left_scope.append(raw)
