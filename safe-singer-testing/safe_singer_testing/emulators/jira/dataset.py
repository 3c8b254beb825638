"""The emulator's data: a seeded, deterministic Jira site that can change while it is read.

Writes go to the live data at once; the search index sees them later, as Jira Cloud's
eventually consistent search does: a share of the writes at once, the others
``index_lag_ms`` later (so a lagging index and result sets that change while they are
paged both happen in one run). The live data is the ground truth.

Archived issues leave the search index but stay readable by id or key ("archived issues ...
are removed from the index and will no longer be part of search results ... can only be
accessed through a direct link": Atlassian's Data Center archiving docs, and Cloud's
``PUT /rest/api/3/issue/archive``). A moved issue keeps its id, gets a new key in the new
project, and its old keys still resolve to it.

A project the API user may no longer browse (``revoke_browse``: a permission scheme changed,
the user left a group) hides its issues as Jira does: absent from search, a 404 by id or key
("Issue does not exist or you do not have permission to see it."), absent from bulkfetch, and
a JQL naming the project is a 400 ("The value 'X' does not exist for the field 'project'.").
"""

from __future__ import annotations

import bisect
import heapq
import random
import threading
import time
from collections.abc import Callable

from safe_singer_testing.emulators.jira.jql import JqlError, Query
from safe_singer_testing.emulators.jira.records import (
    STATUSES,
    USERS,
    Board,
    Comment,
    History,
    Issue,
    Sprint,
    Worklog,
)

UPDATED_KEY_ORDER = [("updated", False), ("key", False)]


class Dataset:
    """Projects, users, issues (with comments, changelogs, worklogs), boards and sprints."""

    def __init__(
        self,
        *,
        issue_count: int,
        projects: tuple[str, ...],
        first_updated_ms: int,
        spacing_ms: int,
        index_lag_ms: int,
        seed: int,
        instant_index_share: float = 0.5,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.lock = threading.RLock()
        self.now_ms = clock  # Jira's clock, epoch ms
        self.projects = projects
        self.index_lag_ms = index_lag_ms
        self.instant_index_share = instant_index_share
        self.rng = random.Random(seed)
        self.issues: dict[int, Issue] = {}
        self.deleted: dict[int, int] = {}
        self.unbrowsable: set[str] = set()  # projects the API user lost Browse Projects on
        self.worklogs: dict[int, Worklog] = {}
        self.deleted_worklogs: dict[int, int] = {}
        self._counters = dict.fromkeys(projects, 0)
        self._next_id = {"issue": 10_000, "comment": 50_000, "history": 70_000, "worklog": 90_000}
        self._last_write_ms = 0
        self._visible: dict[int, Issue | None] = {}
        self._pending: list[tuple[int, int, int, Issue | None]] = []  # heap by visible_at
        self._writes = 0
        self._sequence = 0
        self._applied: dict[int, int] = {}
        self._sorted: list[tuple[int, int]] = []  # (updated, id)
        # the same index in `ORDER BY updated ASC, key ASC` order (a tap's keyset pages: a
        # new query each page), so such a query is filtered from it, not sorted again
        self._by_updated_key: list[tuple[int, str, int, int]] = []
        self._dirty = True
        self._generation = 0
        # query -> (its issues in order, whether that is all of them)
        self._cache: dict[tuple[object, ...], tuple[list[Issue], bool]] = {}
        self.boards = [
            Board(id=n + 1, name=f"{p} board", kind="scrum" if n % 2 == 0 else "kanban", project=p)
            for n, p in enumerate(projects)
        ]
        self.sprints = [
            Sprint(
                id=b.id * 100 + s,
                board_id=b.id,
                name=f"{b.project} Sprint {s}",
                state="closed" if s < 3 else "active",
                start_ms=first_updated_ms + s * 86_400_000,
            )
            for b in self.boards
            if b.kind == "scrum"
            for s in range(1, 4)
        ]
        self._seed(issue_count, first_updated_ms, spacing_ms)

    # -- ids and clock ------------------------------------------------------------------
    def _new_id(self, kind: str) -> int:
        self._next_id[kind] += 1
        return self._next_id[kind]

    def write_ms(self) -> int:
        """The time of a write now: wall clock ms, strictly increasing."""
        self._last_write_ms = max(self.now_ms(), self._last_write_ms + 1)
        return self._last_write_ms

    # -- seeding ------------------------------------------------------------------------
    def _seed(self, count: int, first_ms: int, spacing_ms: int) -> None:
        rng = self.rng
        updated = first_ms
        for n in range(count):
            # every 10th issue shares its `updated` with the one before: ties need `id` order
            if n % 10 != 9:
                updated += spacing_ms
            project = self.projects[n % len(self.projects)]
            issue = self._new_issue(project, created_ms=updated - 3_600_000, updated_ms=updated)
            for c in range(n % 7):
                issue.comments.append(
                    Comment(
                        id=self._new_id("comment"),
                        author=rng.choice(USERS),
                        body=f"Comment {c} on {issue.key}",
                        created_ms=updated - 1000 * (7 - c),
                        updated_ms=updated - 1000 * (7 - c),
                    )
                )
            for h in range(n % 9):
                issue.histories.append(
                    History(
                        id=self._new_id("history"),
                        author=rng.choice(USERS),
                        created_ms=updated - 2000 * (9 - h),
                        field="status",
                        from_string=STATUSES[h % 4],
                        to_string=STATUSES[(h + 1) % 4],
                    )
                )
            for w in range(n % 4):
                wid = self._new_id("worklog")
                self.worklogs[wid] = Worklog(
                    id=wid,
                    issue_id=issue.id,
                    author=rng.choice(USERS),
                    started_ms=updated - 7_200_000,
                    seconds=900 * (w + 1),
                    updated_ms=updated,
                )
            self._index(issue, visible_at=0)
        self._last_write_ms = updated

    def _new_issue(self, project: str, *, created_ms: int, updated_ms: int) -> Issue:
        self._counters[project] += 1
        rng = self.rng
        issue = Issue(
            id=self._new_id("issue"),
            key=f"{project}-{self._counters[project]}",
            project=project,
            created_ms=created_ms,
            updated_ms=updated_ms,
            summary=f"Task {self._next_id['issue']}",
            status=rng.choice(STATUSES),
            assignee=rng.choice((*USERS, None)),
            labels=rng.sample(["api", "ui", "db", "ops"], 2),
            points=rng.choice((1.0, 2.0, 3.0, 5.0, 8.0, None)),
            team=rng.choice(("red", "blue")),
            review_ms=updated_ms + 86_400_000 if rng.random() < 0.5 else None,
        )
        self.issues[issue.id] = issue
        return issue

    # -- the search index ---------------------------------------------------------------
    def _lag(self) -> int:
        """A fixed pseudo-random share of the writes is searchable at once."""
        self._writes += 1
        instant = (self._writes * 2_654_435_761) % 1000 < 1000 * self.instant_index_share
        return 0 if instant else self.index_lag_ms

    def _index(self, issue: Issue | None, *, issue_id: int | None = None, visible_at: int) -> None:
        key = issue.id if issue else issue_id
        assert key is not None
        self._sequence += 1
        entry = (visible_at, self._sequence, key, issue.snapshot() if issue else None)
        heapq.heappush(self._pending, entry)

    def _refresh_index(self) -> None:
        # a burst of writes runs ahead of the wall clock (``write_ms`` is strictly
        # increasing): the index's clock never reads earlier than the last write, or 250
        # deletes made in 3 ms would stay searchable for 250 ms with no index lag set
        now = max(self.now_ms(), self._last_write_ms)
        while self._pending and self._pending[0][0] <= now:
            _, sequence, key, snap = heapq.heappop(self._pending)
            if sequence < self._applied.get(key, 0):
                continue  # the index keeps the newest version: a late older write is dropped
            self._applied[key] = sequence
            self._visible[key] = snap
            self._dirty = True
        if self._dirty:
            visible = [(key, snap) for key, snap in self._visible.items() if snap is not None]
            self._sorted = sorted((snap.updated_ms, key) for key, snap in visible)
            self._by_updated_key = sorted(
                (snap.updated_ms, snap.project, snap.number, key) for key, snap in visible
            )
            self._dirty = False
            self._generation += 1
            self._cache.clear()

    def search(
        self, query: Query, reconcile: set[int], cache_key: str, limit: int | None = None
    ) -> list[Issue]:
        """Issues matching ``query`` as the search index sees them now, in query order: all
        of them, or with ``limit`` at least the first ``limit`` (all when fewer match), so a
        page that needs only its own issues and whether more follow does not read the rest.

        Raises :class:`JqlError` (a 400) when an issue named in an ``id``/``key`` clause does
        not exist, as Jira does: "An issue with key 'X' does not exist for field 'key'."
        """
        with self.lock:
            self._refresh_index()
            resolved = self._resolve_named(query)
            key = (cache_key, tuple(sorted(reconcile)), self._generation, resolved)
            cached = self._cache.get(key)
            if cached is None or not (cached[1] or (limit is not None and len(cached[0]) >= limit)):
                if len(self._cache) > 64:
                    self._cache.clear()
                cached = self._cache[key] = self._search(query, reconcile, resolved, limit)
            return cached[0]

    def _resolve_named(self, query: Query) -> tuple[tuple[str, str, int], ...]:
        """``(operator, project, key number)`` for each comparison; every named issue exists,
        and so does every named project (one the user may not browse does not, for it)."""
        for project in sorted((query.projects or set()) & self.unbrowsable):
            raise JqlError(f"The value '{project}' does not exist for the field 'project'.")
        for ident in query.ids or ():
            if self.find(ident) is None:
                raise JqlError(f"An issue with key '{ident}' does not exist for field 'key'.")
        resolved = []
        for operator, ident in query.key_compare:
            issue = self.find(ident)
            if issue is None:
                raise JqlError(f"An issue with key '{ident}' does not exist for field 'key'.")
            resolved.append((operator, issue.project, issue.number))
        return tuple(resolved)

    def _search(
        self,
        query: Query,
        reconcile: set[int],
        resolved: tuple[tuple[str, str, int], ...],
        limit: int | None,
    ) -> tuple[list[Issue], bool]:
        by_key = query.order == UPDATED_KEY_ORDER
        # in the index's order already ((updated, id) or (updated, key)): no sort, and the
        # scan may stop at `limit`
        in_order = (by_key or query.order in ([], [("updated", False)])) and not reconcile
        rows: list[tuple[int, str, int, int]] | list[tuple[int, int]]
        rows = self._by_updated_key if by_key else self._sorted
        lo = 0 if query.lower_ms is None else bisect.bisect_left(rows, (query.lower_ms,))
        candidates: list[Issue] = []
        for n in range(lo, len(rows)):
            updated_ms, key = rows[n][0], rows[n][-1]
            if query.upper_ms is not None and updated_ms > query.upper_ms:
                break
            if in_order and limit is not None and len(candidates) >= limit:
                return candidates, False
            snap = self.issues.get(key) if key in reconcile else self._visible.get(key)
            if snap is None or snap.project in self.unbrowsable:
                continue
            if self._matches(snap, query, resolved):
                candidates.append(snap)
        if in_order:
            return candidates, True
        seen = {c.id for c in candidates}
        for key in reconcile - seen:
            live = self.issues.get(key)
            if (
                live is not None
                and live.archived_ms is None
                and live.project not in self.unbrowsable
                and self._matches(live, query, resolved)
            ):
                candidates.append(live)
        return sorted(candidates, key=_order_key(query)), True

    @staticmethod
    def _matches(
        issue: Issue, query: Query, resolved: tuple[tuple[str, str, int], ...] = ()
    ) -> bool:
        if query.projects is not None and issue.project not in query.projects:
            return False
        if query.ids is not None and not ({str(issue.id), issue.key, *issue.old_keys} & query.ids):
            return False
        for operator, project, number in resolved:
            if issue.project != project or not _COMPARE[operator](issue.number, number):
                return False
        if query.status is not None:
            operator, name = query.status
            if (issue.status == name) != (operator == "="):
                return False
        if query.label is not None and query.label not in issue.labels:
            return False
        return query.matches_time(issue.updated_ms)

    # -- lookups ------------------------------------------------------------------------
    def find(self, id_or_key: str) -> Issue | None:
        """An issue by id, key or a key it had before a move; archived ones too; none in a
        project the user may not browse (Jira's 404 does not tell the two apart)."""
        with self.lock:
            if id_or_key.isdigit():
                found = self.issues.get(int(id_or_key))
            else:
                keys = (i for i in self.issues.values() if id_or_key in (i.key, *i.old_keys))
                found = next(keys, None)
            return None if found is None or found.project in self.unbrowsable else found

    def revoke_browse(self, project: str) -> None:
        """The API user loses Browse Projects on ``project``: its issues vanish from every
        read at once (permissions are not indexed late)."""
        with self.lock:
            self.unbrowsable.add(project)
            self._cache.clear()

    def grant_browse(self, project: str) -> None:
        with self.lock:
            self.unbrowsable.discard(project)
            self._cache.clear()

    # -- writes (tests and adversity switches) --------------------------------------------
    def _touch(self, issue: Issue, field_name: str, old: str | None, new: str | None) -> int:
        now = self.write_ms()
        issue.updated_ms = now
        issue.histories.append(
            History(
                id=self._new_id("history"),
                author=self.rng.choice(USERS),
                created_ms=now,
                field=field_name,
                from_string=old,
                to_string=new,
            )
        )
        self._index(issue, visible_at=now + self._lag())
        return now

    def edit_issue(self, issue_id: int) -> int:
        """Change an issue's summary and status; returns its new ``updated`` (ms)."""
        with self.lock:
            issue = self.issues[issue_id]
            old = issue.summary
            issue.summary = f"{old.split(' (edit')[0]} (edit {self.rng.randint(1, 10**6)})"
            issue.status = self.rng.choice(STATUSES)
            return self._touch(issue, "summary", old, issue.summary)

    def set_status(self, issue_id: int, status: str) -> int:
        with self.lock:
            issue = self.issues[issue_id]
            old, issue.status = issue.status, status
            return self._touch(issue, "status", old, status)

    def move_issue(self, issue_id: int, project: str) -> str:
        """Move an issue to another project: the key changes, the id stays."""
        with self.lock:
            issue = self.issues[issue_id]
            self._counters[project] += 1
            old_key = issue.key
            issue.old_keys.append(old_key)
            issue.project, issue.key = project, f"{project}-{self._counters[project]}"
            self._touch(issue, "Key", old_key, issue.key)
            return issue.key

    def delete_issue(self, issue_id: int) -> None:
        with self.lock:
            self.issues.pop(issue_id)
            now = self.write_ms()
            self.deleted[issue_id] = now
            for worklog in [w for w in self.worklogs.values() if w.issue_id == issue_id]:
                self.worklogs.pop(worklog.id)
                self.deleted_worklogs[worklog.id] = now
            self._index(None, issue_id=issue_id, visible_at=now + self._lag())

    def archive_issue(self, issue_id: int) -> None:
        """Archive: out of search (after the index lag), still readable by id; ``updated`` kept."""
        with self.lock:
            issue = self.issues[issue_id]
            now = self.write_ms()
            issue.archived_ms = now
            self._index(None, issue_id=issue_id, visible_at=now + self._lag())

    def restore_issue(self, issue_id: int) -> None:
        """Restore from the archive: searchable again (after the index lag). Whether Jira
        changes ``updated`` then is not documented: kept here (the harsher case)."""
        with self.lock:
            issue = self.issues[issue_id]
            now = self.write_ms()
            issue.archived_ms = None
            self._index(issue, visible_at=now + self._lag())

    def create_issue(self, project: str) -> int:
        with self.lock:
            now = self.write_ms()
            issue = self._new_issue(project, created_ms=now, updated_ms=now)
            self._index(issue, visible_at=now + self._lag())
            return issue.id

    def add_comment(self, issue_id: int, body: str) -> int:
        with self.lock:
            issue = self.issues[issue_id]
            now = self.write_ms()
            cid = self._new_id("comment")
            issue.comments.append(Comment(cid, self.rng.choice(USERS), body, now, now))
            issue.updated_ms = now
            self._index(issue, visible_at=now + self._lag())
            return cid

    def add_worklog(self, issue_id: int, seconds: int) -> int:
        with self.lock:
            now = self.write_ms()
            wid = self._new_id("worklog")
            self.worklogs[wid] = Worklog(wid, issue_id, self.rng.choice(USERS), now, seconds, now)
            return wid

    def delete_worklog(self, worklog_id: int) -> None:
        with self.lock:
            self.worklogs.pop(worklog_id)
            self.deleted_worklogs[worklog_id] = self.write_ms()

    def churn(self, *, edits: int, deletes: int, moves: int, creates: int) -> None:
        """Random writes, as other Jira users make them while a sync runs."""
        with self.lock:
            rng = self.rng
            for _ in range(edits):
                self.edit_issue(rng.choice(sorted(self.issues)))
            for _ in range(deletes):
                if len(self.issues) > 1:
                    self.delete_issue(rng.choice(sorted(self.issues)))
            for _ in range(moves):
                issue_id = rng.choice(sorted(self.issues))
                others = [p for p in self.projects if p != self.issues[issue_id].project]
                self.move_issue(issue_id, rng.choice(others))
            for _ in range(creates):
                self.create_issue(rng.choice(self.projects))

    # -- ground truth -------------------------------------------------------------------
    def live_issues(self, projects: set[str] | None = None) -> dict[str, int]:
        """``{issue id: updated ms}`` of every live, unarchived issue (optionally of some
        projects)."""
        with self.lock:
            return {
                str(i.id): i.updated_ms
                for i in self.issues.values()
                if i.archived_ms is None and (projects is None or i.project in projects)
            }

    def archived_issue_ids(self) -> set[str]:
        with self.lock:
            return {str(i.id) for i in self.issues.values() if i.archived_ms is not None}

    def deleted_issue_ids(self) -> set[str]:
        with self.lock:
            return {str(i) for i in self.deleted}


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _order_key(query: Query) -> Callable[[Issue], tuple[object, ...]]:
    """``ORDER BY id`` / ``key`` is project key, then key number (never the id)."""
    order = query.order or [("updated", False), ("key", False)]

    def key(issue: Issue) -> tuple[object, ...]:
        parts: list[object] = []
        for name, descending in order:
            if name == "key":
                # descending text: invert each character so one tuple sorts both ways
                project = "".join(chr(0x10FFFF - ord(c)) for c in issue.project)
                parts += [project, -issue.number] if descending else [issue.project, issue.number]
            else:
                value = issue.updated_ms if name == "updated" else issue.created_ms
                parts.append(-value if descending else value)
        parts.append(issue.id)
        return tuple(parts)

    return key
