"""Stream definitions for tap-jira-safe (filled in by the tap's own issue)."""

from __future__ import annotations

from singer_sdk import Stream

STREAM_TYPES: list[type[Stream]] = []
