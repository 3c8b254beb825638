"""Jira times (``2024-11-29T10:44:51.887-0800``) to UTC ISO strings and epoch milliseconds."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_jira_time(text: str) -> datetime:
    """A Jira-rendered time (offset without a colon is fine on Python >= 3.11 and here)."""
    if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def iso_utc(moment: datetime) -> str:
    """The one text form of a time this tap emits and bookmarks (sorts as it compares)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def jira_to_iso(text: str | None) -> str | None:
    return None if text is None else iso_utc(parse_jira_time(text))
