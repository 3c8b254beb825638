"""The JQL subset the emulator understands, with Jira's error for what it does not."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.emulators.jira.timefmt import literal_to_ms

_ORDER = re.compile(r"(?:^|\s+)ORDER\s+BY\s+(.+)$", re.IGNORECASE | re.DOTALL)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)
_PROJECT_IN = re.compile(r"^project\s+in\s*\(([^)]*)\)$", re.IGNORECASE)
_PROJECT_EQ = re.compile(r"^project\s*=\s*(.+)$", re.IGNORECASE)
_ID_IN = re.compile(r"^(id|key|issuekey)\s+in\s*\(([^)]*)\)$", re.IGNORECASE)
_ID_CMP = re.compile(r"^id\s*(>=|>|<=|<)\s*(\d+)$", re.IGNORECASE)
_UPDATED = re.compile(r"^updated\s*(>=|<=|>|<)\s*(.+)$", re.IGNORECASE)


class JqlError(ValueError):
    """A query Jira would answer with 400 and this message."""


@dataclass
class Query:
    projects: set[str] | None = None
    ids: set[str] | None = None
    id_above: int | None = None  # `id > N` (keyset paging)
    id_at_most: int | None = None  # `id <= N`
    lower_ms: int | None = None
    lower_inclusive: bool = True
    upper_ms: int | None = None
    upper_inclusive: bool = False
    order: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        bounds = (
            self.projects,
            self.ids,
            self.id_above,
            self.id_at_most,
            self.lower_ms,
            self.upper_ms,
        )
        return any(v is not None for v in bounds)

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
            if not words or words[0].lower() not in {"updated", "id", "key", "created"}:
                raise JqlError(f"Field '{part.strip()}' does not exist or cannot be sorted on.")
            descending = len(words) > 1 and words[1].lower() == "desc"
            query.order.append((words[0].lower(), descending))
    for clause in _AND.split(text) if text else []:
        _apply_clause(query, clause.strip(), zone, now_ms)
    return query


def _apply_clause(query: Query, clause: str, zone: str, now_ms: int) -> None:
    if match := _PROJECT_IN.match(clause):
        query.projects = _names(match.group(1))
    elif match := _PROJECT_EQ.match(clause):
        query.projects = {_unquote(match.group(1))}
    elif match := _ID_IN.match(clause):
        query.ids = _names(match.group(2))
    elif match := _ID_CMP.match(clause):
        operator, number = match.group(1), int(match.group(2))
        if operator.startswith(">"):
            query.id_above = number - (1 if operator == ">=" else 0)
        else:
            query.id_at_most = number - (1 if operator == "<" else 0)
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
