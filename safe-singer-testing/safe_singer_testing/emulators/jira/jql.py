"""The JQL subset the emulator understands, with Jira's error for what it does not.

``id``, ``key``, ``issue`` and ``issuekey`` are ONE clause in Jira (JQL fields reference,
https://support.atlassian.com/jira-software-cloud/docs/jql-fields/ "Issue key"; Jira's
``IssueIdClauseQueryFactory``): ``=`` / ``in`` name issues; ``>``, ``>=``, ``<``, ``<=`` resolve
the named issue and compare KEY NUMBERS inside that issue's project, never ids as numbers; an
issue that does not exist is a 400. ``ORDER BY id`` / ``key`` sorts by project key, then key
number. The resolving needs the data, so the dataset applies these clauses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from safe_singer_testing.emulators.jira.timefmt import literal_to_ms

_ORDER = re.compile(r"(?:^|\s+)ORDER\s+BY\s+(.+)$", re.IGNORECASE | re.DOTALL)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
_PROJECT_IN = re.compile(r"^project\s+in\s*\(([^)]*)\)$", re.IGNORECASE)
_PROJECT_EQ = re.compile(r"^project\s*=\s*(.+)$", re.IGNORECASE)
_ID_IN = re.compile(r"^(?:id|key|issue|issuekey)\s+in\s*\(([^)]*)\)$", re.IGNORECASE)
_ID_CMP = re.compile(r"^(?:id|key|issue|issuekey)\s*(>=|>|<=|<|=)\s*(\S+)$", re.IGNORECASE)
_STATUS = re.compile(r"^status\s*(=|!=)\s*(.+)$", re.IGNORECASE)
_LABELS = re.compile(r"^labels\s*=\s*(.+)$", re.IGNORECASE)
ISSUE_ORDER = {"id", "key", "issue", "issuekey"}
_UPDATED = re.compile(r"^updated\s*(>=|<=|>|<)\s*(.+)$", re.IGNORECASE)


class JqlError(ValueError):
    """A query Jira would answer with 400 and this message."""


@dataclass
class Query:
    projects: set[str] | None = None
    ids: set[str] | None = None  # `id in (...)` / `key = X`: ids or keys, resolved by the data
    key_compare: list[tuple[str, str]] = field(default_factory=list)  # (operator, id or key)
    status: tuple[str, str] | None = None  # (operator, status name)
    label: str | None = None
    lower_ms: int | None = None
    lower_inclusive: bool = True
    upper_ms: int | None = None
    upper_inclusive: bool = False
    order: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        bounds = (self.projects, self.ids, self.lower_ms, self.upper_ms)
        return bool(self.key_compare) or any(v is not None for v in bounds)

    def matches_time(self, updated_ms: int) -> bool:
        if self.lower_ms is not None and (
            updated_ms < self.lower_ms or (updated_ms == self.lower_ms and not self.lower_inclusive)
        ):
            return False
        return self.upper_ms is None or (
            updated_ms < self.upper_ms or (updated_ms == self.upper_ms and self.upper_inclusive)
        )


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _names(listing: str) -> set[str]:
    return {_unquote(part) for part in listing.split(",") if part.strip()}


def parse(jql: str, zone: str, now_ms: int) -> Query:
    """Parse ``jql``; time literals are read in ``zone`` (the querying user's)."""
    query = Query()
    text = jql.strip()
    order = _ORDER.search(text)
    if order:
        text = text[: order.start()].strip()
        for part in order.group(1).split(","):
            words = part.split()
            if not words or words[0].lower() not in {"updated", "created", *ISSUE_ORDER}:
                raise JqlError(f"Field '{part.strip()}' does not exist or cannot be sorted on.")
            descending = len(words) > 1 and words[1].lower() == "desc"
            name = "key" if words[0].lower() in ISSUE_ORDER else words[0].lower()
            query.order.append((name, descending))
    for clause in _AND.split(text) if text else []:
        clause = clause.strip()
        while clause.startswith("(") and clause.endswith(")"):
            clause = clause[1:-1].strip()
        _apply_clause(query, clause, zone, now_ms)
    return query


def _apply_clause(query: Query, clause: str, zone: str, now_ms: int) -> None:
    if match := _PROJECT_IN.match(clause):
        query.projects = _names(match.group(1))
    elif match := _PROJECT_EQ.match(clause):
        query.projects = {_unquote(match.group(1))}
    elif match := _ID_IN.match(clause):
        query.ids = _names(match.group(1))
    elif match := _ID_CMP.match(clause):
        if match.group(1) == "=":
            query.ids = {_unquote(match.group(2))}
        else:
            query.key_compare.append((match.group(1), _unquote(match.group(2))))
    elif match := _STATUS.match(clause):
        query.status = (match.group(1), _unquote(match.group(2)))
    elif match := _LABELS.match(clause):
        query.label = _unquote(match.group(1))
    elif match := _UPDATED.match(clause):
        operator, literal = match.group(1), _unquote(match.group(2))
        try:
            moment = literal_to_ms(literal, zone, now_ms)
        except ValueError as exc:
            raise JqlError(str(exc)) from exc
        if operator.startswith(">"):
            query.lower_ms, query.lower_inclusive = moment, operator == ">="
        else:
            query.upper_ms, query.upper_inclusive = moment, operator == "<="
    else:
        raise JqlError(f"Error in the JQL Query: cannot parse '{clause}'.")
