"""Deletes only when proven: list live ids, stop on a suspicious listing, look the rest up.

Jira has no tombstones. Each run lists the ids of every issue in scope (ids only, token or
``startAt`` paging of a project-bounded JQL: no id arithmetic, which Jira does not have). A
known id missing from that listing is not yet a delete: the listing may have drifted (pages
are offsets), the search index lags, the issue may be archived (out of search, still
readable) or moved out of the configured projects. So each missing id is read directly:
``issue/bulkfetch`` on Cloud (not-found issues are simply absent there; ``issueErrors`` means
"try again"), then ``GET issue/{id}`` for what bulkfetch did not return: only a 404 proves a
delete, and only where the API user may still browse the issue's project (``visibility``).
Before any of that, a listing that is malformed, empty while issues are known, or missing
more than ``max_delete_fraction`` of the known issues stops the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tap_jira_safe.errors import JiraNotFound, ReconcileRefused
from tap_jira_safe.visibility import IssueProjects, Project, split_not_found

# what a proof reads: whether the issue exists, where it lives, whether it is archived.
# Named single-valued fields and no expand let bulkfetch serve 1,000 ids a call (not 100).
PROOF_FIELDS = ("project", "archiveddate", "updated")


class IssueLookup(Protocol):
    """What a proof needs from the tap: direct reads of issues by id."""

    @property
    def cloud(self) -> bool: ...

    def bulkfetch(
        self, ids: list[int], fields: tuple[str, ...]
    ) -> Iterator[tuple[list[int], dict[str, Any]]]: ...

    def get_issue(self, issue_id: int, fields: tuple[str, ...]) -> dict[str, Any]:
        """The issue, or :class:`JiraNotFound`."""
        ...

    def in_scope(self, raw: dict[str, Any]) -> bool: ...

    def can_browse(self, project: Project) -> bool:
        """Whether the API user has Browse Projects in ``project`` now."""
        ...


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


def archived_to_recheck(state: dict[str, Any], archived: set[int], per_run: int) -> set[int]:
    """The archived ids to look up again this run (a delete of an archived issue shows only
    there: search never lists it). At most ``per_run``, rotating through them by id, so each
    is re-checked at least every ``ceil(len(archived) / per_run)`` runs."""
    ordered = sorted(archived)
    if len(ordered) <= per_run:
        state.pop("archived_checked_through", None)
        return set(ordered)
    after = int(state.get("archived_checked_through") or 0)
    batch = ([i for i in ordered if i > after] + ordered)[:per_run]
    state["archived_checked_through"] = batch[-1]
    return set(batch)


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
            f"{max_fraction:.1%}; no delete emitted and state not advanced. Check that the "
            "API user can still browse every project; if that many issues really went, run "
            "once with a higher max_delete_fraction."
        )
    return missing


@dataclass
class Verdicts:
    """What the direct lookups proved about ids the listing lacked (archived and moved
    issues hold only the proof's fields: read them in full before emitting them)."""

    deleted: list[int] = field(default_factory=list)
    archived: list[dict[str, Any]] = field(default_factory=list)
    left_scope: list[dict[str, Any]] = field(default_factory=list)  # moved out of scope
    kept: set[int] = field(default_factory=set)  # exist, in scope, not archived
    unproven: set[int] = field(default_factory=set)  # bulkfetch's issueErrors: ask next run
    # 404s in a project the API user may not browse now: kept, ask next run
    hidden: dict[Project, list[int]] = field(default_factory=dict)


def prove(
    lookup: IssueLookup,
    missing: Iterable[int],
    owners: IssueProjects,
    confirmed_deleted_projects: tuple[str, ...],
) -> Verdicts:
    """Read each missing id directly (only the proof's fields) and sort it into a verdict;
    a 404 is a delete only where its project is still browsable (or confirmed deleted)."""
    verdicts = Verdicts()
    unread = sorted(missing)
    if lookup.cloud:
        unread = _bulkfetch(lookup, unread, verdicts, owners)
    not_found: list[int] = []
    for issue_id in unread:
        try:
            raw = lookup.get_issue(issue_id, PROOF_FIELDS)
        except JiraNotFound:
            not_found.append(issue_id)
            continue
        owners.learn(raw)
        _classify(lookup, raw, verdicts)
    split = split_not_found(owners, not_found, lookup.can_browse, confirmed_deleted_projects)
    verdicts.deleted, verdicts.hidden = split.deleted, split.hidden
    return verdicts


def _bulkfetch(
    lookup: IssueLookup, ids: list[int], verdicts: Verdicts, owners: IssueProjects
) -> list[int]:
    """Bulk-read ``ids``; returns those bulkfetch did not return (deleted, archived or hidden)."""
    absent: list[int] = []
    for chunk, body in lookup.bulkfetch(ids, PROOF_FIELDS):
        returned = {int(raw["id"]): raw for raw in body.get("issues") or []}
        retry = {int(err["id"]) for err in body.get("issueErrors") or [] if "id" in err}
        verdicts.unproven |= retry  # "a retriable error": not provable this run
        for issue_id in chunk:
            if issue_id in returned:
                owners.learn(returned[issue_id])
                _classify(lookup, returned[issue_id], verdicts)
            elif issue_id not in retry:
                absent.append(issue_id)
    return absent


def _classify(lookup: IssueLookup, raw: dict[str, Any], verdicts: Verdicts) -> None:
    fields = raw.get("fields") or {}
    if fields.get("archiveddate"):
        verdicts.archived.append(raw)
    elif lookup.in_scope(raw):
        verdicts.kept.add(int(raw["id"]))  # the listing drifted or lags: not gone
    else:
        verdicts.left_scope.append(raw)
